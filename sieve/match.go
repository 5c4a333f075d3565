package sieve

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

type comparator int

const (
	cmpCasemap comparator = iota // i;ascii-casemap, the default (RFC 5228 §2.7.3)
	cmpOctet                     // i;octet
	cmpNumeric                   // i;ascii-numeric (RFC 4790 §9.1)
)

type matchType int

const (
	matchIs matchType = iota
	matchContains
	matchMatches
	matchCount // RFC 5231 §4.1
	matchValue // RFC 5231 §4.2
)

type relOp int

const (
	relGT relOp = iota
	relGE
	relLT
	relLE
	relEQ
	relNE
)

var relOps = map[string]relOp{"gt": relGT, "ge": relGE, "lt": relLT, "le": relLE, "eq": relEQ, "ne": relNE}

func (op relOp) holds(c int) bool {
	switch op {
	case relGT:
		return c > 0
	case relGE:
		return c >= 0
	case relLT:
		return c < 0
	case relLE:
		return c <= 0
	case relEQ:
		return c == 0
	}
	return c != 0
}

// comparison is the comparator and match type of one test.
type comparison struct {
	comparator comparator
	match      matchType
	rel        relOp
}

// foldASCII maps a-z to A-Z and leaves every other byte alone, so byte
// offsets stay valid (i;ascii-casemap, RFC 4790 §9.2).
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'a' && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// compare orders a and b under the comparator (for :value and :count).
func (c comparator) compare(a, b string) int {
	switch c {
	case cmpNumeric:
		return compareNumeric(a, b)
	case cmpCasemap:
		a, b = foldASCII(a), foldASCII(b)
	}
	return strings.Compare(a, b)
}

// compareNumeric implements i;ascii-numeric: a string's value is the number
// its leading digits spell; a string that does not start with a digit is
// positive infinity, equal to any other such string (RFC 4790 §9.1.1).
// Numbers of any length compare without overflow.
func compareNumeric(a, b string) int {
	na, oka := leadingDigits(a)
	nb, okb := leadingDigits(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return 1
	case !okb:
		return -1
	}
	if len(na) != len(nb) {
		if len(na) < len(nb) {
			return -1
		}
		return 1
	}
	return strings.Compare(na, nb)
}

func leadingDigits(s string) (string, bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return "", false
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, true
}

// errMatchBudget ends a run whose :matches tests took too many steps.
var errMatchBudget = fmt.Errorf("sieve: :matches took more than %d steps", MaxMatchSteps)

// matchOne compares one value with one key for :is, :contains, :matches and
// :value. For :matches it also returns the match variables; budget counts
// down the matcher's steps.
func (cm comparison) matchOne(value, key string, wantVars bool, budget *int64) (bool, []string, error) {
	switch cm.match {
	case matchIs:
		return cm.comparator.compare(value, key) == 0, nil, nil
	case matchContains:
		if cm.comparator == cmpCasemap {
			return strings.Contains(foldASCII(value), foldASCII(key)), nil, nil
		}
		return strings.Contains(value, key), nil, nil
	case matchMatches:
		ok, vars := wildcardMatchBudget(key, value, cm.comparator == cmpCasemap, wantVars, budget)
		if *budget < 0 {
			return false, nil, errMatchBudget
		}
		return ok, vars, nil
	case matchValue:
		return cm.rel.holds(cm.comparator.compare(value, key)), nil, nil
	}
	return false, nil, nil
}

// test runs the comparison over all values and keys: true when any value
// matches any key, or for :count when the number of values compares as asked
// with any key. A successful :matches sets the match variables (RFC 5229
// §3.2); a failing test leaves them alone.
func (cm comparison) test(r *run, values []string, keys []*str) (bool, error) {
	ks := expandAll(r, keys)
	if cm.match == matchCount {
		n := strconv.Itoa(len(values))
		for _, k := range ks {
			if cm.rel.holds(cm.comparator.compare(n, k)) {
				return true, nil
			}
		}
		return false, nil
	}
	wantVars := cm.match == matchMatches && r.script.exts["variables"]
	for _, v := range values {
		for _, k := range ks {
			ok, vars, err := cm.matchOne(v, k, wantVars, &r.matchBudget)
			if err != nil {
				return false, err
			}
			if ok {
				if wantVars {
					r.matchVars = vars
				}
				return true, nil
			}
		}
	}
	return false, nil
}

type wildKind uint8

const (
	wildLiteral wildKind = iota
	wildOne              // ?
	wildAny              // *
)

type wildToken struct {
	kind wildKind
	r    rune
}

func compileWildcard(pattern string, fold bool) []wildToken {
	toks := make([]wildToken, 0, len(pattern))
	for i := 0; i < len(pattern); {
		r, w := utf8.DecodeRuneInString(pattern[i:])
		i += w
		switch r {
		case '*':
			toks = append(toks, wildToken{kind: wildAny})
		case '?':
			toks = append(toks, wildToken{kind: wildOne})
		case '\\':
			if i < len(pattern) {
				r, w = utf8.DecodeRuneInString(pattern[i:])
				i += w
			}
			fallthrough
		default:
			if fold && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			toks = append(toks, wildToken{kind: wildLiteral, r: r})
		}
	}
	return toks
}

// wildcardMatch matches text against a :matches pattern: "*" is any
// sequence, "?" one character, "\" quotes the next character (RFC 5228
// §2.7.1). It backtracks only to the most recent "*", never recursively, so
// it takes at most O(len(pattern) × len(text)) steps and constant extra
// memory whatever the input. Each wildcard takes the shortest text that lets
// the rest match, left to right, which gives the match variables of
// RFC 5229 §3.2: ${0} is the whole text, ${1}... the wildcards in order.
func wildcardMatch(pattern, text string, fold, wantVars bool) (bool, []string) {
	budget := int64(math.MaxInt64)
	return wildcardMatchBudget(pattern, text, fold, wantVars, &budget)
}

// wildcardMatchBudget is wildcardMatch that gives up, leaving *budget
// negative, after *budget steps.
func wildcardMatchBudget(pattern, text string, fold, wantVars bool, budget *int64) (bool, []string) {
	toks := compileWildcard(pattern, fold)
	subject := text
	if fold {
		subject = foldASCII(text)
	}
	// capture[i] holds the byte range of wildcard token i.
	var capStart, capEnd []int
	if wantVars {
		capStart, capEnd = make([]int, len(toks)), make([]int, len(toks))
	}
	ti, si := 0, 0
	star, starSi := -1, 0
	for {
		if *budget--; *budget < 0 {
			return false, nil
		}
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case wildAny:
				star, starSi = ti, si
				if wantVars {
					capStart[ti], capEnd[ti] = si, si
				}
				ti++
				continue
			case wildOne:
				if si < len(subject) {
					_, w := utf8.DecodeRuneInString(subject[si:])
					if wantVars {
						capStart[ti], capEnd[ti] = si, si+w
					}
					si += w
					ti++
					continue
				}
			case wildLiteral:
				if si < len(subject) {
					r, w := utf8.DecodeRuneInString(subject[si:])
					if r == t.r {
						si += w
						ti++
						continue
					}
				}
			}
		} else if si == len(subject) {
			break
		}
		// Mismatch: let the most recent "*" take one more character.
		if star < 0 || starSi >= len(subject) {
			return false, nil
		}
		_, w := utf8.DecodeRuneInString(subject[starSi:])
		starSi += w
		if wantVars {
			capEnd[star] = starSi
		}
		ti, si = star+1, starSi
	}
	if !wantVars {
		return true, nil
	}
	vars := []string{text}
	for i, t := range toks {
		if t.kind != wildLiteral && len(vars) <= MaxMatchVariable {
			vars = append(vars, text[capStart[i]:capEnd[i]])
		}
	}
	return true, vars
}
