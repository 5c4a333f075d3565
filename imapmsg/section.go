package imapmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/emersion/go-imap/v2"
)

// ErrSizeChanged is returned (wrapped) by Section.WriteTo when the message
// gave fewer or more bytes than the section's Size promised: the file
// changed, or the vsize given to New was wrong. WriteTo has still written
// exactly Size bytes (padding with spaces), so the IMAP stream stays in
// step; the caller should log it and forget any cached size.
var ErrSizeChanged = errors.New("imapmsg: message size changed")

// ErrUnknownCTE is returned (wrapped) for a BINARY fetch of a part whose
// Content-Transfer-Encoding is not one of RFC 2045's: the server answers
// NO [UNKNOWN-CTE] (RFC 3516 §4.3).
var ErrUnknownCTE = errors.New("imapmsg: unknown content transfer encoding")

// A Section is the data of one FETCH BODY[...] or BINARY[...] item, ready
// to be written. Size is exact before anything is written, as an IMAP
// literal announces its length first; WriteTo then writes exactly Size
// bytes. The Message must stay open until WriteTo returns.
type Section struct {
	Size int64

	m      *Message
	binary bool // BINARY: NUL bytes pass (literal8); else they become 0x80
	pieces []piece
	skip   int64 // octets to drop first (<partial> origin)
	whole  bool  // Size is all the data: more of it is an error
}

// A piece is a range of the file, served in CRLF form and decoded with a
// transfer encoding when decode is set, or literal bytes.
type piece struct {
	start, end int64
	vsize      int64 // CRLF size of the range; -1 when decoded
	decode     string
	lit        []byte
}

// BodySection returns the section of a FETCH BODY[...] (or BODY.PEEK,
// RFC822, RFC822.HEADER, RFC822.TEXT) item (RFC 3501 §6.4.5, RFC 9051
// §6.4.5), in the CRLF form:
//
//   - BODY[] the whole message; BODY[HEADER] its header including the blank
//     line; BODY[TEXT] its body;
//   - BODY[HEADER.FIELDS (...)] the fields named, in their order in the
//     header, continuation lines included, each ended by a line ending,
//     and a blank line; BODY[HEADER.FIELDS.NOT (...)] the header without
//     those fields, as it is (with its blank line if it has one);
//   - BODY[1.2] the body of a part; BODY[1.2.MIME] its MIME header
//     including the blank line; for a message/rfc822 part, BODY[3.HEADER],
//     BODY[3.TEXT] and BODY[3.HEADER.FIELDS ...] are those of the message
//     inside, and BODY[3.1] is the first part of that message. Part 1 of a
//     message that is not a multipart is its body; part 1 of a leaf part
//     of a multipart is that part again.
//
// NUL bytes are sent as 0x80. A <partial> is applied to that data. A part
// that does not exist, or HEADER or TEXT of a part that is not a message,
// gives an empty section. All of this is what Dovecot answers (the tests
// compare with it). Only the header is read for BODY[HEADER...] and, when
// the vsize is known, for BODY[] and BODY[TEXT]; anything else reads the
// whole message once.
func (m *Message) BodySection(item *imap.FetchItemBodySection) (*Section, error) {
	s := &Section{m: m}
	var err error
	if len(item.Part) == 0 {
		err = m.topSection(s, item)
	} else {
		err = m.partSection(s, item)
	}
	if err != nil {
		return nil, err
	}
	s.window(item.Partial)
	return s, nil
}

func (m *Message) topSection(s *Section, item *imap.FetchItemBodySection) error {
	switch item.Specifier {
	case imap.PartSpecifierNone:
		v, err := m.VSize()
		if err != nil {
			return err
		}
		s.add(piece{start: 0, end: m.size, vsize: v})
	case imap.PartSpecifierHeader:
		e, err := m.header()
		if err != nil {
			return err
		}
		m.headerPieces(s, e, item)
	case imap.PartSpecifierText:
		e, err := m.header()
		if err != nil {
			return err
		}
		v, err := m.VSize()
		if err != nil {
			return err
		}
		s.add(piece{start: e.body, end: m.size, vsize: v - e.vbody})
	}
	return nil
}

func (m *Message) partSection(s *Section, item *imap.FetchItemBodySection) error {
	top, err := m.parse()
	if err != nil {
		return err
	}
	e := resolve(top, item.Part)
	if e == nil {
		return nil
	}
	switch item.Specifier {
	case imap.PartSpecifierNone:
		s.add(piece{start: e.body, end: e.end, vsize: e.vend - e.vbody})
	case imap.PartSpecifierMIME:
		s.add(piece{start: e.hdr, end: e.body, vsize: e.vbody - e.vhdr})
	case imap.PartSpecifierHeader:
		if e.msg != nil {
			m.headerPieces(s, e.msg, item)
		}
	case imap.PartSpecifierText:
		if e.msg != nil {
			s.add(piece{start: e.msg.body, end: e.msg.end, vsize: e.msg.vend - e.msg.vbody})
		}
	}
	return nil
}

// resolve finds the entity a part number names (RFC 3501 §6.4.5): within a
// message, the parts of its multipart, or part 1 for the message's own body
// when it is not a multipart; within a message/rfc822 part, the parts of
// the message inside. Part 1 of any other part of a multipart is that part
// itself, as in Dovecot. nil if there is none.
func resolve(top *entity, path []int) *entity {
	// The top-level message is a container like a message/rfc822 part.
	cur := &entity{msg: top}
	asBody := false // cur is a message's body, reached as its part 1
	for _, n := range path {
		if n < 1 {
			return nil
		}
		switch {
		case cur.multipart:
			if n > len(cur.children) {
				return nil
			}
			cur, asBody = cur.children[n-1], false
		case cur.msg != nil:
			inner := cur.msg
			switch {
			case inner.multipart:
				if n > len(inner.children) {
					return nil
				}
				cur, asBody = inner.children[n-1], false
			case n == 1:
				cur, asBody = inner, true
			default:
				return nil
			}
		case n == 1 && !asBody:
		default:
			return nil
		}
	}
	return cur
}

// headerPieces adds an entity's header, or the fields of it that
// HEADER.FIELDS or HEADER.FIELDS.NOT select. As in Dovecot, HEADER.FIELDS
// ends every field it returns with a line ending and adds a blank line,
// while HEADER.FIELDS.NOT leaves the header as it is minus the fields,
// with its blank line only if it has one.
func (m *Message) headerPieces(s *Section, e *entity, item *imap.FetchItemBodySection) {
	if len(item.HeaderFields) == 0 && len(item.HeaderFieldsNot) == 0 {
		s.add(piece{start: e.hdr, end: e.body, vsize: e.vbody - e.vhdr})
		return
	}
	names, keep := item.HeaderFields, true
	if len(names) == 0 {
		names, keep = item.HeaderFieldsNot, false
	}
	sc := newScanner(m.r, e.body)
	defer sc.release()
	sc.off, sc.pos, sc.vpos = e.hdr, e.hdr, e.vhdr
	var cur piece
	in := false    // cur is a field being taken
	ended := false // cur's last line has its line ending
	take := func() {
		s.add(cur)
		if keep && !ended {
			s.add(piece{lit: []byte("\r\n"), vsize: 2})
		}
	}
	for {
		ln, ok := sc.line()
		if !ok {
			break
		}
		if len(ln.text) == 0 && ln.lf {
			if !keep {
				// The blank line: the rest of the range.
				if in {
					take()
					in = false
				}
				s.add(piece{start: ln.start, end: e.body, vsize: e.vbody - ln.vstart})
			}
			break
		}
		cont := len(ln.text) > 0 && (ln.text[0] == ' ' || ln.text[0] == '\t')
		if cont {
			if in {
				cur.end, cur.vsize = sc.pos, cur.vsize+(sc.vpos-ln.vstart)
				ended = ln.lf
			}
			continue
		}
		if in {
			take()
		}
		name, _, _ := bytes.Cut(ln.text, []byte{':'})
		name = bytes.TrimRight(name, " \t")
		in = fieldListed(name, names) == keep
		cur = piece{start: ln.start, end: sc.pos, vsize: sc.vpos - ln.vstart}
		ended = ln.lf
	}
	if in {
		take()
	}
	if keep {
		s.add(piece{lit: []byte("\r\n"), vsize: 2})
	}
}

func fieldListed(name []byte, list []string) bool {
	for _, l := range list {
		if equalFoldASCII(name, l) {
			return true
		}
	}
	return false
}

// BinarySection returns the section of a FETCH BINARY[...] item (RFC 3516,
// RFC 9051 §6.4.5): the body of the part with its Content-Transfer-Encoding
// undone (base64 and quoted-printable; the identity encodings as they
// are). BINARY[] is the whole message with the body of a single-part
// message decoded. A multipart or message/rfc822 part is served as it is.
// An unknown encoding gives an error wrapping ErrUnknownCTE. It reads the
// part twice: once for the size, once in WriteTo.
func (m *Message) BinarySection(part []int, partial *imap.SectionPartial) (*Section, error) {
	s, err := m.binary(part)
	if err != nil {
		return nil, err
	}
	s.window(partial)
	return s, nil
}

// BinarySize returns the size of BINARY[part] without partial: the
// BINARY.SIZE item (RFC 3516 §4.2).
func (m *Message) BinarySize(part []int) (int64, error) {
	s, err := m.binary(part)
	if err != nil {
		return 0, err
	}
	return s.Size, nil
}

func (m *Message) binary(part []int) (*Section, error) {
	top, err := m.parse()
	if err != nil {
		return nil, err
	}
	s := &Section{m: m, binary: true}
	e := top
	if len(part) > 0 {
		if e = resolve(top, part); e == nil {
			return s, nil
		}
	} else {
		s.add(piece{start: e.hdr, end: e.body, vsize: e.vbody - e.vhdr})
	}
	if e.multipart || e.msg != nil || isIdentity(e.mime.encoding) {
		s.add(piece{start: e.body, end: e.end, vsize: e.vend - e.vbody})
		return s, nil
	}
	if _, ok := newDecoder(e.mime.encoding, io.Discard); !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownCTE, e.mime.encoding)
	}
	p := piece{start: e.body, end: e.end, vsize: -1, decode: e.mime.encoding}
	var c counter
	if err := m.copyPiece(&c, p, false); err != nil {
		return nil, err
	}
	p.vsize = c.n
	s.add(p)
	return s, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func (s *Section) add(p piece) {
	if p.lit == nil && p.end <= p.start {
		return
	}
	s.pieces = append(s.pieces, p)
	s.Size += p.vsize
}

// window applies a <partial>: "<origin.count>" gives at most count octets
// from origin; an origin past the end gives nothing (RFC 9051 §6.4.5).
func (s *Section) window(p *imap.SectionPartial) {
	s.whole = p == nil
	if p == nil {
		return
	}
	off := max(p.Offset, 0)
	size := p.Size
	if size < 0 {
		size = math.MaxInt64
	}
	if off >= s.Size {
		s.skip, s.Size = 0, 0
		s.pieces = nil
		return
	}
	s.skip = off
	s.Size = min(size, s.Size-off)
}

// WriteTo writes the section: exactly Size bytes. If the message gives
// fewer, it pads with spaces and returns an error wrapping ErrSizeChanged
// (or the read error); only an error writing to w leaves it short.
func (s *Section) WriteTo(w io.Writer) (int64, error) {
	win := &window{w: w, skip: s.skip, left: s.Size}
	var srcErr error
	for _, p := range s.pieces {
		if win.left == 0 {
			break
		}
		if err := s.m.copyPiece(win, p, !s.binary); err != nil {
			if errors.Is(err, errWindowFull) {
				break
			}
			if win.werr != nil {
				return win.n, win.werr
			}
			srcErr = err
			break
		}
	}
	if s.whole && win.over && srcErr == nil {
		srcErr = ErrSizeChanged
	}
	if win.left > 0 {
		if srcErr == nil {
			srcErr = ErrSizeChanged
		}
		pad := bytes.Repeat([]byte{' '}, int(min(win.left, 4096)))
		for win.left > 0 {
			n, err := w.Write(pad[:min(win.left, int64(len(pad)))])
			win.n += int64(n)
			win.left -= int64(n)
			if err != nil {
				return win.n, err
			}
		}
	}
	if srcErr != nil && !errors.Is(srcErr, ErrSizeChanged) {
		srcErr = fmt.Errorf("%w: %w", ErrSizeChanged, srcErr)
	}
	return win.n, srcErr
}

var errWindowFull = errors.New("imapmsg: section complete")

// window passes on the bytes after the first skip, up to left of them.
type window struct {
	w          io.Writer
	skip, left int64
	n          int64
	over       bool // data came after left reached 0
	werr       error
}

func (x *window) Write(p []byte) (int, error) {
	total := len(p)
	if x.skip > 0 {
		if int64(len(p)) <= x.skip {
			x.skip -= int64(len(p))
			return total, nil
		}
		p = p[x.skip:]
		x.skip = 0
	}
	if len(p) == 0 {
		return total, nil
	}
	if x.left == 0 {
		x.over = true
		return 0, errWindowFull
	}
	full := false
	if int64(len(p)) > x.left {
		p = p[:x.left]
		full = true
	}
	n, err := x.w.Write(p)
	x.n += int64(n)
	x.left -= int64(n)
	if err != nil {
		x.werr = err
		return n, err
	}
	if full {
		x.over = true
		return total, errWindowFull
	}
	return total, nil
}

// copyPiece writes a piece to dst. With noNUL, NUL bytes become 0x80 as
// in Dovecot: IMAP literals cannot carry NUL (RFC 9051 §4.3), and the size
// stays the same.
func (m *Message) copyPiece(dst io.Writer, p piece, noNUL bool) error {
	if p.lit != nil {
		_, err := dst.Write(p.lit)
		return err
	}
	d, _ := newDecoder(p.decode, dst)
	if d == nil {
		return copyCRLF(dst, m.r, p.start, p.end, noNUL)
	}
	if err := copyCRLF(d, m.r, p.start, p.end, false); err != nil {
		return err
	}
	return d.Close()
}

// copyCRLF writes the file range [start, end) in CRLF form: every LF not
// preceded by CR becomes CRLF, and with noNUL every NUL becomes 0x80.
// Ranges start at line starts, so the byte before start never matters.
func copyCRLF(dst io.Writer, r io.ReaderAt, start, end int64, noNUL bool) error {
	inp := bufPool.Get().(*[]byte)
	defer bufPool.Put(inp)
	outp := bufPool.Get().(*[]byte)
	defer bufPool.Put(outp)
	in := (*inp)[:bufSize/2]
	var prev byte
	for pos := start; pos < end; {
		n := int(min(int64(len(in)), end-pos))
		got, err := r.ReadAt(in[:n], pos)
		if got == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		chunk := in[:got]
		out := (*outp)[:0]
		p := prev
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				out = append(out, chunk...)
				break
			}
			if i > 0 {
				p = chunk[i-1]
			}
			out = append(out, chunk[:i]...)
			if p != '\r' {
				out = append(out, '\r')
			}
			out = append(out, '\n')
			p = '\n'
			chunk = chunk[i+1:]
		}
		prev = in[got-1]
		if noNUL {
			for i := bytes.IndexByte(out, 0); i >= 0; i = bytes.IndexByte(out, 0) {
				out[i] = 0x80
			}
		}
		if _, err := dst.Write(out); err != nil {
			return err
		}
		pos += int64(got)
	}
	return nil
}
