package address

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestParse(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name, in    string
		local, dom  string // want, when ok
		ok          bool
		wantString  string // String() of the result, when it differs from in
		wantKeyWhen string // Key() of the result, when checked
	}{
		{name: "simple", in: "alice@example.org", local: "alice", dom: "example.org", ok: true},
		{name: "upper-case domain lowered", in: "Alice@EXAMPLE.Org", local: "Alice", dom: "example.org", ok: true,
			wantString: "Alice@example.org", wantKeyWhen: "alice@example.org"},
		{name: "dots and atext", in: "a.b-c_d+e!f#g$h%i&j'k*l/m=n?o^p`q{r|s}t~u@x.example", ok: true,
			local: "a.b-c_d+e!f#g$h%i&j'k*l/m=n?o^p`q{r|s}t~u", dom: "x.example"},
		{name: "percent hack is just a local part", in: "user%remote.example@example.org", local: "user%remote.example", dom: "example.org", ok: true},
		{name: "bang path is just a local part", in: "remote.example!user@example.org", local: "remote.example!user", dom: "example.org", ok: true},
		{name: "single label domain", in: "root@localhost", local: "root", dom: "localhost", ok: true},
		{name: "quoted with at sign", in: `"user@remote.example"@example.org`, local: "user@remote.example", dom: "example.org", ok: true},
		{name: "quoted with space", in: `"john smith"@example.org`, local: "john smith", dom: "example.org", ok: true},
		{name: "quoted pair", in: `"a\"b\\c"@example.org`, local: `a"b\c`, dom: "example.org", ok: true},
		{name: "needless quotes dropped", in: `"alice"@example.org`, local: "alice", dom: "example.org", ok: true,
			wantString: "alice@example.org"},
		{name: "needless quoted pair dropped", in: `"\a\lice"@example.org`, local: "alice", dom: "example.org", ok: true,
			wantString: "alice@example.org"},
		{name: "quoted dots", in: `".a..b."@example.org`, local: ".a..b.", dom: "example.org", ok: true},
		{name: "UTF-8 local part", in: "用户@example.org", local: "用户", dom: "example.org", ok: true},
		{name: "UTF-8 local part key folded", in: "ÉLODIE@example.org", local: "ÉLODIE", dom: "example.org", ok: true,
			wantKeyWhen: "élodie@example.org"},
		{name: "UTF-8 quoted", in: `"ü ü"@example.org`, local: "ü ü", dom: "example.org", ok: true},
		{name: "IDNA domain", in: "alice@bücher.example", local: "alice", dom: "xn--bcher-kva.example", ok: true,
			wantString: "alice@xn--bcher-kva.example"},
		{name: "IDNA domain upper case", in: "alice@BÜCHER.Example", local: "alice", dom: "xn--bcher-kva.example", ok: true,
			wantString: "alice@xn--bcher-kva.example"},
		{name: "A-label kept", in: "alice@XN--BCHER-KVA.example", local: "alice", dom: "xn--bcher-kva.example", ok: true,
			wantString: "alice@xn--bcher-kva.example"},
		{name: "sharp s nontransitional", in: "a@straße.example", local: "a", dom: "xn--strae-oqa.example", ok: true,
			wantString: "a@xn--strae-oqa.example"},
		{name: "IPv4 literal", in: "alice@[127.0.0.1]", local: "alice", dom: "[127.0.0.1]", ok: true},
		{name: "IPv4 literal leading zeros", in: "alice@[127.000.0.01]", local: "alice", dom: "[127.0.0.1]", ok: true,
			wantString: "alice@[127.0.0.1]"},
		{name: "IPv6 literal", in: "alice@[IPv6:2001:DB8:0::1]", local: "alice", dom: "[IPv6:2001:db8::1]", ok: true,
			wantString: "alice@[IPv6:2001:db8::1]"},
		{name: "IPv6 literal lower-case tag", in: "alice@[ipv6:::1]", local: "alice", dom: "[IPv6:::1]", ok: true,
			wantString: "alice@[IPv6:::1]"},
		{name: "local part 64", in: strings.Repeat("l", 64) + "@example.org", local: strings.Repeat("l", 64), dom: "example.org", ok: true},
		{name: "whole 254", in: "a@" + long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 56) + ".org", ok: true,
			local: "a", dom: long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 56) + ".org"},

		{name: "empty", in: ""},
		{name: "no at", in: "alice"},
		{name: "empty local", in: "@example.org"},
		{name: "empty quoted local", in: `""@example.org`},
		{name: "empty domain", in: "alice@"},
		{name: "two at signs", in: "user@remote.example@example.org"},
		{name: "at in domain", in: "a@b@c"},
		{name: "trailing dot domain", in: "alice@example.org."},
		{name: "leading dot domain", in: "a@.org"},
		{name: "double dot domain", in: "a@b..c"},
		{name: "leading dot local", in: ".alice@example.org"},
		{name: "trailing dot local", in: "alice.@example.org"},
		{name: "double dot local", in: "al..ice@example.org"},
		{name: "space", in: "al ice@example.org"},
		{name: "NUL", in: "al\x00ice@example.org"},
		{name: "NUL quoted", in: "\"al\x00ice\"@example.org"},
		{name: "newline", in: "alice\n@example.org"},
		{name: "CR quoted", in: "\"a\rb\"@example.org"},
		{name: "DEL quoted", in: "\"a\x7fb\"@example.org"},
		{name: "C1 control", in: "a\u0085b@example.org"},
		{name: "bidi override", in: "a\u202eb@example.org"},
		{name: "no-break space", in: "a\u00a0b@example.org"},
		{name: "invalid UTF-8 local", in: "a\xffb@example.org"},
		{name: "invalid UTF-8 domain", in: "a@b\xff.example"},
		{name: "unbalanced quote", in: `"alice@example.org`},
		{name: "quote mid local", in: `al"ice"@example.org`},
		{name: "text after quote", in: `"alice"x@example.org`},
		{name: "quoted pair of control", in: "\"a\\\x01\"@example.org"},
		{name: "backslash unquoted", in: `a\b@example.org`},
		{name: "angle brackets", in: "<alice@example.org>"},
		{name: "underscore domain", in: "a@ex_ample.org"},
		{name: "hyphen at label start", in: "a@-example.org"},
		{name: "hyphen at label end", in: "a@example-.org"},
		{name: "slash domain", in: "a@example.org/../x"},
		{name: "space domain", in: "a@example .org"},
		{name: "numeric TLD", in: "a@127.0.0.1"},
		{name: "label 64", in: "a@" + strings.Repeat("x", 64) + ".org"},
		{name: "local part 65", in: strings.Repeat("l", 65) + "@example.org"},
		{name: "quoted local part 65 as written", in: `"` + strings.Repeat("l", 63) + `"@example.org`},
		{name: "whole 255", in: "ab@" + long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 56) + ".org"},
		{name: "UTF-8 domain too long as A-label", in: "a@" + strings.Repeat("ü.", 40) + "org"},
		{name: "bad A-label", in: "a@xn--zz.example"},
		{name: "ASCII-only A-label", in: "a@xn--abc-.example"},
		{name: "literal unterminated", in: "a@[1.2.3.4"},
		{name: "literal bad IPv4", in: "a@[1.2.3.256]"},
		{name: "literal short IPv4", in: "a@[1.2.3]"},
		{name: "literal IPv6 without tag", in: "a@[::1]"},
		{name: "literal IPv6 zone", in: "a@[IPv6:fe80::1%eth0]"},
		{name: "literal IPv4 in IPv6 tag", in: "a@[IPv6:1.2.3.4]"},
		{name: "general literal", in: "a@[x-tag:stuff]"},
		{name: "literal with trailing text", in: "a@[1.2.3.4].org"},
		{name: "ideographic full stop trailing", in: "a@bücher.example\u3002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tc.in, got)
				}
				if !errors.Is(err, ErrSyntax) {
					t.Errorf("Parse(%q) error %v does not wrap ErrSyntax", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want %q @ %q", tc.in, err, tc.local, tc.dom)
			}
			if got.Local != tc.local || got.Domain != tc.dom {
				t.Errorf("Parse(%q) = %q @ %q, want %q @ %q", tc.in, got.Local, got.Domain, tc.local, tc.dom)
			}
			want := tc.wantString
			if want == "" {
				want = tc.in
			}
			if s := got.String(); s != want {
				t.Errorf("Parse(%q).String() = %q, want %q", tc.in, s, want)
			}
			if tc.wantKeyWhen != "" && got.Key() != tc.wantKeyWhen {
				t.Errorf("Parse(%q).Key() = %q, want %q", tc.in, got.Key(), tc.wantKeyWhen)
			}
			back, err := Parse(got.String())
			if err != nil || back != got {
				t.Errorf("Parse(%q) = %+v, %v; want %+v back", got.String(), back, err, got)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Address
		ok       bool
	}{
		{name: "bracketed", in: "<alice@example.org>", want: Address{"alice", "example.org"}, ok: true},
		{name: "bare for command lines", in: "alice@example.org", want: Address{"alice", "example.org"}, ok: true},
		{name: "null sender", in: "<>", want: Address{}, ok: true},
		{name: "source route stripped", in: "<@example.org:user@remote.example>", want: Address{"user", "remote.example"}, ok: true},
		{name: "source route without brackets", in: "@example.org:user@remote.example", want: Address{"user", "remote.example"}, ok: true},
		{name: "long source route", in: "<@a.example,@[IPv6:::1],@[192.0.2.1]:bob@b.example>", want: Address{"bob", "b.example"}, ok: true},
		{name: "quoted with brackets and colon", in: `<"a>b:c"@example.org>`, want: Address{"a>b:c", "example.org"}, ok: true},
		{name: "UTF-8", in: "<ü@bücher.example>", want: Address{"ü", "xn--bcher-kva.example"}, ok: true},

		{name: "empty", in: ""},
		{name: "open only", in: "<alice@example.org"},
		{name: "close only", in: "alice@example.org>"},
		{name: "lone open", in: "<"},
		{name: "lone close", in: ">"},
		{name: "nested", in: "<<alice@example.org>>"},
		{name: "null inside null", in: "<<>>"},
		{name: "spaces inside", in: "< alice@example.org >"},
		{name: "parameters attached", in: "<alice@example.org> SIZE=10"},
		{name: "route without colon", in: "<@example.org,user@remote.example>"},
		{name: "route with empty domain", in: "<@:user@remote.example>"},
		{name: "route with bad domain", in: "<@exa mple.org:user@remote.example>"},
		{name: "route with trailing comma", in: "<@a.example,:user@remote.example>"},
		{name: "route only", in: "<@a.example:>"},
		{name: "two at signs", in: "<user@remote.example@example.org>"},
		{name: "too long", in: "<@" + strings.Repeat("a", 60) + ".example,@" + strings.Repeat("b", 60) + ".example,@" +
			strings.Repeat("c", 60) + ".example,@" + strings.Repeat("d", 60) + ".example:x@example.org>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePath(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParsePath(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePath(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestKeyEquality(t *testing.T) {
	for _, tc := range []struct{ name, a, b string }{
		{"upper-case everything", "ALICE@EXAMPLE.ORG", "alice@example.org"},
		{"upper-case domain", "alice@EXAMPLE.org", "alice@example.org"},
		{"quoted equals unquoted", `"alice"@example.org`, "alice@example.org"},
		{"UTF-8 domain equals A-label", "alice@bücher.example", "alice@xn--bcher-kva.example"},
		{"full-width domain", "alice@ｅｘａｍｐｌｅ.org", "alice@example.org"},
		{"Greek", "ΣΟΦΙΑ@example.org", "σοφια@example.org"},
		{"Greek final sigma", "ΟΔΟΣ@example.org", "οδος@example.org"},
		{"Kelvin sign", "\u212aate@example.org", "kate@example.org"},
		{"long s", "ſam@example.org", "sam@example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.a)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.a, err)
			}
			b, err := Parse(tc.b)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tc.b, err)
			}
			if a.Key() != b.Key() {
				t.Errorf("Parse(%q).Key() = %q, Parse(%q).Key() = %q, want equal", tc.a, a.Key(), tc.b, b.Key())
			}
		})
	}
	for _, tc := range []struct{ name, a, b string }{
		{"dotless i", "alıce@example.org", "alice@example.org"},
		{"dotted capital I", "ALİCE@example.org", "alice@example.org"},
		{"sharp s", "straße@example.org", "strasse@example.org"},
		{"subaddress", "alice+x@example.org", "alice@example.org"},
		{"literal", "alice@[127.0.0.1]", "alice@localhost"},
	} {
		t.Run("distinct "+tc.name, func(t *testing.T) {
			a, _ := Parse(tc.a)
			b, _ := Parse(tc.b)
			if a.Key() == b.Key() {
				t.Errorf("Parse(%q).Key() = Parse(%q).Key() = %q, want different", tc.a, tc.b, a.Key())
			}
		})
	}
}

// TestFoldRuneOrbits checks over all of Unicode that every member of a simple
// case folding orbit folds to the same rune, which is itself in the orbit.
func TestFoldRuneOrbits(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		f := foldRune(r)
		inOrbit := f == r
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if foldRune(o) != f {
				t.Fatalf("foldRune(%U) = %U but foldRune(%U) = %U", r, f, o, foldRune(o))
			}
			inOrbit = inOrbit || o == f
		}
		if !inOrbit {
			t.Fatalf("foldRune(%U) = %U, not in its folding orbit", r, f)
		}
	}
}

func TestSplitDetail(t *testing.T) {
	for _, tc := range []struct{ in, base, detail string }{
		{"alice+lists", "alice", "lists"},
		{"alice", "alice", ""},
		{"alice+", "alice", ""},
		{"alice+a+b", "alice", "a+b"},
		{"+lists", "+lists", ""},
		{"", "", ""},
		{"alice+../../x", "alice", "../../x"},
	} {
		if b, d := SplitDetail(tc.in); b != tc.base || d != tc.detail {
			t.Errorf("SplitDetail(%q) = %q, %q; want %q, %q", tc.in, b, d, tc.base, tc.detail)
		}
	}
}

func TestValidUserLocal(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true}, {"a.b-c_d", true}, {"0", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"Alice", false}, {"alice+x", false},
		{".alice", false}, {"alice.", false}, {"a..b", false}, {"..", false}, {".", false},
		{"a/b", false}, {"a b", false}, {"a\x00", false}, {"élodie", false}, {`a\b`, false}, {"a@b", false},
	} {
		if err := ValidUserLocal(tc.in); (err == nil) != tc.ok {
			t.Errorf("ValidUserLocal(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestValidDomain(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"example.org", true}, {"xn--bcher-kva.example", true}, {"localhost", true},
		{"", false}, {"Example.org", false}, {"bücher.example", false}, {"example.org.", false},
		{"[127.0.0.1]", false}, {"[IPv6:::1]", false}, {"..", false}, {"a/b", false}, {"1.2.3.4", false},
	} {
		if err := ValidDomain(tc.in); (err == nil) != tc.ok {
			t.Errorf("ValidDomain(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestZero(t *testing.T) {
	var z Address
	if !z.IsZero() || z.String() != "" || z.Key() != "" {
		t.Errorf("zero Address: IsZero %v, String %q, Key %q", z.IsZero(), z.String(), z.Key())
	}
	if a, _ := Parse("a@example.org"); a.IsZero() {
		t.Errorf("Parse(a@example.org).IsZero() = true")
	}
}
