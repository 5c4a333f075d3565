package imapmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// maxDepth bounds the nesting of entities that are taken apart, as
// Dovecot's message_max_nested_mime_parts (100) does: a multipart or
// message/rfc822 entity with maxDepth entities around it is opaque and
// reported as application/octet-stream. It keeps a crafted message from
// making parsing recurse without end.
const maxDepth = 99

// An entity is a MIME entity of a message (RFC 2045 §2.4): the message
// itself, a part of a multipart, or the message inside a message/rfc822
// part. Offsets are file offsets (hdr, body, end) and the same positions in
// the CRLF form (vhdr, vbody, vend). The header is [hdr, body) and includes
// the blank line that ends it; the body is [body, end) and excludes the
// line ending before the next boundary, which belongs to the boundary
// (RFC 2046 §5.1.1).
type entity struct {
	hdr, body, end    int64
	vhdr, vbody, vend int64
	lines             int64 // LFs in the body: its line count
	// consumed is where the entity's data ended before a line ending was
	// given to the delimiter after it: its parent ends there or later.
	consumed, vconsumed int64
	blank               int64 // bytes of the blank line ending the header, 0 if none

	header header
	mime   mimeInfo

	children []*entity // the parts of a multipart
	msg      *entity   // the message inside a message/rfc822 part
	// multipart is set for a multipart that was taken apart; its children
	// are never empty (an empty one gets a synthetic empty text part).
	multipart bool
	opaque    bool // a multipart or message nested too deep to take apart
}

// A Message is one stored message (a Maildir file, LF line endings) as IMAP
// clients see it: with CRLF line endings. It parses lazily: the header when
// a header-only answer is asked for, the whole MIME structure when a part
// or the body structure is. A Message is not safe for concurrent use.
type Message struct {
	r     io.ReaderAt
	size  int64
	vsize int64 // -1 until known
	file  *os.File
	// slurped holds a small file read whole (see Open), for reuse
	// after Close.
	slurped *[]byte

	top  *entity // header only (body and end unset) or the full parse
	full bool    // top is the full parse
	err  error
}

// New returns the message stored in r, which holds size bytes. vsize is its
// size with CRLF line endings if known (the ",W=" of its file name, or a
// cached value), else -1; a wrong vsize shows as ErrSizeChanged from
// Section.WriteTo.
func New(r io.ReaderAt, size, vsize int64) *Message {
	return &Message{r: r, size: size, vsize: vsize}
}

// Open opens a message file; vsize is as for New. Close releases it.
// Files up to slurpSize are read whole at once, which is cheaper than
// reading their header and body separately.
func Open(path string, vsize int64) (*Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imapmsg: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("imapmsg: %w", err)
	}
	if size := info.Size(); size <= slurpSize {
		bp := slurpPool.Get().(*[]byte)
		data := (*bp)[:size]
		n, err := io.ReadFull(f, data)
		f.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			slurpPool.Put(bp)
			return nil, fmt.Errorf("imapmsg: read %s: %w", path, err)
		}
		m := New(bytes.NewReader(data[:n]), int64(n), vsize)
		m.slurped = bp
		return m, nil
	}
	m := New(f, info.Size(), vsize)
	m.file = f
	return m, nil
}

const slurpSize = 128 << 10

var slurpPool = sync.Pool{New: func() any { b := make([]byte, slurpSize); return &b }}

// Close closes the file Open opened, or gives back the memory it read
// the file into; it does nothing for New's messages. Neither the Message
// nor its Sections may be used afterwards.
func (m *Message) Close() error {
	if m.slurped != nil {
		slurpPool.Put(m.slurped)
		m.slurped, m.r = nil, nil
	}
	if m.file == nil {
		return nil
	}
	err := m.file.Close()
	m.file = nil
	return err
}

// header parses the top-level header, if nothing has been parsed yet.
func (m *Message) header() (*entity, error) {
	if m.top != nil || m.err != nil {
		return m.top, m.err
	}
	s := newScanner(m.r, m.size)
	defer s.release()
	p := &parser{s: s}
	e := &entity{}
	p.readHeader(e)
	e.mime = parseMIME(e.header, kindMessage)
	if s.err != nil {
		m.err = fmt.Errorf("imapmsg: read: %w", s.err)
		return nil, m.err
	}
	m.top = e
	return e, nil
}

// parse parses the whole message, once.
func (m *Message) parse() (*entity, error) {
	if m.full || m.err != nil {
		return m.top, m.err
	}
	s := newScanner(m.r, m.size)
	defer s.release()
	p := &parser{s: s}
	e, _, _ := p.entity(kindMessage, 0)
	if s.err != nil {
		m.err = fmt.Errorf("imapmsg: read: %w", s.err)
		return nil, m.err
	}
	m.top, m.full = e, true
	m.vsize = e.vend
	return e, nil
}

// Size returns the size of the stored file.
func (m *Message) Size() int64 { return m.size }

// VSize returns the size of the message with CRLF line endings: its
// RFC822.SIZE. Unless New or Open was given it, it reads the whole file.
func (m *Message) VSize() (int64, error) {
	if m.vsize >= 0 {
		return m.vsize, nil
	}
	if _, err := m.parse(); err != nil {
		return 0, err
	}
	return m.vsize, nil
}

type parser struct {
	s     *scanner
	stack []string // boundaries of the enclosing multiparts, outermost first
	parts int      // entities created so far
}

// maxParts bounds the entities of a message, as Dovecot's
// message_max_total_mime_parts (10000) does: once that many exist, no more
// delimiters are recognised and the rest of the message belongs to the
// last part. It keeps a crafted message from costing unbounded memory.
const maxParts = 10000

// boundaries returns the boundaries whose delimiters are recognised.
func (p *parser) boundaries() []string {
	if p.parts >= maxParts {
		return nil
	}
	return p.stack
}

// readHeader reads an entity's header starting at the scanner's position
// and sets e.hdr, e.body and e.header. The header ends with a blank line
// (included), at the end of the data, or before a delimiter of an enclosing
// multipart, which is then returned (consumed) and e's body is empty.
func (p *parser) readHeader(e *entity) (delimiter, bool) {
	s := p.s
	e.hdr, e.vhdr = s.pos, s.vpos
	var h []byte
	for {
		ln, ok := s.line()
		if !ok {
			e.body, e.vbody = s.pos, s.vpos
			e.header = h
			return delimiter{}, false
		}
		if stack := p.boundaries(); len(stack) > 0 {
			if level, closing, ok := matchDelimiter(ln.text, stack); ok {
				d := delimiter{line: ln, level: level, close: closing}
				e.body, e.vbody = p.before(d, e.hdr, e.vhdr)
				e.header = h
				return d, true
			}
		}
		if len(ln.text) == 0 && ln.lf {
			e.body, e.vbody = s.pos, s.vpos
			e.blank = s.pos - ln.start
			e.header = h
			return delimiter{}, false
		}
		if len(h) < maxHeader {
			t := ln.text
			if len(h)+len(t) > maxHeader {
				t = t[:maxHeader-len(h)]
			}
			h = append(h, t...)
			h = append(h, '\n')
		}
		if !ln.lf {
			e.body, e.vbody = s.pos, s.vpos
			e.header = h
			return delimiter{}, false
		}
	}
}

// before returns the offsets where the data before delimiter d ends: just
// before the line ending that precedes it, but not before from.
func (p *parser) before(d delimiter, from, vfrom int64) (int64, int64) {
	term := int64(1)
	if d.crlfBefore {
		term = 2
	}
	end, vend := d.start-term, d.vstart-2
	if end < from {
		return from, vfrom
	}
	return end, vend
}

// entity parses one entity starting at the scanner's position. It stops at
// a delimiter of an enclosing multipart, which it consumes and returns, or
// at the end of the data.
//
// Where the line ending before a delimiter goes follows Dovecot, which
// takes it from the innermost entity only: from the body that ends there,
// or, if that body is empty, from the header's blank line (or last line).
// A close delimiter's own line ending stays with its multipart, and an
// enclosing entity ends where the last thing inside it ended, so a
// message/rfc822 part may hold a line ending that the message inside it
// gave to the delimiter: that message then gets it back (see below).
func (p *parser) entity(kind int, depth int) (*entity, delimiter, bool) {
	s := p.s
	e := &entity{}
	p.parts++
	d, found := p.readHeader(e)
	e.mime = parseMIME(e.header, kind)
	e.multipart = isMultipart(e.mime) && depth < maxDepth
	e.opaque = depth >= maxDepth && (isMultipart(e.mime) || isMessage(e.mime))
	if found {
		// The header ran into a delimiter: it lost its last line ending,
		// which its parent keeps.
		e.end, e.vend = e.body, e.vbody
		e.consumed, e.vconsumed = d.start, d.vstart
		complete(e)
		return e, d, true
	}
	lfs := s.lfs
	from, vfrom := e.body, e.vbody
	switch {
	case e.multipart:
		p.stack = append(p.stack, e.mime.params["boundary"])
		level := len(p.stack) - 1
		childKind := kindPart
		if e.mime.sub == "digest" {
			childKind = kindDigestChild
		}
		d, found = s.skipToDelimiter(p.boundaries()) // the preamble
		for found && d.level == level && !d.close {
			if !d.lf {
				// A delimiter that ends the data starts no part
				// (Dovecot): the multipart runs to the end.
				found = false
				break
			}
			var child *entity
			child, d, found = p.entity(childKind, depth+1)
			e.children = append(e.children, child)
		}
		p.stack = p.stack[:level]
		if found && d.level == level {
			// After the close delimiter, whose line ending stays here:
			// the epilogue, up to an enclosing delimiter or the end.
			from, vfrom = s.pos, s.vpos
			d, found = s.skipToDelimiter(p.boundaries())
		}
	case isMessage(e.mime) && depth < maxDepth:
		// Taken apart whatever its transfer encoding, as Dovecot does:
		// an encoded message is a header without a body.
		e.msg, d, found = p.entity(kindMessage, depth+1)
	default:
		d, found = s.skipToDelimiter(p.boundaries())
	}
	if found {
		e.end, e.vend = p.before(d, from, vfrom)
	} else {
		e.end, e.vend = s.pos, s.vpos
	}
	for _, c := range append(e.children, e.msg) {
		if c != nil && c.consumed > e.end {
			e.end, e.vend = c.consumed, c.vconsumed
		}
	}
	e.consumed, e.vconsumed = e.end, e.vend
	switch {
	case !found:
		e.lines = s.lfs - lfs
	case e.end > e.body:
		e.lines = d.lfsBefore - lfs
		if e.end < d.start {
			e.lines-- // the line ending given to the delimiter
		}
	}
	if found && e.end == e.body && e.body == d.start && e.blank > 0 {
		// Nothing between the header's blank line and the delimiter:
		// the blank line is the delimiter's line ending.
		e.body -= e.blank
		e.vbody -= 2
		e.end, e.vend = e.body, e.vbody
		e.blank = 0
	}
	if e.msg != nil && e.msg.end > e.end {
		clip(e.msg, e.end, e.vend)
	}
	for _, c := range e.children {
		if c.end > e.end {
			clip(c, e.end, e.vend)
		}
	}
	if e.msg != nil && e.msg.end < e.end {
		regain(e.msg, e.end, e.vend)
	}
	complete(e)
	return e, d, found
}

// regain gives a message inside a message/rfc822 part back the line
// ending that its header gave to the delimiter after it while the part
// kept it: the header's blank line, or the line ending of its last line
// when a delimiter cut it short. Only a message with an empty body gives
// its header's line ending away, and the part holds nothing after it, so
// the header grows to the part's end and the body stays empty.
//
// Dovecot does not: for "Subject: x\n\n" before a delimiter it reports the
// part as those 14 octets (CRLF form) but BODY[n.HEADER] as
// "Subject: x\r\n" and BODY[n.TEXT] as empty, so the message's header and
// text do not make up the message. RFC 3501 §6.4.5 (RFC 9051 §6.4.5) says
// the blank line is included in all header fetches except for a message
// with no body and no blank line; the body of a message/rfc822 part is
// that message (RFC 2046 §5.2.1), so HEADER followed by TEXT is the part.
// This changes only HEADER (and BODY[n.1.MIME] when that message is not a
// multipart: it is the same header); sizes and BODYSTRUCTURE stay Dovecot's.
func regain(msg *entity, end, vend int64) {
	msg.body, msg.vbody = end, vend
	msg.end, msg.vend = end, vend
}

// complete gives a multipart without parts one empty text/plain part, as
// Dovecot reports it (IMAP has no empty multipart), and a message/rfc822
// part whose header ran into a delimiter an empty message, so that its
// BODYSTRUCTURE still has the envelope, body and lines that clients expect
// of the type (RFC 3501 §7.4.2).
func complete(e *entity) {
	if e.multipart && len(e.children) == 0 {
		e.children = []*entity{emptyEntity(e.end, e.vend)}
	}
	if !e.multipart && !e.opaque && isMessage(e.mime) && e.msg == nil {
		e.msg = emptyEntity(e.end, e.vend)
	}
}

// clip shortens an entity (and its last descendants) that ends after
// end; this happens only where an entity's header gave its blank line to
// a delimiter after an inner entity had begun at its end.
func clip(e *entity, end, vend int64) {
	if e.end <= end {
		return
	}
	e.end, e.vend = end, vend
	if e.body > end {
		e.body, e.vbody = end, vend
	}
	if e.hdr > end {
		e.hdr, e.vhdr = end, vend
	}
	if e.msg != nil {
		clip(e.msg, end, vend)
	}
	for _, c := range e.children {
		clip(c, end, vend)
	}
}

// emptyEntity is the part Dovecot reports for a multipart in which no part
// was found: an empty text/plain.
func emptyEntity(at, vat int64) *entity {
	return &entity{
		hdr: at, body: at, end: at, vhdr: vat, vbody: vat, vend: vat,
		mime: mimeInfo{typ: "text", sub: "plain", params: map[string]string{"charset": "us-ascii"}},
	}
}

func isMultipart(m mimeInfo) bool {
	return m.typ == "multipart" && m.params["boundary"] != ""
}

// isMessage reports whether a part holds a message: message/rfc822 or
// message/global (RFC 6532 §3.7).
func isMessage(m mimeInfo) bool {
	return m.typ == "message" && (m.sub == "rfc822" || m.sub == "global")
}

// isIdentity reports whether a transfer encoding leaves the data as it is
// (RFC 2045 §6.2).
func isIdentity(encoding string) bool {
	switch encoding {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}
