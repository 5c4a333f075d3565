package address

import (
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"alice@example.org", "ALICE@EXAMPLE.ORG", `"user@remote.example"@example.org`, "user%remote.example@example.org",
	"remote.example!user@example.org", "user@remote.example@example.org", "alice@example.org.", "a@.org", "a@b..c",
	"alice@[127.0.0.1]", "alice@[IPv6:2001:db8::1]", "ü@bücher.example", `"a\"b\\c"@x.example`, `"alice"@example.org`,
	"<@example.org:user@remote.example>", "<>", "<alice@example.org>", "@a.example,@[IPv6:::1]:b@c.example",
	"alice+lists@example.org", `"../../etc"@example.org`, "a@xn--bcher-kva.example", "\"\x00\"@x.example",
}

// FuzzParse checks that Parse never panics, that what it accepts prints as
// something that parses back to the same Address (so the same Key), and that
// the result respects the length limits.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		checkParsed(t, s, a)
	})
}

// FuzzParsePath checks ParsePath the same way; "<>" is the only input that
// gives the zero Address.
func FuzzParsePath(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParsePath(s)
		if err != nil {
			return
		}
		if a.IsZero() {
			if s != "<>" {
				t.Fatalf("ParsePath(%q) = zero Address, only \"<>\" may give it", s)
			}
			return
		}
		checkParsed(t, s, a)
		if b, err := ParsePath("<" + a.String() + ">"); err != nil || b != a {
			t.Fatalf("ParsePath(<%s>) = %+v, %v; want %+v", a.String(), b, err, a)
		}
	})
}

func checkParsed(t *testing.T, in string, a Address) {
	t.Helper()
	if a.Local == "" || a.Domain == "" {
		t.Fatalf("Parse(%q) = %+v: an empty part", in, a)
	}
	s := a.String()
	b, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q) = %+v, but Parse(its String %q) = %v", in, a, s, err)
	}
	if b != a || b.Key() != a.Key() {
		t.Fatalf("Parse(%q) = %+v (key %q), Parse(%q) = %+v (key %q)", in, a, a.Key(), s, b, b.Key())
	}
	if FoldLocal(FoldLocal(a.Local)) != FoldLocal(a.Local) {
		t.Fatalf("FoldLocal is not idempotent on %q", a.Local)
	}
	if len(s) > MaxAddress {
		t.Fatalf("Parse(%q).String() = %q, longer than %d", in, s, MaxAddress)
	}
	if d, err := ParseDomain(a.Domain); err != nil || d != a.Domain {
		t.Fatalf("ParseDomain(%q) = %q, %v; want it unchanged", a.Domain, d, err)
	}
	if !IsLiteral(a.Domain) {
		if err := ValidDomain(a.Domain); err != nil {
			t.Fatalf("ValidDomain(%q) = %v for a parsed domain", a.Domain, err)
		}
		if strings.ContainsAny(a.Domain, "/\\@ ") || strings.HasPrefix(a.Domain, ".") {
			t.Fatalf("Parse(%q): domain %q could not be a directory name", in, a.Domain)
		}
	}
}
