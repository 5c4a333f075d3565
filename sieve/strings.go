package sieve

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// str is a string argument. Without the variables extension, or without
// references, it is the constant text; otherwise parts are expanded at run
// time, once and not recursively (RFC 5229 §3), so expansion always ends.
type str struct {
	text  string
	parts []strPart
}

type strPart struct {
	lit   string
	name  string // variable name, lower case
	num   int    // match variable number when match is set
	match bool
}

func (s *str) constant() bool { return s.parts == nil }

func (s *str) expand(r *run) string {
	if s.parts == nil {
		return s.text
	}
	var b strings.Builder
	for _, p := range s.parts {
		switch {
		case p.match:
			if p.num < len(r.matchVars) {
				b.WriteString(r.matchVars[p.num])
			}
		case p.name != "":
			b.WriteString(r.vars[p.name])
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

func expandAll(r *run, ss []*str) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.expand(r)
	}
	return out
}

// validName reports whether name is a variable-name of RFC 5229 §3: a number
// (match variable) or identifiers joined by dots (a namespace).
func validName(name string) bool {
	if name == "" {
		return false
	}
	if strings.Trim(name, "0123456789") == "" {
		return true
	}
	for _, id := range strings.Split(name, ".") {
		if !isIdentifier(id) {
			return false
		}
	}
	return true
}

// parseTemplate finds the variable references "${name}" in s. A "${" that
// does not start a valid reference is literal text (RFC 5229 §3: "${BAD${x}"
// is "${BAD" followed by x).
func parseTemplate(s string) (*str, error) {
	var parts []strPart
	var lit strings.Builder
	refs := 0
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 >= len(s) || s[i+1] != '{' {
			lit.WriteByte(s[i])
			i++
			continue
		}
		j := i + 2
		for j < len(s) && (isAlpha(s[j]) || isDigit(s[j]) || s[j] == '_' || s[j] == '.') {
			j++
		}
		name := s[i+2 : j]
		if j >= len(s) || s[j] != '}' || !validName(name) {
			lit.WriteByte('$')
			i++
			continue
		}
		if strings.Contains(name, ".") {
			return nil, fmt.Errorf("unknown variable namespace in ${%s}", name)
		}
		if lit.Len() > 0 {
			parts = append(parts, strPart{lit: lit.String()})
			lit.Reset()
		}
		if isDigit(name[0]) {
			n, err := strconv.Atoi(name)
			if err != nil || n > MaxMatchVariable {
				n = MaxMatchVariable + 1 // never set: expands to ""
			}
			parts = append(parts, strPart{num: n, match: true})
		} else {
			parts = append(parts, strPart{name: strings.ToLower(name)})
		}
		refs++
		i = j + 1
	}
	if refs == 0 {
		return &str{text: s}, nil
	}
	if lit.Len() > 0 {
		parts = append(parts, strPart{lit: lit.String()})
	}
	return &str{parts: parts}, nil
}

// decodeEncoded replaces "${hex:...}" and "${unicode:...}" sequences
// (RFC 5228 §2.4.2.4). A malformed sequence stays as it is; a code point
// outside Unicode, or a surrogate, is an error.
func decodeEncoded(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			break
		}
		body := s[i+2 : i+end]
		colon := strings.IndexByte(body, ':')
		decoded, ok, err := "", false, error(nil)
		if colon >= 0 {
			switch strings.ToLower(body[:colon]) {
			case "hex":
				decoded, ok = decodeHexPairs(body[colon+1:])
			case "unicode":
				decoded, ok, err = decodeUnicode(body[colon+1:])
			}
		}
		if err != nil {
			return "", err
		}
		if !ok {
			b.WriteByte('$')
			i++
			continue
		}
		b.WriteString(decoded)
		i += end + 1
	}
	return b.String(), nil
}

func encodedFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' })
}

func decodeHexPairs(s string) (string, bool) {
	f := encodedFields(s)
	if len(f) == 0 {
		return "", false
	}
	var b strings.Builder
	for _, h := range f {
		if len(h) > 2 {
			return "", false
		}
		v, err := strconv.ParseUint(h, 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
	}
	return b.String(), true
}

var errCodePoint = errors.New("encoded character is not a Unicode scalar value")

func decodeUnicode(s string) (string, bool, error) {
	f := encodedFields(s)
	if len(f) == 0 {
		return "", false, nil
	}
	var b strings.Builder
	for _, h := range f {
		for _, c := range h {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return "", false, nil
			}
		}
		h = strings.TrimLeft(h, "0")
		if h == "" {
			h = "0"
		}
		v, err := strconv.ParseUint(h, 16, 32)
		if err != nil || v > unicode.MaxRune || v >= 0xD800 && v <= 0xDFFF {
			return "", false, fmt.Errorf("%w: ${unicode:%s}", errCodePoint, h)
		}
		b.WriteRune(rune(v))
	}
	return b.String(), true, nil
}

// Modifiers of the set command, applied from the highest precedence down
// (RFC 5229 §4.1).
type modifier int

const (
	modLower modifier = iota
	modUpper
	modLowerFirst
	modUpperFirst
	modQuoteWildcard
	modLength
)

var modifierTags = map[string]struct {
	mod        modifier
	precedence int
}{
	"lower": {modLower, 40}, "upper": {modUpper, 40},
	"lowerfirst": {modLowerFirst, 30}, "upperfirst": {modUpperFirst, 30},
	"quotewildcard": {modQuoteWildcard, 20},
	"length":        {modLength, 10},
}

func applyModifier(m modifier, v string) string {
	switch m {
	case modLower:
		return strings.ToLower(v)
	case modUpper:
		return strings.ToUpper(v)
	case modLowerFirst, modUpperFirst:
		r, w := utf8.DecodeRuneInString(v)
		if w == 0 {
			return v
		}
		if m == modLowerFirst {
			return string(unicode.ToLower(r)) + v[w:]
		}
		return string(unicode.ToUpper(r)) + v[w:]
	case modQuoteWildcard:
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '*' || v[i] == '?' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		return b.String()
	case modLength:
		return strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

// truncate cuts v to at most n bytes without splitting a UTF-8 sequence.
func truncate(v string, n int) string {
	if len(v) <= n {
		return v
	}
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}
