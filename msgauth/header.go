package msgauth

import (
	"bytes"
	"strings"

	"github.com/postkit/postkit/mailheader"
)

// FieldName is the name of the header field this package adds.
const FieldName = "Authentication-Results"

// WithoutOurs returns the header section h without the
// Authentication-Results fields that claim to come from authservID (see
// IsOurs), and how many it removed. RFC 8601 §5: a receiving MTA must
// delete such fields from incoming mail, since only it may write them; the
// fields of other authentication services are kept.
func WithoutOurs(h *mailheader.Header, authservID string) (kept []byte, removed int) {
	var b bytes.Buffer
	for _, f := range h.Fields {
		if f.Is(FieldName) && IsOurs(f.Value(), authservID) {
			removed++
			continue
		}
		b.Write(f.Raw)
	}
	b.Write(h.End)
	return b.Bytes(), removed
}

// IsOurs reports whether the Authentication-Results value claims
// authservID as its authentication service (compared as a domain: case
// and a final dot do not matter). A value whose authserv-id cannot be
// parsed counts as ours when it contains authservID anywhere: a lenient
// reader could take it for ours, and removing a broken field costs nothing.
func IsOurs(value, authservID string) bool {
	id, ok := AuthservID(value)
	if !ok {
		return strings.Contains(strings.ToLower(value), strings.ToLower(strings.TrimSuffix(authservID, ".")))
	}
	return sameDomain(id, authservID)
}

func sameDomain(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// AuthservID returns the authserv-id of an Authentication-Results value
// (RFC 8601 §2.2: [CFWS] authserv-id, where authserv-id is a value of
// RFC 2045 §5.1, a token or a quoted-string), unquoted.
func AuthservID(value string) (string, bool) {
	s, ok := skipCFWS(value)
	if !ok || s == "" {
		return "", false
	}
	if s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '\\':
				if i+1 == len(s) {
					return "", false
				}
				i++
				b.WriteByte(s[i])
			case '"':
				return b.String(), b.Len() > 0
			default:
				b.WriteByte(c)
			}
		}
		return "", false
	}
	end := 0
	for end < len(s) && isTokenChar(s[end]) {
		end++
	}
	if end == 0 {
		return "", false
	}
	return s[:end], true
}

// skipCFWS skips white space and comments (RFC 5322 §3.2.2: nested, with
// quoted-pairs); ok is false for an unclosed comment.
func skipCFWS(s string) (rest string, ok bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case depth > 0 && c == '\\':
			i++
		case c == '(':
			depth++
		case depth > 0 && c == ')':
			depth--
		case depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			return s[i:], true
		}
	}
	return "", depth == 0
}

// isTokenChar reports whether c may appear in an RFC 2045 token: not a
// space, control or tspecial. Octets over 0x7f are allowed for UTF-8 names
// (RFC 6532).
func isTokenChar(c byte) bool {
	return c > ' ' && c != 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}
