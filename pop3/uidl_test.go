package pop3

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/postkit/postkit/maildir/uidlist"
)

func TestUIDL(t *testing.T) {
	tests := []struct {
		name          string
		uid, validity uint32
		want          string
	}{
		{"small", 1, 1700000000, "000000016553f100"},
		{"lower-case hex, as Dovecot", 0xabc, 0xdef, "00000abc00000def"},
		{"largest", math.MaxUint32 - 1, math.MaxUint32, "fffffffeffffffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UIDL(tt.uid, tt.validity); got != tt.want {
				t.Errorf("UIDL(%d, %d) = %q, want %q", tt.uid, tt.validity, got, tt.want)
			}
		})
	}
}

func TestEntryUIDL(t *testing.T) {
	const base = "1700000001.M1P1.host,S=10,W=12"
	tests := []struct {
		name string
		ext  []uidlist.Field
		want string
	}{
		{"no fields", nil, "0000000700000009"},
		{"other fields", ext("W12", "Gx"), "0000000700000009"},
		{"saved UIDL", ext("W12", "PUID123-abc"), "UID123-abc"},
		{"saved empty: the base name", ext("P"), base},
		{"saved longer than 70 kept", ext("P" + strings.Repeat("x", 80)), strings.Repeat("x", 80)},
		{"saved with 8-bit octet ignored", ext("Pcaf\xe9"), "0000000700000009"},
		{"first P counts", ext("Pone", "Ptwo"), "one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := uidlist.Entry{UID: 7, Base: base, Ext: tt.ext}
			if got := entryUIDL(e, 9); got != tt.want {
				t.Errorf("entryUIDL(%v) = %q, want %q", tt.ext, got, tt.want)
			}
		})
	}
	// A base name that cannot be a UIDL (a space) falls back too.
	e := uidlist.Entry{UID: 7, Base: "with space", Ext: ext("P")}
	if got := entryUIDL(e, 9); got != "0000000700000009" {
		t.Errorf("entryUIDL(base %q, empty P) = %q, want the default form", e.Base, got)
	}
}

func TestPOP3Order(t *testing.T) {
	tests := []struct {
		name string
		ext  []uidlist.Field
		want uint64
	}{
		{"none", nil, math.MaxUint32},
		{"number", ext("O12"), 12},
		{"zero", ext("O0"), 0},
		{"not a number", ext("Ox1"), math.MaxUint32},
		{"signed", ext("O+1"), math.MaxUint32},
		{"empty", ext("O"), math.MaxUint32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pop3Order(uidlist.Entry{Ext: tt.ext}); got != tt.want {
				t.Errorf("pop3Order(%v) = %d, want %d", tt.ext, got, tt.want)
			}
		})
	}
}

// ext returns record fields written as in the file: key letter and value.
func ext(fields ...string) []uidlist.Field {
	var out []uidlist.Field
	for _, f := range fields {
		out = append(out, uidlist.Field{Key: f[0], Value: f[1:]})
	}
	return out
}

var defaultForm = regexp.MustCompile(`^[0-9a-f]{16}$`)

// FuzzEntryUIDL: whatever a uidlist record holds, the UIDL is one word of
// octets 0x21-0x7E, and without a usable P field it is the default form of
// the UID and UIDVALIDITY, which differs for different UIDs.
func FuzzEntryUIDL(f *testing.F) {
	f.Add(uint32(1), uint32(1700000000), "1700000001.M1P1.host,S=10,W=12", "", false)
	f.Add(uint32(2), uint32(5), "a b", "", true)
	f.Add(uint32(3), uint32(5), "base", "UIDL-1", true)
	f.Add(uint32(4), uint32(5), "base", "x\x00y", true)
	f.Fuzz(func(t *testing.T, uid, validity uint32, base, saved string, hasP bool) {
		e := uidlist.Entry{UID: uid, Base: base}
		if hasP {
			e.Ext = []uidlist.Field{{Key: 'P', Value: saved}}
		}
		got := entryUIDL(e, validity)
		if !printable(got) {
			t.Fatalf("entryUIDL(%d, %q, P=%q/%t) = %q: not 0x21-0x7E octets", uid, base, saved, hasP, got)
		}
		usable := hasP && (printable(saved) || saved == "" && printable(base))
		if !usable {
			if got != fmt.Sprintf("%08x%08x", uid, validity) || !defaultForm.MatchString(got) {
				t.Fatalf("entryUIDL(%d, %q, P=%q/%t) = %q, want the default form", uid, base, saved, hasP, got)
			}
			if other := UIDL(uid+1, validity); uid+1 != 0 && other == got {
				t.Fatalf("UIDs %d and %d share the UIDL %q", uid, uid+1, got)
			}
		}
	})
}
