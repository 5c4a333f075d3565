package imapmsg

import (
	"io"
)

// The decoders here undo a Content-Transfer-Encoding (RFC 2045 §6) for
// BINARY (RFC 3516) and SEARCH. Unlike encoding/base64 and
// mime/quotedprintable they never fail: mail in the wild has bad padding,
// stray characters and broken escapes, and a client asking for a part is
// better served with what can be decoded than with an error. What they
// make of broken input is deterministic, so sizes computed in one pass hold
// for the next.

// A decoder is an io.Writer that decodes what is written to it into an
// underlying writer; Close flushes what is held back.
type decoder interface {
	io.Writer
	Close() error
}

// newDecoder returns a decoder for a transfer encoding (lower case), or nil
// for the identity encodings and ok=false for unknown ones.
func newDecoder(encoding string, w io.Writer) (d decoder, ok bool) {
	switch encoding {
	case "", "7bit", "8bit", "binary":
		return nil, true
	case "base64":
		return &base64Decoder{w: w}, true
	case "quoted-printable":
		return &qpDecoder{w: w}, true
	}
	return nil, false
}

var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// base64Decoder decodes base64 (RFC 2045 §6.8), ignoring every character
// outside the alphabet. A '=' ends a quantum early (so that concatenated
// encodings decode as the concatenation); a trailing incomplete quantum of
// two or three characters still gives its one or two bytes.
type base64Decoder struct {
	w    io.Writer
	q    uint32 // bits of the current quantum
	nq   int    // characters in it
	out  []byte
	werr error
}

func (d *base64Decoder) Write(p []byte) (int, error) {
	if d.werr != nil {
		return 0, d.werr
	}
	if want := min(len(p), bufSize)*3/4 + 8; cap(d.out) < want {
		d.out = make([]byte, 0, want)
	}
	out := d.out[:0]
	for _, c := range p {
		v := base64Values[c]
		if v == 0xff {
			if c == '=' {
				out = d.flush(out)
			}
			continue
		}
		d.q = d.q<<6 | uint32(v)
		d.nq++
		if d.nq == 4 {
			out = append(out, byte(d.q>>16), byte(d.q>>8), byte(d.q))
			d.q, d.nq = 0, 0
			if len(out) >= cap(out)-3 {
				if err := d.emit(out); err != nil {
					return 0, err
				}
				out = out[:0]
			}
		}
	}
	if err := d.emit(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush appends the bytes of an incomplete quantum.
func (d *base64Decoder) flush(out []byte) []byte {
	switch d.nq {
	case 2:
		out = append(out, byte(d.q>>4))
	case 3:
		out = append(out, byte(d.q>>10), byte(d.q>>2))
	}
	d.q, d.nq = 0, 0
	return out
}

func (d *base64Decoder) emit(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	_, d.werr = d.w.Write(out)
	return d.werr
}

func (d *base64Decoder) Close() error {
	if d.werr != nil {
		return d.werr
	}
	return d.emit(d.flush(nil))
}

// qpDecoder decodes quoted-printable (RFC 2045 §6.7): "=XX" (either case)
// is a byte, "=" before the line ending (white space between allowed) is a
// soft line break, white space before a hard line ending is dropped (rule
// 3), and a "=" that starts none of these is kept as it is. Line endings
// pass as they come (CRLF from the CRLF form).
type qpDecoder struct {
	w     io.Writer
	state int
	ws    []byte // white space held back: dropped before a line ending
	hex   byte   // first hex digit after '=', as written
	out   []byte
	// pooled is the buffer out comes from, given back by Close.
	pooled *[]byte
	werr   error
}

const (
	qpText  = iota
	qpCR    // a CR after text: a line ending if LF follows
	qpEq    // after '='
	qpEqHex // after '=' and one hex digit
	qpEqWS  // after '=' and white space
	qpEqCR  // after '=', maybe white space, and CR
)

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func (d *qpDecoder) Write(p []byte) (int, error) {
	if d.werr != nil {
		return 0, d.werr
	}
	if d.out == nil {
		d.pooled = bufPool.Get().(*[]byte)
		d.out = (*d.pooled)[:0]
	}
	for i := 0; i < len(p); {
		if d.state == qpText && len(d.ws) == 0 {
			// Copy a run of plain characters at once.
			j := i
			for j < len(p) && !qpSpecial[p[j]] && len(d.out)+(j-i) < cap(d.out)-4 {
				j++
			}
			d.out = append(d.out, p[i:j]...)
			if j > i {
				i = j
				if len(d.out) >= cap(d.out)-4 {
					if err := d.emit(); err != nil {
						return 0, err
					}
				}
				continue
			}
		}
		d.step(p[i])
		i++
		if len(d.out) >= cap(d.out)-4 {
			if err := d.emit(); err != nil {
				return 0, err
			}
		}
	}
	if err := d.emit(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// qpSpecial marks the bytes that need the state machine.
var qpSpecial = func() (t [256]bool) {
	for _, c := range "= \t\r\n" {
		t[c] = true
	}
	return t
}()

func (d *qpDecoder) step(c byte) {
	for {
		switch d.state {
		case qpText:
			switch c {
			case '=':
				d.flushWS()
				d.state = qpEq
			case ' ', '\t':
				d.ws = append(d.ws, c)
			case '\r':
				d.state = qpCR
			case '\n':
				d.ws = d.ws[:0]
				d.out = append(d.out, '\n')
			default:
				d.flushWS()
				d.out = append(d.out, c)
			}
			return
		case qpCR:
			if c == '\n' {
				d.ws = d.ws[:0]
				d.out = append(d.out, '\r', '\n')
				d.state = qpText
				return
			}
			d.flushWS()
			d.out = append(d.out, '\r')
			d.state = qpText
			continue // c again, as text
		case qpEq:
			if _, ok := hexValue(c); ok {
				d.hex = c
				d.state = qpEqHex
				return
			}
			switch c {
			case ' ', '\t':
				d.ws = append(d.ws, c)
				d.state = qpEqWS
				return
			case '\r':
				d.state = qpEqCR
				return
			case '\n':
				d.state = qpText // soft line break
				return
			}
			d.out = append(d.out, '=')
			d.state = qpText
			continue
		case qpEqHex:
			if v, ok := hexValue(c); ok {
				h, _ := hexValue(d.hex)
				d.out = append(d.out, h<<4|v)
				d.state = qpText
				return
			}
			d.out = append(d.out, '=', d.hex)
			d.state = qpText
			continue
		case qpEqWS:
			switch c {
			case ' ', '\t':
				d.ws = append(d.ws, c)
				return
			case '\r':
				d.state = qpEqCR
				return
			case '\n':
				d.ws = d.ws[:0]
				d.state = qpText
				return
			}
			d.out = append(d.out, '=')
			d.flushWS()
			d.state = qpText
			continue
		case qpEqCR:
			if c == '\n' {
				d.ws = d.ws[:0]
				d.state = qpText
				return
			}
			d.out = append(d.out, '=')
			d.flushWS()
			d.out = append(d.out, '\r')
			d.state = qpText
			continue
		}
	}
}

func (d *qpDecoder) flushWS() {
	if len(d.ws) > 0 {
		d.out = append(d.out, d.ws...)
		d.ws = d.ws[:0]
	}
}

func (d *qpDecoder) emit() error {
	if len(d.out) == 0 {
		return nil
	}
	_, d.werr = d.w.Write(d.out)
	d.out = d.out[:0]
	return d.werr
}

// Close ends the data: trailing white space and a final soft line break are
// dropped, a held CR or half escape is written as it was.
func (d *qpDecoder) Close() error {
	if d.werr != nil {
		return d.werr
	}
	switch d.state {
	case qpCR:
		d.flushWS()
		d.out = append(d.out, '\r')
	case qpEqHex:
		d.out = append(d.out, '=', d.hex)
	}
	d.ws = d.ws[:0]
	d.state = qpText
	err := d.emit()
	if d.pooled != nil {
		bufPool.Put(d.pooled)
		d.pooled, d.out = nil, nil
	}
	return err
}
