package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name, file string
		want       Name
		same       bool // String() gives the file name back
	}{
		{"ours in new", "1700000000.M1P2Q3R0a0b0c0d0e0f1011.host,S=10,W=12",
			Name{Base: "1700000000.M1P2Q3R0a0b0c0d0e0f1011.host", Size: 10, VSize: 12}, true},
		{"ours in cur", "1700000000.M1P2Q3Rab.host,S=10,W=12:2,FS",
			Name{Base: "1700000000.M1P2Q3Rab.host", Size: 10, VSize: 12, Flags: "FS", HasInfo: true}, true},
		{"no flags", "x,S=1,W=1:2,", Name{Base: "x", Size: 1, VSize: 1, HasInfo: true}, true},
		{"qmail plain", "1700000000.12345.host", Name{Base: "1700000000.12345.host", Size: -1, VSize: -1}, true},
		{"only S", "b,S=5:2,S", Name{Base: "b", Size: 5, VSize: -1, Flags: "S", HasInfo: true}, true},
		{"only W", "b,W=5", Name{Base: "b", Size: -1, VSize: 5}, true},
		{"W before S", "b,W=7,S=5", Name{Base: "b", Size: 5, VSize: 7}, false},
		{"unknown field kept", "b,X=1,S=5", Name{Base: "b,X=1", Size: 5, VSize: -1}, true},
		{"bad size kept", "b,S=abc,S=-1,S=", Name{Base: "b,S=abc,S=-1,S=", Size: -1, VSize: -1}, true},
		{"overflow kept", "b,S=99999999999999999999", Name{Base: "b,S=99999999999999999999", Size: -1, VSize: -1}, true},
		{"escaped host", `1.M1P1Q1R1.a\057b\072c,S=0,W=0`, Name{Base: `1.M1P1Q1R1.a\057b\072c`, Size: 0, VSize: 0}, true},
		{"experimental info kept whole", "b,S=5:1,xyz", Name{Base: "b,S=5:1,xyz", Size: -1, VSize: -1}, true},
		{"colon in flags", "b:2,S:2,T", Name{Base: "b", Size: -1, VSize: -1, Flags: "S:2,T", HasInfo: true}, true},
		{"empty", "", Name{Size: -1, VSize: -1}, true},
		{"keyword letters", "b:2,Sab", Name{Base: "b", Size: -1, VSize: -1, Flags: "Sab", HasInfo: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseName(tt.file)
			if got != tt.want {
				t.Fatalf("ParseName(%q) = %+v, want %+v", tt.file, got, tt.want)
			}
			if s := got.String(); (s == tt.file) != tt.same {
				t.Errorf("ParseName(%q).String() = %q, want same = %v", tt.file, s, tt.same)
			}
		})
	}
}

func TestNameSizes(t *testing.T) {
	for _, name := range []string{
		"1795336972.M123456P4242Q1R8f3a0c1d2e4b5a69.mx,S=1834",
		"1795336980.M5P9Q2R0011223344556677.mx,S=2210,W=2270",
		"1795336980.M5P9Q2R0011223344556677.mx,S=2210,W=2270:2,FS",
		"1795336980.M5P9Q2.mx,W=2270,S=2210",
		"1000000010.M1P1Q10.host",
		"1000000010.M1P1Q10.host:2,",
		"1000000010.M1P1Q10.host,S=12:1,S=99",
		"1000000010.M1P1Q10.host,S=,W=x1",
		"1000000010.M1P1Q10.host,S=1,S=2,W=99999999999999999999",
		"S=5,W=6",
		",S=5",
		"",
	} {
		n := ParseName(name)
		if size, vsize := NameSizes(name); size != n.Size || vsize != n.VSize {
			t.Errorf("NameSizes(%q) = %d, %d, want %d, %d as ParseName", name, size, vsize, n.Size, n.VSize)
		}
	}
}

func TestHasFlag(t *testing.T) {
	n := ParseName("b,S=1,W=1:2,FS")
	if !n.HasFlag(FlagSeen) || !n.HasFlag(FlagFlagged) || n.HasFlag(FlagReplied) {
		t.Errorf("HasFlag on %+v wrong", n)
	}
	if ParseName("b,S=1,W=1").HasFlag(FlagSeen) {
		t.Error("a name without info has flag S")
	}
}

func TestSortFlags(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"S", "S"},
		{"SF", "FS"},
		{"TSRPFD", "DFPRST"},
		{"SSFFS", "FS"},
		{"baS", "Sab"},
	}
	for _, tt := range tests {
		if got, err := SortFlags(tt.in); err != nil || got != tt.want {
			t.Errorf("SortFlags(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"S,", "1", ":", "/", "ü", " "} {
		if got, err := SortFlags(bad); !errors.Is(err, ErrInvalidFlags) {
			t.Errorf("SortFlags(%q) = %q, %v; want ErrInvalidFlags", bad, got, err)
		}
	}
}

func TestSetFlagsAndMoveToCur(t *testing.T) {
	path := t.TempDir()
	if err := Create(path); err != nil {
		t.Fatal(err)
	}
	d := Dir(path)
	del, err := d.Deliver(strings.NewReader("Subject: x\n\nbody\n"), DeliverOptions{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := d.MoveToCur(del.Name)
	if err != nil || cur != del.Name+":2," {
		t.Fatalf("MoveToCur(%q) = %q, %v; want the name with :2,", del.Name, cur, err)
	}
	steps := []struct{ flags, want string }{
		{"SF", del.Name + ":2,FS"},
		{"SFS", del.Name + ":2,FS"},
		{"Ta", del.Name + ":2,Ta"},
		{"", del.Name + ":2,"},
	}
	for _, s := range steps {
		got, err := d.SetFlags(cur, s.flags)
		if err != nil || got != s.want {
			t.Fatalf("SetFlags(%q, %q) = %q, %v; want %q", cur, s.flags, got, err, s.want)
		}
		if _, err := os.Stat(filepath.Join(d.Cur(), got)); err != nil {
			t.Fatalf("after SetFlags: %v", err)
		}
		cur = got
	}
	if entries, _ := os.ReadDir(d.Cur()); len(entries) != 1 {
		t.Errorf("cur/ has %d files, want 1", len(entries))
	}
	if _, err := d.SetFlags("gone:2,", "S"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetFlags on a missing file = %v, want ErrNotExist", err)
	}
	for _, bad := range []string{"", ".", "..", "../new/x", "a\x00b"} {
		if _, err := d.SetFlags(bad, "S"); err == nil {
			t.Errorf("SetFlags(%q) succeeded", bad)
		}
		if _, err := d.MoveToCur(bad); err == nil {
			t.Errorf("MoveToCur(%q) succeeded", bad)
		}
	}
	if _, err := d.SetFlags(cur, "S1"); !errors.Is(err, ErrInvalidFlags) {
		t.Errorf("SetFlags with a digit = %v, want ErrInvalidFlags", err)
	}
}

func TestUniqueBase(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	re := regexp.MustCompile(`^1700000000\.M123456P[0-9]+Q[0-9]+R[0-9a-f]{16}\.mx\\057a\\072b\\054c\\134d\\040e$`)
	a, err := uniqueBase(now, `mx/a:b,c\d e`)
	if err != nil || !re.MatchString(a) {
		t.Fatalf("uniqueBase = %q, %v; want a match for %s", a, err, re)
	}
	b, _ := uniqueBase(now, "mx")
	if a == b {
		t.Errorf("two unique names are equal: %q", a)
	}
}

func TestEscapeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"mx.example.org", "mx.example.org"},
		{"a/b", `a\057b`},
		{"a:b", `a\072b`},
		{"a,b", `a\054b`},
		{"a\x00b", `a\000b`},
		{"ü", `\303\274`},
	}
	for _, tt := range tests {
		if got := escapeHost(tt.in); got != tt.want {
			t.Errorf("escapeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMovedName(t *testing.T) {
	old := "1700000000.M1P2Q3R0123456789abcdef.old,S=120,W=125:2,S"
	got, err := MovedName(old, "new.example", "FS")
	if err != nil {
		t.Fatal(err)
	}
	n := ParseName(got)
	if n.Base == ParseName(old).Base || !strings.HasSuffix(n.Base, ".new.example") {
		t.Errorf("MovedName(%q) = %q: want a new base on host new.example", old, got)
	}
	if n.Size != 120 || n.VSize != 125 || !n.HasInfo || n.Flags != "FS" {
		t.Errorf("MovedName(%q) = %q: want sizes 120/125 and flags FS kept", old, got)
	}
	again, _ := MovedName(old, "new.example", "FS")
	if again == got {
		t.Errorf("two MovedName calls gave the same name %q", got)
	}
	if _, err := MovedName(old, "h", "S!"); err == nil {
		t.Error("MovedName with a bad flag succeeded")
	}
}
