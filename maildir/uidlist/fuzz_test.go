package uidlist

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func FuzzParseUIDList(f *testing.F) {
	for _, s := range []string{
		"3 V1795331363 N1 Gaee3100b2395026b044b000083ecc375\n1 :1000000001.M1P1Q1.host,S=20,W=22\n4 :x\n",
		"3 V7 N9 G0123456789abcdef0123456789abcdef Pfoo X\n5 W1871 S1834 Qx :a b:2,S\n6  G1234  :c\n",
		"3 V7 N9\r\n5 :a\r\n6 :b", "3 V7 N1\n5 :a\n6 :b\n8 :a\n", "1 1234 10\n3 1000.P1.host\n9 1001.P1.host:2,S\n",
		"", "3 V1 N1", "2 V1 N1\n", "3 V0 N1\n", "3 V1 N1\n4294967295 :a\n", "3 V1 N1\n2 :a/b\n", "3 V1 N1\n2 ::2,S\n",
		"3 V1 N1\n1 w5 :a\n", "3 V1 N1 G\n", "3  V1 N1\n", "3 V4294967295 N4294967295\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrCorrupt", data, err)
			}
			return
		}
		for i, r := range l.Records {
			if r.UID == 0 || r.UID >= l.NextUID || (i > 0 && r.UID <= l.Records[i-1].UID) {
				t.Fatalf("Parse(%q): record %d UID %d out of order (next %d)", data, i, r.UID, l.NextUID)
			}
		}
		out := l.Marshal()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v; Marshal gave %q", data, err, out)
		}
		if !reflect.DeepEqual(back, l) {
			t.Fatalf("Parse(%q) = %+v, but after Marshal (%q) %+v", data, l, out, back)
		}
		if again := back.Marshal(); !bytes.Equal(again, out) {
			t.Fatalf("Marshal not stable: %q then %q", out, again)
		}
	})
}

func FuzzParseKeywords(f *testing.F) {
	for _, s := range []string{
		"0 $Forwarded\n1 $Junk\r\n3 two words\nx bad\n26 out\n2\n4 \n-1 neg\n 5 lead\n25 last\n7 torn",
		"", "0 a\r\r\n", "00 zero\n", "4294967296 big\n", "1  spaced\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k := ParseKeywords(data)
		out := k.Marshal()
		if back := ParseKeywords(out); *back != *k {
			t.Fatalf("ParseKeywords(%q) = %q, but after Marshal (%q) %q", data, k.Names, out, back.Names)
		}
		for i, name := range k.Names {
			if name == "" {
				continue
			}
			if c, ok := k.Letter(name); !ok || c > byte('a'+i) {
				t.Fatalf("ParseKeywords(%q): Letter(%q) = %q, %v, want at most %q", data, name, c, ok, byte('a'+i))
			}
		}
	})
}

func FuzzParseSubscriptions(f *testing.F) {
	for _, s := range []string{
		"V\t2\n\nSent\na\tb\nEntw&APw-rfe\nINBOX\n", "Sent\na.b\nEntw&APw-rfe\ninbox\n",
		"V\t2\n\nfoo\x01tbar\tx\r\n\n\x01Sent\nx.y\nTrash", "a..b\nbad&-utf7&\nok\n", "", "V\t2\n\n", "V\t2\n",
		"V\t2\n\n\x01", "INBOX\tx\n", "V\t2\n\nINBOX\tx\n", "&ZeVnLIqe-\n", ".\n", "a/b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := ParseSubscriptions(data)
		if s.Version != 1 && s.Version != 2 {
			t.Fatalf("ParseSubscriptions(%q).Version = %d", data, s.Version)
		}
		out := s.Marshal()
		if back := ParseSubscriptions(out); !reflect.DeepEqual(back, s) {
			t.Fatalf("ParseSubscriptions(%q) = %#v, but after Marshal (%q) %#v", data, s, out, back)
		}
		for _, name := range s.Names {
			if !s.Has(name) {
				t.Fatalf("ParseSubscriptions(%q): Has(%q) false", data, name)
			}
		}
	})
}
