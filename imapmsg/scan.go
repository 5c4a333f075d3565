package imapmsg

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// Reads start small, because most callers want only a header, and grow to
// bufSize for bodies. A line longer than bufSize is returned cut to its
// first bufSize bytes (see line.long); it is still consumed whole and
// counted exactly.
const (
	firstRead = 8 << 10
	bufSize   = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// scanner walks a stored message (LF line endings) line by line while
// keeping three counts exact: the file offset, the offset in the CRLF form
// IMAP clients see (every LF not preceded by CR counts one more byte), and
// the number of LFs, which are the lines of BODYSTRUCTURE.
type scanner struct {
	r    io.ReaderAt
	size int64 // end of the data: the file size, less if the file is shorter

	buf     []byte
	pooled  *[]byte
	off     int64 // file offset of buf[0]
	n       int   // buf[:n] holds data
	readLen int   // size of the next read

	pos  int64 // file offset of the next byte to consume
	vpos int64 // the same offset in the CRLF form
	lfs  int64 // LFs consumed

	prev     byte // the last byte consumed
	lastCRLF bool // the last LF consumed was preceded by CR
	long     []byte
	err      error // a read error other than EOF
}

func newScanner(r io.ReaderAt, size int64) *scanner {
	p := bufPool.Get().(*[]byte)
	return &scanner{r: r, size: size, buf: *p, pooled: p, readLen: firstRead}
}

// release returns the buffer to the pool; the scanner must not be used
// afterwards.
func (s *scanner) release() {
	if s.pooled != nil {
		bufPool.Put(s.pooled)
		s.pooled, s.buf = nil, nil
	}
}

// A line as the scanner returns it. text is its content without the LF (and
// without the CR of a CRLF); it points into the scanner's buffer and is valid
// until the next call. start and vstart are the offsets of its first byte;
// lfsBefore and crlfBefore describe what was consumed before it, so that a
// boundary line can end the preceding part exactly (RFC 2046 §5.1.1: the
// CRLF before a boundary belongs to the boundary).
type line struct {
	text          []byte
	long          bool // text holds only the start of a longer line
	start, vstart int64
	lfsBefore     int64
	crlfBefore    bool
	lf            bool // the line ends in LF (false only for the last line)
}

// buffered returns the data available from pos, reading more if none is.
// It returns nil at the end of the data.
func (s *scanner) buffered() []byte {
	if s.pos-s.off < int64(s.n) {
		return s.buf[s.pos-s.off : s.n]
	}
	if s.pos >= s.size || s.err != nil {
		return nil
	}
	s.off, s.n = s.pos, 0
	s.read()
	return s.buf[:s.n]
}

// more appends to the buffered data from pos, moving it to the start of the
// buffer first; it returns false when nothing could be added.
func (s *scanner) more() bool {
	if s.off+int64(s.n) >= s.size || s.err != nil {
		return false
	}
	start := int(s.pos - s.off)
	if start > 0 {
		copy(s.buf, s.buf[start:s.n])
		s.n -= start
		s.off = s.pos
	}
	if s.n == len(s.buf) {
		return false
	}
	before := s.n
	s.read()
	return s.n > before
}

func (s *scanner) read() {
	want := min(len(s.buf)-s.n, s.readLen, int(min(s.size-(s.off+int64(s.n)), int64(len(s.buf)))))
	s.readLen = min(s.readLen*2, bufSize)
	if want <= 0 {
		return
	}
	m, err := s.r.ReadAt(s.buf[s.n:s.n+want], s.off+int64(s.n))
	s.n += m
	if m < want {
		// The file is shorter than announced: what is there is the message.
		s.size = s.off + int64(s.n)
		if err != nil && !errors.Is(err, io.EOF) {
			s.err = err
		}
	}
}

// atEOFBuffered reports whether the buffer reaches the end of the data.
func (s *scanner) atEOFBuffered() bool { return s.off+int64(s.n) >= s.size || s.err != nil }

// consume advances over b, which must be the buffered data at pos.
func (s *scanner) consume(b []byte) {
	if len(b) == 0 {
		return
	}
	if nl := bytes.Count(b, lf); nl > 0 {
		crlf := bytes.Count(b, crlfBytes)
		if b[0] == '\n' && s.prev == '\r' {
			crlf++
		}
		s.lfs += int64(nl)
		s.vpos += int64(nl - crlf)
		i := bytes.LastIndexByte(b, '\n')
		if i > 0 {
			s.lastCRLF = b[i-1] == '\r'
		} else {
			s.lastCRLF = s.prev == '\r'
		}
	}
	s.vpos += int64(len(b))
	s.pos += int64(len(b))
	s.prev = b[len(b)-1]
}

var (
	lf         = []byte{'\n'}
	crlfBytes  = []byte("\r\n")
	lfDashDash = []byte("\n--")
	dashDash   = []byte("--")
)

// line consumes and returns the next line; false at the end of the data.
func (s *scanner) line() (line, bool) {
	data := s.buffered()
	if len(data) == 0 {
		return line{}, false
	}
	ln := line{start: s.pos, vstart: s.vpos, lfsBefore: s.lfs, crlfBefore: s.lastCRLF}
	for {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			ln.text = data[:i]
			if i > 0 && data[i-1] == '\r' {
				ln.text = data[:i-1]
			}
			ln.lf = true
			s.consume(data[:i+1])
			return ln, true
		}
		if s.atEOFBuffered() {
			ln.text = data
			s.consume(data)
			return ln, true
		}
		if s.more() {
			data = s.buf[s.pos-s.off : s.n]
			continue
		}
		// The line fills the whole buffer: keep its start, skip the rest.
		s.long = append(s.long[:0], data...)
		ln.text, ln.long = s.long, true
		s.consume(data)
		ln.lf = s.skipLine()
		return ln, true
	}
}

// skipLine consumes up to and including the next LF; false if the data
// ended first.
func (s *scanner) skipLine() bool {
	for {
		data := s.buffered()
		if len(data) == 0 {
			return false
		}
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			s.consume(data[:i+1])
			return true
		}
		s.consume(data)
	}
}

// toEnd consumes everything that is left.
func (s *scanner) toEnd() {
	for {
		data := s.buffered()
		if len(data) == 0 {
			return
		}
		s.consume(data)
	}
}

// A delimiter is a boundary line (RFC 2046 §5.1.1) that ended a part.
type delimiter struct {
	line
	level int  // index of its boundary in the stack
	close bool // "--boundary--"
}

// skipToDelimiter consumes lines, starting at a line start, up to and
// including the first that is a delimiter of one of the boundaries in stack
// (innermost first); false if the data ended first.
func (s *scanner) skipToDelimiter(stack []string) (delimiter, bool) {
	if len(stack) == 0 {
		s.toEnd()
		return delimiter{}, false
	}
	for {
		data := s.buffered()
		if len(data) == 0 {
			return delimiter{}, false
		}
		if len(data) < 2 && !s.atEOFBuffered() && s.more() {
			continue
		}
		if bytes.HasPrefix(data, dashDash) {
			ln, _ := s.line()
			if level, closing, ok := matchDelimiter(ln.text, stack); ok {
				return delimiter{line: ln, level: level, close: closing}, true
			}
			if !ln.lf {
				return delimiter{}, false
			}
			continue
		}
		if j := bytes.Index(data, lfDashDash); j >= 0 {
			s.consume(data[:j+1])
			continue
		}
		if k := bytes.LastIndexByte(data, '\n'); k >= 0 {
			s.consume(data[:k+1])
			continue
		}
		// No LF buffered: the line goes on past the buffer.
		if s.atEOFBuffered() {
			s.consume(data)
			return delimiter{}, false
		}
		if s.more() {
			continue
		}
		s.consume(data)
		if !s.skipLine() {
			return delimiter{}, false
		}
	}
}

// matchDelimiter reports whether text (a line without its line ending) is
// a delimiter of one of the boundaries in stack, and whether it is a close
// delimiter. As in Dovecot (message-parser.c), which clients that cached
// its BODYSTRUCTUREs rely on, a line is a delimiter if it starts with "--"
// and a boundary, whatever follows (RFC 2046 §5.1.1 allows only white
// space, but mail in the wild has more); when several boundaries match,
// the longest wins, and among equal ones the innermost. It is a close
// delimiter if "--" follows the boundary.
func matchDelimiter(text []byte, stack []string) (level int, closing, ok bool) {
	if !bytes.HasPrefix(text, dashDash) {
		return 0, false, false
	}
	rest := text[2:]
	best := -1
	for i := len(stack) - 1; i >= 0; i-- {
		b := stack[i]
		if len(b) > len(rest) || string(rest[:len(b)]) != b || (best >= 0 && len(b) <= len(stack[best])) {
			continue
		}
		best = i
		if len(b) == len(rest) {
			break
		}
	}
	if best < 0 {
		return 0, false, false
	}
	return best, bytes.HasPrefix(rest[len(stack[best]):], dashDash), true
}
