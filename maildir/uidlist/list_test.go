package uidlist

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *List
	}{
		{
			name: "dovecot appended records behind a stale N",
			in: "3 V1795331363 N1 Gaee3100b2395026b044b000083ecc375\n" +
				"1 :1000000001.M1P1Q1.host,S=20,W=22\n" +
				"4 :1000000010.M1P1Q10.host\n",
			want: &List{UIDValidity: 1795331363, NextUID: 5, GUID: "aee3100b2395026b044b000083ecc375", Records: []Record{
				{UID: 1, Name: "1000000001.M1P1Q1.host,S=20,W=22"},
				{UID: 4, Name: "1000000010.M1P1Q10.host"},
			}},
		},
		{
			name: "N beyond the last record is kept",
			in:   "3 V7 N20 G0123456789ABCDEF0123456789abcdef\n3 :a\n",
			want: &List{UIDValidity: 7, NextUID: 20, GUID: "0123456789abcdef0123456789abcdef", Records: []Record{{UID: 3, Name: "a"}}},
		},
		{
			name: "extensions, unknown header fields and spaces in names",
			in:   "3 V7 N9 G0123456789abcdef0123456789abcdef Pfoo X\n5 W1871 S1834 Qx :a b:2,S\n6  G1234  :c\n",
			want: &List{UIDValidity: 7, NextUID: 9, GUID: "0123456789abcdef0123456789abcdef",
				Extra: []Field{{'P', "foo"}, {'X', ""}},
				Records: []Record{
					{UID: 5, Ext: []Field{{'W', "1871"}, {'S', "1834"}, {'Q', "x"}}, Name: "a b"},
					{UID: 6, Ext: []Field{{'G', "1234"}}, Name: "c"},
				}},
		},
		{
			name: "lower-case extension keys are dropped",
			in:   "3 V7 N9\n5 w1 :a\n",
			want: &List{UIDValidity: 7, NextUID: 9, Records: []Record{{UID: 5, Name: "a"}}},
		},
		{
			name: "CRLF and a torn last line",
			in:   "3 V7 N9\r\n5 :a\r\n6 :b",
			want: &List{UIDValidity: 7, NextUID: 9, Records: []Record{{UID: 5, Name: "a"}}},
		},
		{
			name: "a name listed twice keeps the later UID",
			in:   "3 V7 N1\n5 :a\n6 :b\n8 :a\n",
			want: &List{UIDValidity: 7, NextUID: 9, Records: []Record{{UID: 6, Name: "b"}, {UID: 8, Name: "a"}}},
		},
		{
			name: "version 1",
			in:   "1 1234 10\n3 1000.P1.host\n9 1001.P1.host:2,S\n",
			want: &List{UIDValidity: 1234, NextUID: 10, Records: []Record{{UID: 3, Name: "1000.P1.host"}, {UID: 9, Name: "1001.P1.host"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q) error %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			back, err := Parse(got.Marshal())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("Parse(Marshal()) = %+v, %v, want %+v", back, err, got)
			}
		})
	}
}

func TestParseCorrupt(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"header only torn", "3 V1 N1"},
		{"no version", "V1 N1\n"},
		{"version 2", "2 V1 N1\n"},
		{"no uidvalidity", "3 N1\n"},
		{"zero uidvalidity", "3 V0 N1\n"},
		{"no next uid", "3 V1\n"},
		{"bad number", "3 V1x N1\n"},
		{"bad guid", "3 V1 N1 Gxyz\n"},
		{"short guid", "3 V1 N1 G0123\n"},
		{"uid zero", "3 V1 N1\n0 :a\n"},
		{"uid not followed by space", "3 V1 N1\n1:a\n"},
		{"uid too high", "3 V1 N1\n4294967295 :a\n"},
		{"uid overflow", "3 V1 N1\n99999999999 :a\n"},
		{"uids not increasing", "3 V1 N1\n2 :a\n2 :b\n"},
		{"no name", "3 V1 N1\n2 W3\n"},
		{"empty name", "3 V1 N1\n2 :\n"},
		{"name with slash", "3 V1 N1\n2 :a/b\n"},
		{"version 1 uid not below next", "1 5 3\n3 a\n"},
		{"version 1 short header", "1 5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Parse(%q) = %+v, %v, want ErrCorrupt", tt.in, got, err)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	l := &List{UIDValidity: 1795331363, NextUID: 11, GUID: "aee3100b2395026b044b000083ecc375",
		Extra: []Field{{'P', "%08Xu%08Xv"}},
		Records: []Record{
			{UID: 4, Name: "1000000010.M1P1Q10.host"},
			{UID: 10, Ext: []Field{{'W', "22"}}, Name: "1200000001.M1P1Q1.b,S=20"},
		}}
	want := "3 V1795331363 N11 Gaee3100b2395026b044b000083ecc375 P%08Xu%08Xv\n" +
		"4 :1000000010.M1P1Q10.host\n" +
		"10 W22 :1200000001.M1P1Q1.b,S=20\n"
	if got := string(l.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
}

// TestCompareNames checks the order in which Dovecot 2.3.19 gave UIDs to
// these names when they appeared together (observed with doveadm fetch).
func TestCompareNames(t *testing.T) {
	dovecotOrder := []string{
		"abc", "999.M1.z", "1000", "01000.M1.x", "1000.M05P1.y", "1000.M5P1.a",
		"1000.M5P1.x", "1000.M5P2.x", "1000.M7P1.c", "1000.M9P1.x", "1000.M10P1.x", "1000.a",
	}
	for i := range dovecotOrder {
		for j := range dovecotOrder {
			a, b := dovecotOrder[i], dovecotOrder[j]
			got := CompareNames(a, b)
			switch {
			case i < j && got >= 0, i > j && got <= 0, i == j && got != 0:
				t.Errorf("CompareNames(%q, %q) = %d, want the sign of %d", a, b, got, i-j)
			}
		}
	}
	shuffled := slices.Clone(dovecotOrder)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, CompareNames)
	if !slices.Equal(shuffled, dovecotOrder) {
		t.Errorf("sorted = %q, want %q", shuffled, dovecotOrder)
	}

	// Quirks of the C code that are kept.
	quirks := []struct {
		a, b string
		sign int
	}{
		{"0900000000.M5.zzz", "1100000000.M5.aaa", -1},
		{"5.P1M7.x", "5.P1M3.x", 1},         // 'M' anywhere in the second part
		{"4294967296.x", "0.y", -1},         // seconds differ by 2^32: "equal", then bytes
		{"1.a\x80", "1.a\x01", -1},          // bytes compare as signed chars
		{"1.M2.a:2,S", "1.M2.a:2,T", 0},     // the info is not compared
		{"1.M2.a", "1.M2.a:2,T", 0},         // nor its presence
		{"1.M12P3.host", "1.M12P3.host", 0}, // equal
	}
	for _, q := range quirks {
		got := CompareNames(q.a, q.b)
		if (got > 0) != (q.sign > 0) || (got < 0) != (q.sign < 0) {
			t.Errorf("CompareNames(%q, %q) = %d, want sign %d", q.a, q.b, got, q.sign)
		}
	}
}

func TestBaseName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.M2P3.host,S=5,W=6:2,FS", "1.M2P3.host,S=5,W=6"},
		{"1.M2P3.host", "1.M2P3.host"},
		{"1.M2P3.host:1,x:y", "1.M2P3.host"},
	}
	for _, tt := range tests {
		if got := BaseName(tt.in); got != tt.want {
			t.Errorf("BaseName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
