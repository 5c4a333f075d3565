package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/postkit/postkit/maildir"
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
		{"top with LF-only input", "A: b\n\n1\n2\n", 1, "A: b\r\n\r\n1\r\n.\r\n"},
		{"bare LF becomes CRLF", "A: b\n\nx\ny", -1, "A: b\r\n\r\nx\r\ny\r\n.\r\n"},
		{"mixed line endings", "a\r\nb\nc\r\r\n\n", -1, "a\r\nb\r\nc\r\r\n\r\n.\r\n"},
		{"LF-only dot stuffing", ".a\n.\n", -1, "..a\r\n..\r\n.\r\n"},
		{"bare CR at the end", "a\r", -1, "a\r\r\n.\r\n"},
		{"empty LF line ends the header", "A: b\n\n1\n", 0, "A: b\r\n\r\n.\r\n"},
		{"top empty header", "\r\nbody\r\n", 0, "\r\n.\r\n"},
		{"line of spaces is not blank", "A: b\r\n \r\nx\r\n\r\ny\r\n", 0, "A: b\r\n \r\nx\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One octet at a time, and with tiny buffers, too, so state
			// carries across reads.
			readers := map[string]func() io.Reader{
				"whole":    func() io.Reader { return strings.NewReader(tt.in) },
				"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(tt.in)) },
			}
			for how, r := range readers {
				for _, size := range []int{copyBufSize, 1, 2, 3} {
					if got := writeMessageString(t, r(), size, tt.bodyLines); got != tt.want {
						t.Errorf("writeMessage(%q, %d) reading %s with %d-octet buffer = %q, want %q", tt.in, tt.bodyLines, how, size, got, tt.want)
					}
				}
			}
		})
	}
}

func writeMessageString(t testing.TB, r io.Reader, bufSize int, bodyLines int64) string {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := writeMessage(w, r, make([]byte, bufSize), bodyLines); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return out.String()
}

func TestWriteMessageLongLine(t *testing.T) {
	// 10 MB without a line ending, dots at buffer boundaries and all.
	in := bytes.Repeat([]byte("."), 10<<20)
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := writeMessage(w, bytes.NewReader(in), make([]byte, copyBufSize), -1); err != nil {
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
	if err := writeMessage(w, iotest.ErrReader(io.ErrUnexpectedEOF), make([]byte, 8), -1); err != io.ErrUnexpectedEOF {
		t.Errorf("writeMessage(failing reader) = %v, want %v", err, io.ErrUnexpectedEOF)
	}
}

// FuzzWriteMessage: RETR sends exactly the message as maildir.NewCRLFReader
// converts it (whose length is the size LIST announces), dot-stuffed and
// terminated, whatever the buffer size.
func FuzzWriteMessage(f *testing.F) {
	f.Add([]byte("Subject: x\n\n.dot\nend"), uint8(3))
	f.Add([]byte("a\r\nb\rc\r\r\n\n\x00.\n."), uint8(1))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, bufSize uint8) {
		crlf, err := io.ReadAll(maildir.NewCRLFReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatal(err)
		}
		if size, _ := maildir.VirtualSize(bytes.NewReader(in)); size != int64(len(crlf)) {
			t.Fatalf("VirtualSize(%q) = %d, NewCRLFReader gives %d octets", in, size, len(crlf))
		}
		body := string(crlf)
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += "\r\n"
		}
		var want strings.Builder
		lineStart := true
		for i := 0; i < len(body); i++ {
			if lineStart && body[i] == '.' {
				want.WriteByte('.')
			}
			want.WriteByte(body[i])
			lineStart = body[i] == '\n'
		}
		want.WriteString(".\r\n")
		if got := writeMessageString(t, bytes.NewReader(in), int(bufSize)%64+1, -1); got != want.String() {
			t.Fatalf("writeMessage(%q) = %q, want %q", in, got, want.String())
		}
	})
}
