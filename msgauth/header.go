package msgauth

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// ErrHeaderTooLarge is returned by ReadHeader for a header section longer
// than its limit.
var ErrHeaderTooLarge = errors.New("msgauth: header section too large")

// Field is one header field exactly as it appears in the message: its
// name, and its raw bytes with every folded line and line ending.
type Field struct {
	// Name is the field name without the colon or white space before it
	// (RFC 5322 §4.5.3 obsolete syntax allows that), as written; empty for
	// a line that is no field (no colon, or a continuation line with no
	// field before it).
	Name string
	Raw  []byte
}

// Value returns the field body after the colon, unfolded (RFC 5322 §2.2.3:
// CRLF followed by white space is removed) and with the line ending cut.
func (f Field) Value() string {
	_, v, ok := bytes.Cut(f.Raw, []byte(":"))
	if !ok {
		return ""
	}
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return string(v)
}

// Is reports whether the field is named name (field names are
// case-insensitive, RFC 5322 §1.2.2).
func (f Field) Is(name string) bool { return strings.EqualFold(f.Name, name) }

// Header is a message's header section, split into fields so that some can
// be removed and the rest written back byte for byte.
type Header struct {
	Fields []Field
	// End is the empty line that ends the section ("\r\n" or "\n"), or
	// empty when the message ended first.
	End []byte
}

// ParseHeader splits the header section at the start of msg, up to and
// including the first empty line; it never fails: lines that are no field
// become fields without a name. Bytes writes back exactly the bytes read.
func ParseHeader(msg []byte) *Header {
	h, _ := ReadHeader(bufio.NewReader(bytes.NewReader(msg)), len(msg)+1)
	return h
}

// ReadHeader reads the header section from r, up to and including the
// empty line that ends it (or to the end of the message), and leaves r at
// the start of the body. A section longer than max bytes fails with
// ErrHeaderTooLarge; errors of r are returned as they are.
func ReadHeader(r *bufio.Reader, max int) (*Header, error) {
	h := &Header{}
	size := 0
	for {
		line, err := readLine(r, max-size)
		size += len(line)
		if err != nil && (err != io.EOF || len(line) == 0) {
			if err == io.EOF {
				return h, nil
			}
			return h, err
		}
		switch {
		case isBlankLine(line):
			h.End = line
			return h, nil
		case (line[0] == ' ' || line[0] == '\t') && len(h.Fields) > 0:
			last := &h.Fields[len(h.Fields)-1]
			last.Raw = append(last.Raw, line...)
		default:
			h.Fields = append(h.Fields, Field{Name: fieldName(line), Raw: line})
		}
		if err == io.EOF {
			return h, nil
		}
	}
}

// readLine reads one line with its ending; more than max bytes is
// ErrHeaderTooLarge.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, ErrHeaderTooLarge
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

func isBlankLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// fieldName returns the name of the field that line starts, or "" when it
// is no field: RFC 5322 §3.6.8 names are printable ASCII without colon.
func fieldName(line []byte) string {
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return ""
	}
	name = bytes.TrimRight(name, " \t")
	if len(name) == 0 {
		return ""
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return ""
		}
	}
	return string(name)
}

// Bytes returns the header section as it was read.
func (h *Header) Bytes() []byte {
	var b bytes.Buffer
	for _, f := range h.Fields {
		b.Write(f.Raw)
	}
	b.Write(h.End)
	return b.Bytes()
}

// Values returns the unfolded values of the fields named name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.Fields {
		if f.Is(name) {
			vs = append(vs, f.Value())
		}
	}
	return vs
}

// FieldName is the name of the header field this package adds.
const FieldName = "Authentication-Results"

// WithoutOurs returns the header section without the
// Authentication-Results fields that claim to come from authservID (see
// IsOurs), and how many it removed. RFC 8601 §5: a receiving MTA must
// delete such fields from incoming mail, since only it may write them; the
// fields of other authentication services are kept.
func (h *Header) WithoutOurs(authservID string) (kept []byte, removed int) {
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
