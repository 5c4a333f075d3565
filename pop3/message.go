package pop3

import (
	"bufio"
	"bytes"
	"io"
)

// copyBufSize is how much of a message is read at a time: RETR and TOP stream
// messages of any size, and lines of any length, in this much memory.
const copyBufSize = 32 << 10

// writeMessage sends the message read from r as a multi-line response body
// (RFC 1939 §3), reading with buf (reused from message to message): every LF
// not preceded by CR is sent as CRLF (the network form of a message stored
// with LF line endings, RFC 5322 §2.3, as maildir.NewCRLFReader and the W=
// size count it), a '.' that starts a line is doubled, a last line without
// line ending gets CRLF, and ".\r\n" ends it. Lines are only looked at for
// their ends, so NUL bytes, bare CRs, 8-bit octets and lines of any length
// pass through unchanged.
//
// bodyLines < 0 sends the whole message. Otherwise it is TOP (RFC 1939 §7):
// the header, the empty line ending it, and then at most bodyLines lines of
// the body. A message without an empty line is all header and is sent whole.
func writeMessage(w *bufio.Writer, r io.Reader, buf []byte, bodyLines int64) error {
	lineStart := true // the next octet starts a line
	lineLen := 0      // octets in the current line so far (capped: only 0, 1 and 2+ matter)
	prevCR := false   // the last octet was a CR
	inBody := false
	for done := false; !done; {
		n, rerr := r.Read(buf)
		rest := buf[:n]
		for len(rest) > 0 && !done {
			if lineStart && rest[0] == '.' {
				// Dot-stuffing: the client removes the first of two dots.
				if err := w.WriteByte('.'); err != nil {
					return err
				}
			}
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				if _, err := w.Write(rest); err != nil {
					return err
				}
				lineStart, prevCR = false, rest[len(rest)-1] == '\r'
				lineLen = min(lineLen+len(rest), 2)
				break
			}
			lastCR := prevCR
			if i > 0 {
				lastCR = rest[i-1] == '\r'
			}
			if _, err := w.Write(rest[:i]); err != nil {
				return err
			}
			end := "\n"
			if !lastCR {
				end = "\r\n"
			}
			if _, err := w.WriteString(end); err != nil {
				return err
			}
			empty := lineLen+i == 0 || (lineLen+i == 1 && lastCR)
			rest = rest[i+1:]
			lineStart, lineLen, prevCR = true, 0, false
			switch {
			case bodyLines < 0:
			case !inBody:
				inBody = empty
				done = inBody && bodyLines == 0
			default:
				bodyLines--
				done = bodyLines == 0
			}
		}
		if done || rerr == io.EOF {
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
