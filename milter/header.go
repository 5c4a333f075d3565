package milter

import (
	"bytes"
	"strings"

	"github.com/postkit/postkit/mailheader"
)

// Field is one header field as stored: its name, and its raw text with
// every folded line and the line ending (CRLF).
type Field struct {
	// Name is "" for a line that is no field (no colon, say): it is kept
	// where it is but never shown to a filter.
	Name string
	Raw  string
}

// ParseHeader splits a header section (without the empty line that ends
// it, or with it: it is left out) into Fields.
func ParseHeader(section []byte) []Field {
	h := mailheader.ParseHeader(section)
	fields := make([]Field, 0, len(h.Fields))
	for _, f := range h.Fields {
		fields = append(fields, Field{Name: f.Name, Raw: string(f.Raw)})
	}
	return fields
}

// FormatHeader writes fields back, in order.
func FormatHeader(fields []Field) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.WriteString(f.Raw)
	}
	return b.Bytes()
}

// value returns what a filter is sent as the field's value: the text after
// the colon without the line ending, folded lines joined by LF as libmilter
// expects; without the white space after the colon unless the filter asked
// for it (SMFIP_HDR_LEADSPC).
func (f Field) value(leadingSpace bool) string {
	_, v, _ := strings.Cut(f.Raw, ":")
	v = strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r")
	v = strings.ReplaceAll(v, "\r\n", "\n")
	if !leadingSpace {
		v = strings.TrimLeft(v, " \t")
	}
	return v
}

// ChangeKind says what a Change does.
type ChangeKind int

// The header changes a filter may make at the end of a message.
const (
	// AddField appends a field to the header (smfi_addheader).
	AddField ChangeKind = iota
	// InsertField inserts a field before the Index-th field of the
	// header, counted from 0 (smfi_insheader); past the end it appends.
	InsertField
	// ChangeField replaces the Index-th field named Name, counted from 1
	// (smfi_chgheader); an empty Value deletes it, and an Index past the
	// last such field adds the field instead.
	ChangeField
)

func (k ChangeKind) String() string {
	switch k {
	case AddField:
		return "add"
	case InsertField:
		return "insert"
	case ChangeField:
		return "change"
	}
	return "unknown"
}

// Change is one header change asked for by a filter, checked: Name is a
// valid field name, and Raw the whole field to store (empty for a
// deletion).
type Change struct {
	Kind  ChangeKind
	Index int
	Name  string
	Raw   string
}

// maxFieldName is the longest field name a filter may add (RFC 5322 sets
// no limit; header lines of 998 octets do).
const maxFieldName = 200

// newChange checks the name and value of a filter's header change and
// makes the field to store: value as the filter sent it (folded lines
// separated by LF or CRLF; with its leading white space if leadingSpace).
// Continuation lines that do not start with white space get a tab, so a
// filter can never start a field of its own; blank lines, NUL and CR
// are dropped.
func newChange(kind ChangeKind, index int, name, value string, leadingSpace bool) (Change, bool) {
	if !validFieldName(name) {
		return Change{}, false
	}
	c := Change{Kind: kind, Index: index, Name: name}
	if kind == ChangeField && value == "" {
		return c, true
	}
	value = strings.ReplaceAll(value, "\r\n", "\n")
	value = strings.Map(func(r rune) rune {
		if r == 0 || r == '\r' {
			return -1
		}
		return r
	}, value)
	var lines []string
	for i, l := range strings.Split(value, "\n") {
		switch {
		case i == 0:
		case strings.TrimLeft(l, " \t") == "":
			continue // no empty or blank lines inside a header
		case l[0] != ' ' && l[0] != '\t':
			l = "\t" + l
		}
		lines = append(lines, l)
	}
	v := strings.Join(lines, "\r\n")
	if !leadingSpace || v == "" {
		v = " " + strings.TrimLeft(v, " \t")
	}
	c.Raw = name + ":" + v + "\r\n"
	return c, true
}

// validFieldName reports whether name is a field name (RFC 5322 §3.6.8:
// printable ASCII but the colon) of at most maxFieldName octets.
func validFieldName(name string) bool {
	if name == "" || len(name) > maxFieldName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// Apply returns fields with the changes made, in order, as libmilter
// defines them (see ChangeKind).
func Apply(fields []Field, changes []Change) []Field {
	out := append([]Field(nil), fields...)
	for _, c := range changes {
		f := Field{Name: c.Name, Raw: c.Raw}
		switch c.Kind {
		case AddField:
			out = append(out, f)
		case InsertField:
			i := min(max(c.Index, 0), len(out))
			out = append(out[:i], append([]Field{f}, out[i:]...)...)
		case ChangeField:
			n, at := 0, -1
			for i, g := range out {
				if g.Name != "" && strings.EqualFold(g.Name, c.Name) {
					// Index 0 is taken as 1, as Postfix does.
					if n++; n == max(c.Index, 1) {
						at = i
						break
					}
				}
			}
			switch {
			case at >= 0 && c.Raw == "":
				out = append(out[:at], out[at+1:]...)
			case at >= 0:
				out[at] = f
			case c.Raw != "":
				out = append(out, f)
			}
		}
	}
	return out
}
