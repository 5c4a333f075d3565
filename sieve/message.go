package sieve

import (
	"bufio"
	"fmt"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// maxHeaderSize bounds the header block NewMessage reads.
const maxHeaderSize = 1 << 20

// Message is the message a script runs on: its header, parsed once, and its
// body, read from r only when a body test asks (and then once per transform).
type Message struct {
	fields  []headerField
	r       io.ReaderAt
	n       int64 // bytes in r
	bodyOff int64
	size    int64 // for the size test

	bodyOnce sync.Mutex
	bodies   map[string][]bodyPart // by transform, for the body test
}

type headerField struct {
	key   string // lower case
	value string // unfolded, undecoded
}

// countingReader counts the bytes read and keeps the first read error, to
// tell a failing file from a malformed header.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// NewMessage reads the header of the message in r, which holds n bytes.
// The header is read leniently: a malformed line ends it, and the fields
// before it count. Only a failure to read r is an error. The size test
// compares with n unless SetSize says otherwise.
func NewMessage(r io.ReaderAt, n int64) (*Message, error) {
	cr := &countingReader{r: io.NewSectionReader(r, 0, min(n, maxHeaderSize))}
	br := bufio.NewReader(cr)
	h, _ := textproto.ReadHeader(br)
	if cr.err != nil {
		return nil, fmt.Errorf("sieve: reading message header: %w", cr.err)
	}
	m := &Message{r: r, n: n, size: n, bodyOff: cr.n - int64(br.Buffered())}
	// Fields runs top down, the order :index counts in (RFC 5260 §6).
	for f := h.Fields(); f.Next(); {
		m.fields = append(m.fields, headerField{key: strings.ToLower(f.Key()), value: f.Value()})
	}
	return m, nil
}

// SetSize sets the size the size test compares with, for a message stored
// with other line ends than it has on the wire: RFC 5228 §5.9 counts the
// octets of the RFC 5322 form, with CRLF line ends.
func (m *Message) SetSize(size int64) { m.size = size }

// Size is the size the size test compares with.
func (m *Message) Size() int64 { return m.size }

// rawValues returns the unfolded values of the fields named name, top down.
func (m *Message) rawValues(name string) []string {
	name = strings.ToLower(name)
	var out []string
	for _, f := range m.fields {
		if f.key == name {
			out = append(out, f.value)
		}
	}
	return out
}

func (m *Message) has(name string) bool {
	name = strings.ToLower(name)
	for _, f := range m.fields {
		if f.key == name {
			return true
		}
	}
	return false
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader decodes RFC 2047 encoded words (RFC 5228 §2.7.2 compares
// decoded text) and trims surrounding white space; text that does not
// decode is compared as it is.
func decodeHeader(v string) string {
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return strings.Trim(v, " \t\r\n")
}

// headerValues returns the decoded values of the fields named name, all of
// them or the one :index picks.
func (m *Message) headerValues(name string, ix index) []string {
	vals := ix.pick(m.rawValues(name))
	for i, v := range vals {
		vals[i] = decodeHeader(v)
	}
	return vals
}

// index is the :index/:last of RFC 5260 §6; n == 0 means all fields.
type index struct {
	n    int
	last bool
}

func (ix index) pick(vals []string) []string {
	if ix.n == 0 {
		return vals
	}
	if ix.n > len(vals) {
		return nil
	}
	if ix.last {
		return []string{vals[len(vals)-ix.n]}
	}
	return []string{vals[ix.n-1]}
}

// body returns the part of the message after the header.
func (m *Message) body() io.Reader {
	return io.NewSectionReader(m.r, m.bodyOff, m.n-m.bodyOff)
}
