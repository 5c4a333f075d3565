package maildir

import (
	"bytes"
	"io"
)

// bufSize is the unit in which messages are read and written: large enough
// for few system calls, small enough that a 100 MB message costs no memory.
const bufSize = 64 << 10

// NewCRLFReader serves a stored (LF) message as the network sees it
// (RFC 5322 §2.3 lines end in CRLF): every LF not preceded by CR becomes
// CRLF; everything else, a bare CR included, passes unchanged. The number of
// bytes it produces is the W= of the file's name, and VirtualSize.
func NewCRLFReader(r io.Reader) io.Reader {
	return &crlfReader{r: r}
}

type crlfReader struct {
	r          io.Reader
	buf        []byte
	start, end int   // buf[start:end] is read but not yet served
	prevCR     bool  // the last byte served was a CR
	pendingLF  bool  // a CR was served for a bare LF whose LF did not fit
	err        error // from r, returned once buf is drained
}

func (c *crlfReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if c.pendingLF {
		p[0] = '\n'
		n = 1
		c.pendingLF = false
		c.prevCR = false
	}
	for n < len(p) {
		if c.start == c.end {
			if c.err != nil || n > 0 {
				// Serve what is ready rather than block for more.
				break
			}
			if c.buf == nil {
				// Small reads of small messages need no 64 KiB each.
				c.buf = make([]byte, min(bufSize, max(len(p), 4096)))
			}
			m, err := c.r.Read(c.buf)
			c.start, c.end, c.err = 0, m, err
			continue
		}
		room := p[n:]
		seg := c.buf[c.start:c.end]
		if len(seg) > len(room) {
			seg = seg[:len(room)]
		}
		i := bytes.IndexByte(seg, '\n')
		if i < 0 {
			k := copy(room, seg)
			c.prevCR = seg[k-1] == '\r'
			c.start += k
			n += k
			continue
		}
		// seg[:i] has no LF and, as i < len(room), leaves room for one more
		// byte.
		copy(room, seg[:i])
		if i > 0 {
			c.prevCR = seg[i-1] == '\r'
		}
		n += i
		c.start += i + 1 // the LF
		if c.prevCR {
			p[n] = '\n'
			n++
		} else {
			p[n] = '\r'
			n++
			if n < len(p) {
				p[n] = '\n'
				n++
			} else {
				c.pendingLF = true
			}
		}
		c.prevCR = false
	}
	if n == 0 && c.start == c.end && c.err != nil {
		return 0, c.err
	}
	return n, nil
}

// VirtualSize returns the number of bytes NewCRLFReader would produce from r:
// the size of a stored message on the network, for files whose names carry
// no W=.
func VirtualSize(r io.Reader) (int64, error) {
	var s sizer
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		s.add(buf[:n])
		if err == io.EOF {
			return s.vsize, nil
		}
		if err != nil {
			return s.vsize, err
		}
	}
}

// sizer counts the bytes of a stored message as they pass (S=) and the bytes
// NewCRLFReader would make of them (W=).
type sizer struct {
	size, vsize int64
	lastCR      bool // the last byte added was a CR
}

func (s *sizer) add(p []byte) {
	if len(p) == 0 {
		return
	}
	bare := int64(bytes.Count(p, []byte{'\n'}) - bytes.Count(p, []byte("\r\n")))
	if p[0] == '\n' && s.lastCR {
		bare--
	}
	s.size += int64(len(p))
	s.vsize += int64(len(p)) + bare
	s.lastCR = p[len(p)-1] == '\r'
}

// lfWriter stores a message given with CRLF or LF line endings with LF line
// endings: every CRLF becomes LF, a bare CR is kept. A CR at the end of one
// write waits for the next to see whether an LF follows; Close flushes it.
//
// It converts in its one buffer, in place (see lfInPlace): Deliver lends it a
// pooled buffer, so a delivery costs no buffer allocation at all.
type lfWriter struct {
	w         io.Writer
	buf       []byte // the input is copied or read here and converted in place
	pendingCR bool
	sizer
}

// newLFWriter returns an lfWriter that makes its own buffer when first used;
// Deliver sets buf before that.
func newLFWriter(w io.Writer) *lfWriter {
	return &lfWriter{w: w}
}

func (l *lfWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := l.takePendingCR()
		m := copy(l.buf[k:], p)
		p = p[m:]
		if err := l.convert(k + m); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// fillFrom reads r to its end straight into the buffer and writes the
// converted contents each time the buffer is full, and at the end: one
// write(2) per buffer however small the reads, without a bufio.Writer (and
// its buffer) in between. It returns the number of bytes read from r.
//
// Deliver calls it directly, not through io.Copy, which prefers r's WriteTo
// when it has one: that of io.MultiReader (what package lda hands to Deliver)
// allocates 32 KiB per call, and that of strings.Reader a copy of the string.
// For the same reason it is not named ReadFrom, which io.Copy would only
// sometimes use.
func (l *lfWriter) fillFrom(r io.Reader) (int64, error) {
	var total int64
	k := l.takePendingCR()
	for {
		m, err := r.Read(l.buf[k:])
		total += int64(m)
		k += m
		if err == io.EOF {
			return total, l.convert(k)
		}
		if err != nil {
			return total, err
		}
		if k == len(l.buf) {
			if err := l.convert(k); err != nil {
				return total, err
			}
			k = l.takePendingCR()
		}
	}
}

// takePendingCR puts a CR held back from the last write at the start of the
// buffer, where the conversion sees it together with the byte after it, and
// returns the number of buffer bytes it took (0 or 1). It makes the buffer on
// first use.
func (l *lfWriter) takePendingCR() int {
	if l.buf == nil {
		l.buf = make([]byte, bufSize)
	}
	if !l.pendingCR {
		return 0
	}
	l.pendingCR = false
	l.buf[0] = '\r'
	return 1
}

// convert converts buf[:n] to LF line endings, holding back a final CR, and
// writes the result.
func (l *lfWriter) convert(n int) error {
	out, cr := lfInPlace(l.buf[:n])
	l.pendingCR = cr
	return l.emit(out)
}

// Close writes a CR held back at the end of the input. It does not close the
// underlying writer.
func (l *lfWriter) Close() error {
	if !l.pendingCR {
		return nil
	}
	l.pendingCR = false
	l.buf[0] = '\r'
	return l.emit(l.buf[:1])
}

func (l *lfWriter) emit(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	if _, err := l.w.Write(out); err != nil {
		return err
	}
	l.add(out)
	return nil
}

// lfInPlace rewrites p with LF line endings: every CRLF becomes LF, a bare CR
// is kept. It returns the converted bytes, a prefix of p, and whether p ends
// in a CR, which it leaves out: only the next byte tells whether that CR ends
// a line. Every output byte comes from an input byte at or after its own
// position, so writing over p as it goes is safe.
func lfInPlace(p []byte) (out []byte, trailingCR bool) {
	w, r := 0, 0 // write and read positions, w <= r
	for r < len(p) {
		i := bytes.IndexByte(p[r:], '\r')
		if i < 0 {
			i = len(p) - r
		}
		if w != r {
			copy(p[w:], p[r:r+i])
		}
		w += i
		r += i
		if r == len(p) {
			break
		}
		// p[r] is a CR.
		r++
		switch {
		case r == len(p):
			return p[:w], true
		case p[r] == '\n':
			p[w] = '\n'
			r++
		default:
			p[w] = '\r'
		}
		w++
	}
	return p[:w], false
}
