package sieve

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, text string
		fold          bool
		want          bool
		vars          []string
	}{
		{"*", "", false, true, []string{"", ""}},
		{"", "", false, true, []string{""}},
		{"", "a", false, false, nil},
		{"?", "", false, false, nil},
		{"?", "ü", false, true, []string{"ü", "ü"}},
		{"a*b", "ab", false, true, []string{"ab", ""}},
		{"a*b", "axxb", false, true, []string{"axxb", "xx"}},
		{"a*b", "axxbc", false, false, nil},
		{"*<*@*", "Acme users <acme-users@lists.example.org>", false, true,
			[]string{"Acme users <acme-users@lists.example.org>", "Acme users ", "acme-users", "lists.example.org>"}},
		{"[*] *", "[acme-users] [fwd] version 1.0 is out", false, true,
			[]string{"[acme-users] [fwd] version 1.0 is out", "acme-users", "[fwd] version 1.0 is out"}},
		{"coyote@**.com", "coyote@ACME.Example.COM", true, true,
			[]string{"coyote@ACME.Example.COM", "", "ACME.Example"}},
		{"coyote@**.com", "coyote@ACME.Example.COM", false, false, nil},
		{"*make*money*fast*", "how to MAKE lots of MONEY fast", true, true,
			[]string{"how to MAKE lots of MONEY fast", "how to ", " lots of ", " ", ""}},
		{`\*`, "*", false, true, []string{"*"}},
		{`\*`, "a", false, false, nil},
		{`a\?`, "a?", false, true, []string{"a?"}},
		{`\\`, `\`, false, true, []string{`\`}},
		{`a\`, `a\`, false, true, []string{`a\`}}, // a trailing backslash is literal
		{`a\`, `a`, false, false, nil},
		{"?*?", "ab", false, true, []string{"ab", "a", "", "b"}},
		{"*a*a*a*a*a*b", strings.Repeat("a", 40), false, false, nil},
		{"ÄB*", "äbc", true, false, nil}, // i;ascii-casemap folds ASCII only
		{"äB*", "äbc", true, true, []string{"äbc", "c"}},
		{"*?x", "\xffx", false, true, []string{"\xffx", "", "\xff"}},
		{"0?2?4?6?8?ab", "0123456789ab", false, true, []string{"0123456789ab", "1", "3", "5", "7", "9"}},
		{"?????????????", "abcdefghijklm", false, true,
			[]string{"abcdefghijklm", "a", "b", "c", "d", "e", "f", "g", "h", "i"}},
	}
	for _, tt := range tests {
		got, vars := wildcardMatch(tt.pattern, tt.text, tt.fold, true)
		if got != tt.want || !reflect.DeepEqual(vars, tt.vars) {
			t.Errorf("wildcardMatch(%q, %q, fold=%v) = %v %q, want %v %q", tt.pattern, tt.text, tt.fold, got, vars, tt.want, tt.vars)
		}
		if got2, _ := wildcardMatch(tt.pattern, tt.text, tt.fold, false); got2 != got {
			t.Errorf("wildcardMatch(%q, %q) without variables = %v, with = %v", tt.pattern, tt.text, got2, got)
		}
	}
}

// TestWildcardWorstCase runs the classic exponential pattern on a long text;
// the matcher must finish in O(n·m) steps (the test has no timer: a
// backtracking matcher would simply never finish).
func TestWildcardWorstCase(t *testing.T) {
	text := strings.Repeat("a", 20000)
	pattern := strings.Repeat("*a", 30) + "b"
	if ok, _ := wildcardMatch(pattern, text, false, true); ok {
		t.Errorf("wildcardMatch(%q..., a×20000) = true, want false", pattern[:10])
	}
}

// referenceMatch is a plain recursive matcher, memoised so that it stays
// polynomial, for comparison.
func referenceMatch(toks []wildToken, s string) bool {
	memo := map[[2]int]bool{}
	var match func(ti, si int) bool
	match = func(ti, si int) bool {
		key := [2]int{ti, si}
		if v, ok := memo[key]; ok {
			return v
		}
		var ok bool
		switch {
		case ti == len(toks):
			ok = si == len(s)
		case toks[ti].kind == wildAny:
			ok = match(ti+1, si)
			if !ok && si < len(s) {
				_, w := utf8.DecodeRuneInString(s[si:])
				ok = match(ti, si+w)
			}
		case si == len(s):
			ok = false
		default:
			r, w := utf8.DecodeRuneInString(s[si:])
			ok = (toks[ti].kind == wildOne || r == toks[ti].r) && match(ti+1, si+w)
		}
		memo[key] = ok
		return ok
	}
	return match(0, 0)
}

// FuzzMatch checks the matcher against the recursive reference and checks
// that the match variables rebuild the text when the pattern has no literal.
func FuzzMatch(f *testing.F) {
	f.Add("*<*@*", "Acme <acme@example.org>", true)
	f.Add("a*b?c", "aXbYc", false)
	f.Add(`\**\?`, "*x?", false)
	f.Add("*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaab", true)
	f.Fuzz(func(t *testing.T, pattern, text string, fold bool) {
		ok, vars := wildcardMatch(pattern, text, fold, true)
		subject := text
		if fold {
			subject = foldASCII(text)
		}
		if len(pattern) <= 64 && len(text) <= 256 {
			if want := referenceMatch(compileWildcard(pattern, fold), subject); ok != want {
				t.Fatalf("wildcardMatch(%q, %q, %v) = %v, reference %v", pattern, text, fold, ok, want)
			}
		}
		if !ok {
			return
		}
		if vars[0] != text {
			t.Fatalf("wildcardMatch(%q, %q) ${0} = %q", pattern, text, vars[0])
		}
		if strings.Trim(pattern, "*?") == "" && len(vars) <= MaxMatchVariable && strings.Join(vars[1:], "") != text {
			t.Fatalf("wildcardMatch(%q, %q) variables %q do not rebuild the text", pattern, text, vars)
		}
	})
}

func TestCompareNumeric(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1", 0}, {"01", "1", 0}, {"2", "10", -1}, {"10", "2", 1},
		{"", "", 0}, {"x", "y", 0}, {"x", "99999999999999999999999", 1}, {"5", "x", -1},
		{"123abc", "123", 0}, {"0", "000", 0},
		{"184467440737095516160", "184467440737095516161", -1},
	}
	for _, tt := range tests {
		if got := compareNumeric(tt.a, tt.b); got != tt.want {
			t.Errorf("compareNumeric(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestComparison(t *testing.T) {
	tests := []struct {
		name       string
		cmp        comparison
		value, key string
		want       bool
	}{
		{"casemap is", comparison{cmpCasemap, matchIs, 0}, "Hello", "hELLO", true},
		{"octet is", comparison{cmpOctet, matchIs, 0}, "Hello", "hello", false},
		{"casemap contains", comparison{cmpCasemap, matchContains, 0}, "Make Money", "money", true},
		{"octet contains", comparison{cmpOctet, matchContains, 0}, "Make Money", "money", false},
		{"contains empty", comparison{cmpOctet, matchContains, 0}, "", "", true},
		{"casemap value gt", comparison{cmpCasemap, matchValue, relGT}, "zed", "M", true},
		{"casemap value lt", comparison{cmpCasemap, matchValue, relLT}, "adam", "M", true},
		{"numeric value le", comparison{cmpNumeric, matchValue, relLE}, "3", "3", true},
		{"numeric value ne", comparison{cmpNumeric, matchValue, relNE}, "3", "03", false},
		{"numeric value ge", comparison{cmpNumeric, matchValue, relGE}, "x", "3", true},
		{"numeric is", comparison{cmpNumeric, matchIs, 0}, "007", "7", true},
	}
	for _, tt := range tests {
		budget := int64(1000)
		if got, _, _ := tt.cmp.matchOne(tt.value, tt.key, false, &budget); got != tt.want {
			t.Errorf("%s: matchOne(%q, %q) = %v, want %v", tt.name, tt.value, tt.key, got, tt.want)
		}
	}
}
