// Package maillog is the form of postkit's log lines, which every program
// writes to standard error (journald, inetd or a supervisor collects them):
// Quote makes a value safe to write, Parse reads a line back, for tests and
// for tools that follow the log.
//
// A line is the program's name and a colon, an optional event word, then
// key=value fields separated by single spaces:
//
//	smtpd: accepted id=06H047IM6DAT6Q5Q conn=Q3K5ZC4OAJ2M client=192.0.2.7 from=<bob@example.net> size=260
//	sendq: id=06H047IM6DAT6Q5Q rcpt=alice@example.org status=delivered relay=local reply="250 2.0.0 delivered"
//
// A value is written bare when it is a plain word: printable ASCII without
// spaces, double quotes, backslashes or '='. Anything else, including the
// empty string, is written as a Go double-quoted string (strconv.Quote),
// which escapes newlines and every other control character: a value can
// never start a line of its own or look like another field. A value that
// is always quoted (an error, a reply) may be written with %q directly.
package maillog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Quote returns s as one log value: as it is when it is a plain word,
// else Go-quoted.
func Quote(s string) string {
	if plain(s) {
		return s
	}
	return strconv.Quote(s)
}

// plain reports whether s may be written bare.
func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=' {
			return false
		}
	}
	return true
}

// Line is a parsed log line.
type Line struct {
	Program string // before the colon: "smtpd"
	Event   string // the word before the fields ("accepted"), or ""
	Fields  []Field
}

// Field is one key=value pair, with the value unquoted.
type Field struct {
	Key, Value string
}

// Get returns the value of the first field named key.
func (l Line) Get(key string) (string, bool) {
	for _, f := range l.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Value returns the value of the first field named key, "" if none.
func (l Line) Value(key string) string {
	v, _ := l.Get(key)
	return v
}

// ErrSyntax is wrapped by Parse's errors.
var ErrSyntax = errors.New("maillog: not a key=value log line")

// Parse reads one log line strictly: a bare value that Quote would have
// quoted, a field without '=', a double space or an unterminated quote is
// an error. The event word may end with a colon (the "inetd:" lines of the
// daemons' socket handling).
func Parse(s string) (Line, error) {
	var l Line
	prog, rest, ok := strings.Cut(s, ": ")
	if !ok || !isName(prog) {
		return l, fmt.Errorf("%w: no program name prefix in %q", ErrSyntax, s)
	}
	l.Program = prog
	if rest == "" {
		return l, fmt.Errorf("%w: nothing after the prefix in %q", ErrSyntax, s)
	}
	first := true
	for rest != "" {
		var tok string
		var err error
		tok, rest, err = nextToken(rest)
		if err != nil {
			return l, fmt.Errorf("%w: %v in %q", ErrSyntax, err, s)
		}
		key, val, isField := strings.Cut(tok, "=")
		if !isField {
			word := strings.TrimSuffix(tok, ":")
			if !first || !isName(word) {
				return l, fmt.Errorf("%w: %q is no key=value field in %q", ErrSyntax, tok, s)
			}
			l.Event = tok
			first = false
			continue
		}
		first = false
		if !isKey(key) {
			return l, fmt.Errorf("%w: bad key %q in %q", ErrSyntax, key, s)
		}
		if strings.HasPrefix(val, `"`) {
			v, err := strconv.Unquote(val)
			if err != nil {
				return l, fmt.Errorf("%w: bad quoted value %s in %q", ErrSyntax, val, s)
			}
			val = v
		} else if !plain(val) {
			return l, fmt.Errorf("%w: value %q of %s should be quoted in %q", ErrSyntax, val, key, s)
		}
		l.Fields = append(l.Fields, Field{Key: key, Value: val})
	}
	return l, nil
}

// nextToken splits off the first space-separated token of s, taking a
// quoted value (key="a b") as one token.
func nextToken(s string) (tok, rest string, err error) {
	if s[0] == ' ' {
		return "", "", errors.New("extra space")
	}
	eq := strings.IndexByte(s, '=')
	sp := strings.IndexByte(s, ' ')
	if eq >= 0 && (sp < 0 || eq < sp) && eq+1 < len(s) && s[eq+1] == '"' {
		// A quoted value: find its closing quote.
		i := eq + 2
		for ; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '"' {
				break
			}
		}
		if i >= len(s) {
			return "", "", errors.New("unterminated quote")
		}
		tok, rest = s[:i+1], s[i+1:]
	} else if sp < 0 {
		return s, "", nil
	} else {
		tok, rest = s[:sp], s[sp:]
	}
	if rest == "" {
		return tok, "", nil
	}
	if rest[0] != ' ' {
		return "", "", fmt.Errorf("no space after %s", tok)
	}
	rest = rest[1:]
	if rest == "" {
		return "", "", errors.New("trailing space")
	}
	return tok, rest, nil
}

// isName reports whether s is a program name or event word: lower-case
// letters, digits and '-'.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isKey reports whether s is a field name: letters, digits, '_' and '-'.
func isKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
