package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWriteMessage(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		bodyLines int64
		want      string
	}{
		{"plain", "A: b\r\n\r\nbody\r\n", -1, "A: b\r\n\r\nbody\r\n.\r\n"},
		{"empty message", "", -1, ".\r\n"},
		{"dot stuffing", ".a\r\n..b\r\n.\r\nc.d\r\n", -1, "..a\r\n...b\r\n..\r\nc.d\r\n.\r\n"},
		{"no final line ending", "A: b\r\n\r\nlast", -1, "A: b\r\n\r\nlast\r\n.\r\n"},
		{"final dot without line ending", "x\r\n.", -1, "x\r\n..\r\n.\r\n"},
		{"NUL and 8-bit", "S\x00: \xe4\r\n\r\n\x00\r\n", -1, "S\x00: \xe4\r\n\r\n\x00\r\n.\r\n"},
		{"bare CR then dot is not a line start", "a\r.b\r\n", -1, "a\r.b\r\n.\r\n"},
		{"top 0", "A: b\r\nC: d\r\n\r\n1\r\n2\r\n", 0, "A: b\r\nC: d\r\n\r\n.\r\n"},
		{"top 1", "A: b\r\n\r\n1\r\n2\r\n", 1, "A: b\r\n\r\n1\r\n.\r\n"},
		{"top more than there is", "A: b\r\n\r\n1\r\n2", 10, "A: b\r\n\r\n1\r\n2\r\n.\r\n"},
		{"top dot-stuffs", "A: b\r\n\r\n.1\r\n.2\r\n", 1, "A: b\r\n\r\n..1\r\n.\r\n"},
		{"top without separator sends all", "A: b\r\nC: d\r\nno blank line", 0, "A: b\r\nC: d\r\nno blank line\r\n.\r\n"},
		{"top with LF-only input", "A: b\n\n1\n2\n", 1, "A: b\n\n1\n.\r\n"},
		{"top empty header", "\r\nbody\r\n", 0, "\r\n.\r\n"},
		{"line of spaces is not blank", "A: b\r\n \r\nx\r\n\r\ny\r\n", 0, "A: b\r\n \r\nx\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One octet at a time, too, so state carries across reads.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				var out bytes.Buffer
				w := bufio.NewWriter(&out)
				if err := writeMessage(w, r, tt.bodyLines); err != nil {
					t.Fatal(err)
				}
				w.Flush()
				if out.String() != tt.want {
					t.Errorf("writeMessage(%q, %d) = %q, want %q", tt.in, tt.bodyLines, out.String(), tt.want)
				}
			}
		})
	}
}

func TestWriteMessageLongLine(t *testing.T) {
	// 10 MB without a line ending, dots at buffer boundaries and all.
	in := bytes.Repeat([]byte("."), 10<<20)
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := writeMessage(w, bytes.NewReader(in), -1); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	want := len(in) + 1 + len("\r\n.\r\n")
	if out.Len() != want {
		t.Errorf("writeMessage(10 MB of dots) wrote %d octets, want %d", out.Len(), want)
	}
}

func TestWriteMessageReadError(t *testing.T) {
	w := bufio.NewWriter(io.Discard)
	if err := writeMessage(w, iotest.ErrReader(io.ErrUnexpectedEOF), -1); err != io.ErrUnexpectedEOF {
		t.Errorf("writeMessage(failing reader) = %v, want %v", err, io.ErrUnexpectedEOF)
	}
}
