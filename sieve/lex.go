package sieve

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pos is a position in a script: line and column, both counted from 1; the
// column counts characters, not bytes.
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is a script that cannot be parsed or checked, or a failure while it
// runs; Pos says where in the script.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("sieve: %s: %s", e.Pos, e.Msg) }

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokTag
	tokNumber
	tokString
	tokLBracket
	tokRBracket
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokComma
	tokSemicolon
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of script"
	case tokIdent:
		return "identifier"
	case tokTag:
		return "tag"
	case tokNumber:
		return "number"
	case tokString:
		return "string"
	case tokLBracket:
		return `"["`
	case tokRBracket:
		return `"]"`
	case tokLParen:
		return `"("`
	case tokRParen:
		return `")"`
	case tokLBrace:
		return `"{"`
	case tokRBrace:
		return `"}"`
	case tokComma:
		return `","`
	case tokSemicolon:
		return `";"`
	}
	return "token"
}

var punctuation = map[byte]tokenKind{'[': tokLBracket, ']': tokRBracket, '(': tokLParen, ')': tokRParen,
	'{': tokLBrace, '}': tokRBrace, ',': tokComma, ';': tokSemicolon}

type token struct {
	kind tokenKind
	pos  Pos
	text string // identifier or tag name (lower case, tag without ':'), or string value
	num  uint64
}

func (t token) describe() string {
	switch t.kind {
	case tokIdent:
		return fmt.Sprintf("identifier %q", t.text)
	case tokTag:
		return fmt.Sprintf("tag :%s", t.text)
	case tokNumber:
		return fmt.Sprintf("number %d", t.num)
	case tokString:
		return "string"
	}
	return t.kind.String()
}

// lexer splits a script into the tokens of RFC 5228 §8.1. Line ends may be
// CRLF or LF; inside strings they become LF.
type lexer struct {
	src  string
	off  int
	line int
	col  int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

// advance moves past n bytes, keeping line and column.
func (l *lexer) advance(n int) {
	for n > 0 && l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\n':
			l.line++
			l.col = 1
			l.off++
			n--
		case c < utf8.RuneSelf:
			l.col++
			l.off++
			n--
		default:
			_, w := utf8.DecodeRuneInString(l.src[l.off:])
			l.col++
			l.off += w
			n -= w
		}
	}
}

func (l *lexer) peekByte(i int) byte {
	if l.off+i < len(l.src) {
		return l.src[l.off+i]
	}
	return 0
}

// skipSpace skips white space and comments (RFC 5228 §2.3).
func (l *lexer) skipSpace() error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance(1)
		case c == '#':
			i := strings.IndexByte(l.src[l.off:], '\n')
			if i < 0 {
				l.advance(len(l.src) - l.off)
			} else {
				l.advance(i + 1)
			}
		case c == '/' && l.peekByte(1) == '*':
			start := l.pos()
			i := strings.Index(l.src[l.off+2:], "*/")
			if i < 0 {
				return errorf(start, "unterminated comment")
			}
			l.advance(i + 4)
		default:
			return nil
		}
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (l *lexer) identifier() string {
	i := l.off
	for i < len(l.src) && (isAlpha(l.src[i]) || isDigit(l.src[i]) || l.src[i] == '_') {
		i++
	}
	s := l.src[l.off:i]
	l.advance(i - l.off)
	return s
}

// next returns the next token.
func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tokEOF, pos: p}, nil
	}
	c := l.src[l.off]
	if k, ok := punctuation[c]; ok {
		l.advance(1)
		return token{kind: k, pos: p}, nil
	}
	switch {
	case isAlpha(c) || c == '_':
		id := l.identifier()
		if strings.EqualFold(id, "text") && l.peekByte(0) == ':' {
			l.advance(1)
			s, err := l.multiline(p)
			return token{kind: tokString, pos: p, text: s}, err
		}
		return token{kind: tokIdent, pos: p, text: strings.ToLower(id)}, nil
	case c == ':':
		l.advance(1)
		if n := l.peekByte(0); !isAlpha(n) && n != '_' {
			return token{}, errorf(p, "expected a tag name after ':'")
		}
		return token{kind: tokTag, pos: p, text: strings.ToLower(l.identifier())}, nil
	case isDigit(c):
		return l.number(p)
	case c == '"':
		s, err := l.quoted(p)
		return token{kind: tokString, pos: p, text: s}, err
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return token{}, errorf(p, "unexpected character %q", r)
}

// number reads 1*DIGIT [QUANTIFIER] (RFC 5228 §2.4.1).
func (l *lexer) number(p Pos) (token, error) {
	var n uint64
	for l.off < len(l.src) && isDigit(l.src[l.off]) {
		d := uint64(l.src[l.off] - '0')
		if n > (maxNumber-d)/10 {
			return token{}, errorf(p, "number too large (limit %d)", uint64(maxNumber))
		}
		n = n*10 + d
		l.advance(1)
	}
	var mult uint64 = 1
	switch l.peekByte(0) {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	}
	if mult != 1 {
		l.advance(1)
		if n > maxNumber/mult {
			return token{}, errorf(p, "number too large (limit %d)", uint64(maxNumber))
		}
		n *= mult
	}
	if c := l.peekByte(0); isAlpha(c) || c == '_' || isDigit(c) {
		return token{}, errorf(l.pos(), "unexpected character %q after number", c)
	}
	return token{kind: tokNumber, pos: p, num: n}, nil
}

// quoted reads a quoted string: a backslash takes the next character
// literally, so "\a" is "a" (RFC 5228 §2.4.2).
func (l *lexer) quoted(p Pos) (string, error) {
	l.advance(1)
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", errorf(p, "unterminated string")
		}
		c := l.src[l.off]
		switch {
		case c == '"':
			l.advance(1)
			return b.String(), checkUTF8(p, b.String())
		case c == '\\' && l.off+1 < len(l.src):
			l.advance(1)
			c = l.src[l.off]
			if c == '\r' && l.peekByte(1) == '\n' {
				l.advance(1)
				c = '\n'
			}
			_, w := utf8.DecodeRuneInString(l.src[l.off:])
			b.WriteString(l.src[l.off : l.off+w])
			l.advance(w)
		case c == '\r' && l.peekByte(1) == '\n':
			l.advance(1)
		default:
			_, w := utf8.DecodeRuneInString(l.src[l.off:])
			b.WriteString(l.src[l.off : l.off+w])
			l.advance(w)
		}
	}
}

// multiline reads the rest of a "text:" string: optional blanks and a
// comment up to the line end, then lines up to one holding a single dot; a
// leading dot of any other line is removed (RFC 5228 §2.4.2, dot-stuffing).
func (l *lexer) multiline(p Pos) (string, error) {
	for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
		l.advance(1)
	}
	switch {
	case l.peekByte(0) == '#':
	case l.peekByte(0) == '\n', l.peekByte(0) == '\r' && l.peekByte(1) == '\n':
	default:
		return "", errorf(l.pos(), "expected a line end after text:")
	}
	i := strings.IndexByte(l.src[l.off:], '\n')
	if i < 0 {
		return "", errorf(p, "unterminated multi-line string")
	}
	l.advance(i + 1)
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			return "", errorf(p, "unterminated multi-line string")
		}
		rest := l.src[l.off:]
		line, n := rest, len(rest)
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, n = rest[:i], i+1
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "." {
			l.advance(n)
			return b.String(), checkUTF8(p, b.String())
		}
		line = strings.TrimPrefix(line, ".")
		b.WriteString(line)
		b.WriteByte('\n')
		l.advance(n)
	}
}

func checkUTF8(p Pos, s string) error {
	if !utf8.ValidString(s) {
		return errorf(p, "string is not valid UTF-8")
	}
	return nil
}
