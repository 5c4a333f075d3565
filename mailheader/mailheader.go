// Package mailheader splits the header section of a message into its
// fields, each with its raw bytes (RFC 5322 §2.2 and §3.6.8): folded lines
// and line endings are kept, lines that are no field are kept too, and the
// fields written back in order give the section byte for byte. It is for
// code that must rewrite a header exactly, removing or adding fields and
// leaving the rest untouched, such as smtpd's removal of forged fields
// before its milters run, and for code that reads a few fields' values.
//
// It is a package of its own, apart from msgauth (which checks SPF, DKIM
// and DMARC and works on these fields), so that programs that do not check
// mail authentication, such as deliver, do not link that code.
package mailheader

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// ErrHeaderTooLarge is returned by ReadHeader for a header section longer
// than its limit.
var ErrHeaderTooLarge = errors.New("mailheader: header section too large")

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
