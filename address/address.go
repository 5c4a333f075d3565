// Package address parses and normalises mail addresses: the RFC 5321 Mailbox
// and Path syntax with the RFC 6531 (SMTPUTF8) extensions.
//
// Every program that decides where mail goes works on the Address this package
// returns, never on raw strings, so that one parser decides what an address
// means: the local part is the whole text before the last '@' only when that
// text is a valid Dot-string or Quoted-string, and nothing in it ('%', '!',
// '@' inside quotes) is ever read as routing. The domain is normalised (lower
// case, IDNA A-labels, no trailing dot) so that equal domains compare equal.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length limits of RFC 5321 §4.5.3.1.
const (
	MaxLocal   = 64  // §4.5.3.1.1: local part, in octets
	MaxDomain  = 255 // §4.5.3.1.2: domain, in octets
	MaxAddress = 254 // whole Mailbox: a Path is at most 256 octets with its angle brackets (§4.5.3.1.3)
	MaxPath    = 256 // §4.5.3.1.3: reverse-path or forward-path with punctuation
)

// ErrSyntax is wrapped by every error of Parse, ParsePath and ParseDomain: the
// input is not a valid address (SMTP reply 501 or 553, RFC 3463 X.1.3/X.1.7).
var ErrSyntax = errors.New("address: bad syntax")

func syntaxError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}

// Address is a mailbox: Local is the local part without quoting (a quoted
// local part is stored decoded), Domain is normalised by ParseDomain: lower
// case ASCII with IDNA A-labels and no trailing dot, or an address literal such
// as "[192.0.2.1]" or "[IPv6:2001:db8::1]". The zero Address is the null
// reverse-path "<>". Build Address values with Parse or ParsePath: the other
// functions of this package and package resolve assume a parsed value.
type Address struct {
	Local, Domain string
}

// Parse parses an RFC 5321 §4.1.2 Mailbox: a Dot-string or Quoted-string local
// part (UTF-8 allowed, RFC 6531 §3.3), "@", and a domain or address literal.
// It refuses anything else, including several '@' outside quotes, empty parts,
// control characters and domains with empty labels or a trailing dot.
func Parse(s string) (Address, error) {
	if s == "" {
		return Address{}, syntaxError("empty address")
	}
	if len(s) > MaxAddress {
		return Address{}, syntaxError("address longer than %d octets", MaxAddress)
	}
	local, n, err := parseLocal(s)
	if err != nil {
		return Address{}, err
	}
	if n > MaxLocal {
		return Address{}, syntaxError("local part longer than %d octets", MaxLocal)
	}
	if n == len(s) || s[n] != '@' {
		return Address{}, syntaxError("no @ after the local part")
	}
	if strings.IndexByte(s[n+1:], '@') >= 0 {
		return Address{}, syntaxError("more than one '@' outside quotes")
	}
	domain, err := ParseDomain(s[n+1:])
	if err != nil {
		return Address{}, err
	}
	a := Address{Local: local, Domain: domain}
	// The limits also hold for the normalised form, which String gives and
	// which can be longer than the input when the domain was in UTF-8: a
	// parsed address must always print as something that parses again.
	if len(a.String()) > MaxAddress {
		return Address{}, syntaxError("address longer than %d octets once the domain is in ASCII", MaxAddress)
	}
	return a, nil
}

// parseLocal reads the local part at the start of s and returns it decoded
// together with the number of octets it took.
func parseLocal(s string) (local string, n int, err error) {
	if s[0] == '"' {
		return parseQuoted(s)
	}
	// Dot-string = Atom *("." Atom), Atom = 1*atext (RFC 5321 §4.1.2),
	// with UTF8-non-ascii in atext (RFC 6531 §3.3).
	i := 0
	for i < len(s) && s[i] != '@' {
		c := s[i]
		switch {
		case c == '.':
			if i == 0 || s[i-1] == '.' {
				return "", 0, syntaxError("empty atom in the local part (leading or double dot)")
			}
			i++
		case c < utf8.RuneSelf:
			if !isAtext(c) {
				return "", 0, syntaxError("character %q not allowed in an unquoted local part", c)
			}
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if !allowedNonASCII(r) {
				return "", 0, syntaxError("invalid UTF-8 or character %U in the local part", r)
			}
			i += size
		}
	}
	if i == 0 {
		return "", 0, syntaxError("empty local part")
	}
	if s[i-1] == '.' {
		return "", 0, syntaxError("local part ends with a dot")
	}
	return s[:i], i, nil
}

// parseQuoted reads a Quoted-string (RFC 5321 §4.1.2, RFC 6531 §3.3):
// DQUOTE *(qtextSMTP / quoted-pairSMTP / UTF8-non-ascii) DQUOTE.
func parseQuoted(s string) (string, int, error) {
	var b strings.Builder
	i := 1
	for {
		if i >= len(s) {
			return "", 0, syntaxError("unbalanced quote in the local part")
		}
		c := s[i]
		switch {
		case c == '"':
			if b.Len() == 0 {
				return "", 0, syntaxError("empty local part")
			}
			return b.String(), i + 1, nil
		case c == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", 0, syntaxError("bad quoted pair in the local part")
			}
			b.WriteByte(s[i+1])
			i += 2
		case c < utf8.RuneSelf:
			// qtextSMTP = %d32-33 / %d35-91 / %d93-126
			if c < 32 || c > 126 {
				return "", 0, syntaxError("control character %q in the local part", c)
			}
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if !allowedNonASCII(r) {
				return "", 0, syntaxError("invalid UTF-8 or character %U in the local part", r)
			}
			b.WriteString(s[i : i+size])
			i += size
		}
	}
}

// isAtext reports whether c is an ASCII atext character (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// allowedNonASCII reports whether r may appear in a local part as
// UTF8-non-ascii. RFC 6531 allows any non-ASCII character; we keep letters,
// marks, numbers, punctuation and symbols and refuse the rest (controls,
// format characters such as bidi overrides, separators, private use,
// unassigned code points, and invalid UTF-8), which no real mailbox needs and
// which only serve to make one address look like another.
func allowedNonASCII(r rune) bool {
	return r >= utf8.RuneSelf && r != utf8.RuneError &&
		unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// isDotString reports whether local can be written without quotes.
func isDotString(local string) bool {
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); {
		c := local[i]
		if c < utf8.RuneSelf {
			if c != '.' && !isAtext(c) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(local[i:])
		if !allowedNonASCII(r) {
			return false
		}
		i += size
	}
	return true
}

// String returns the address as it is written in SMTP: the local part as a
// Dot-string, or quoted when it is not one, "@", and the domain. The zero
// Address (null reverse-path) gives "".
func (a Address) String() string {
	if a.IsZero() {
		return ""
	}
	if isDotString(a.Local) {
		return a.Local + "@" + a.Domain
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(a.Local); i++ {
		if c := a.Local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(a.Local[i])
	}
	b.WriteString(`"@`)
	b.WriteString(a.Domain)
	return b.String()
}

// IsZero reports whether a is the null reverse-path "<>".
func (a Address) IsZero() bool { return a.Local == "" && a.Domain == "" }

// Key returns the lookup key of a: the local part case-folded (see FoldLocal),
// "@", and the domain. Users, aliases and every other per-address table are
// keyed by it. The zero Address gives "".
func (a Address) Key() string {
	if a.IsZero() {
		return ""
	}
	return FoldLocal(a.Local) + "@" + a.Domain
}

// FoldLocal case-folds a local part for lookups: ASCII letters to lower case
// and every other character to one fixed member of its Unicode simple case
// folding class, so that two local parts that differ only in case give the
// same result. RFC 5321 §2.4 lets a server treat its own local parts case
// insensitively; it is never applied to remote addresses, which are relayed as
// written. Full folding (as "ß" to "ss") and special casing (Turkish dotless
// i) are deliberately not applied: "alıce" is not "alice".
func FoldLocal(local string) string {
	ascii := true
	for i := 0; i < len(local); i++ {
		if local[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(local)
	}
	return strings.Map(foldRune, local)
}

// foldRune maps r to the lower-case member of its simple case folding orbit
// (unicode.SimpleFold): the lower case of its upper case when that stays in
// the orbit (so 'Σ', 'σ' and 'ς' all give 'σ', and 'K' and the Kelvin sign
// give 'k'), else r itself. A test checks over all of Unicode that every
// member of an orbit gives the same rune.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	l := unicode.ToLower(unicode.ToUpper(r))
	if l == r {
		return r
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == l {
			return l
		}
	}
	return r
}

// SplitDetail splits a local part at the first '+' into the user and the
// detail of a subaddress (RFC 5233 §1): "alice+lists" gives "alice" and
// "lists". Without a '+', or with nothing before it, local is returned whole
// with an empty detail. The detail comes from the sender: it can hold any
// character a local part may, including '/' and "..".
func SplitDetail(local string) (base, detail string) {
	i := strings.IndexByte(local, '+')
	if i <= 0 {
		return local, ""
	}
	return local[:i], local[i+1:]
}

// ValidUserLocal checks a local part for a new virtual user. It becomes a
// directory name (ROOT/mail/DOMAIN/LOCAL), so only lower-case a-z, 0-9, '.',
// '-' and '_' are allowed, without a leading or trailing dot or "..", 1 to 64
// bytes. '+' is refused because it starts a subaddress detail.
func ValidUserLocal(local string) error {
	if local == "" || len(local) > MaxLocal {
		return fmt.Errorf("address: user name %q must be 1 to %d characters", local, MaxLocal)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("address: user name %q may only contain a-z 0-9 . - _", local)
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return fmt.Errorf("address: user name %q starts or ends with a dot or has two dots in a row", local)
	}
	return nil
}
