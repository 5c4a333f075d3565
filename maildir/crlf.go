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
type lfWriter struct {
	w         io.Writer
	out       []byte
	pendingCR bool
	sizer
}

func newLFWriter(w io.Writer) *lfWriter {
	return &lfWriter{w: w, out: make([]byte, 0, bufSize+1)}
}

func (l *lfWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		chunk := p[:min(len(p), bufSize)]
		p = p[len(chunk):]
		out := l.out[:0]
		if l.pendingCR {
			l.pendingCR = false
			if chunk[0] == '\n' {
				out = append(out, '\n')
				chunk = chunk[1:]
			} else {
				out = append(out, '\r')
			}
		}
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\r')
			if i < 0 {
				out = append(out, chunk...)
				break
			}
			out = append(out, chunk[:i]...)
			switch {
			case i+1 == len(chunk):
				l.pendingCR = true
				chunk = nil
			case chunk[i+1] == '\n':
				out = append(out, '\n')
				chunk = chunk[i+2:]
			default:
				out = append(out, '\r')
				chunk = chunk[i+1:]
			}
		}
		if err := l.emit(out); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// Close writes a CR held back at the end of the input. It does not close the
// underlying writer.
func (l *lfWriter) Close() error {
	if !l.pendingCR {
		return nil
	}
	l.pendingCR = false
	return l.emit([]byte{'\r'})
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
