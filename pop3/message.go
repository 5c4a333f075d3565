package pop3

import (
	"bufio"
	"io"
)

// copyBufSize is how much of a message is read at a time: RETR and TOP stream
// messages of any size, and lines of any length, in this much memory.
const copyBufSize = 32 << 10

// writeMessage sends the message read from r as a multi-line response body
// (RFC 1939 §3): a '.' that starts a line is doubled, a last line without
// line ending gets CRLF, and ".\r\n" ends it. r must already have CRLF line
// endings; lines are only counted for TOP, so NUL bytes, 8-bit octets and
// lines of any length pass through unchanged.
//
// bodyLines < 0 sends the whole message. Otherwise it is TOP (RFC 1939 §7):
// the header, the empty line ending it, and then at most bodyLines lines of
// the body. A message without an empty line is all header and is sent whole.
func writeMessage(w *bufio.Writer, r io.Reader, bodyLines int64) error {
	buf := make([]byte, copyBufSize)
	lineStart := true // the next octet starts a line
	lineLen := 0      // octets in the current line so far (capped: only 0 and 1 matter)
	prevCR := false
	inBody := false
	done := false
	for !done {
		n, rerr := r.Read(buf)
		chunk := buf[:n]
		start := 0
		for i := 0; i < len(chunk); i++ {
			c := chunk[i]
			if lineStart && c == '.' {
				// Dot-stuffing: the client removes the first of two dots.
				if _, err := w.Write(chunk[start:i]); err != nil {
					return err
				}
				if err := w.WriteByte('.'); err != nil {
					return err
				}
				start = i
			}
			lineStart = false
			if c != '\n' {
				prevCR = c == '\r'
				if lineLen < 2 {
					lineLen++
				}
				continue
			}
			empty := lineLen == 0 || (lineLen == 1 && prevCR)
			lineStart, lineLen, prevCR = true, 0, false
			if bodyLines < 0 {
				continue
			}
			if !inBody {
				inBody = empty
				done = inBody && bodyLines == 0
			} else {
				bodyLines--
				done = bodyLines == 0
			}
			if done {
				chunk = chunk[:i+1]
				break
			}
		}
		if _, err := w.Write(chunk[start:]); err != nil {
			return err
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if !lineStart {
		if _, err := w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	_, err := w.WriteString(".\r\n")
	return err
}
