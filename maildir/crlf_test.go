package maildir

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// crlfCases: stored (LF) form and what the network sees.
var crlfCases = []struct{ name, stored, served string }{
	{"empty", "", ""},
	{"lf", "a\nb\n", "a\r\nb\r\n"},
	{"already crlf", "a\r\nb\r\n", "a\r\nb\r\n"},
	{"bare cr", "a\rb\n", "a\rb\r\n"},
	{"cr then crlf", "a\r\r\n", "a\r\r\n"},
	{"leading lf", "\n\nx", "\r\n\r\nx"},
	{"no trailing newline", "a\nb", "a\r\nb"},
	{"trailing cr", "a\r", "a\r"},
	{"lf cr", "\n\r", "\r\n\r"},
}

func readAllWith(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestCRLFReader(t *testing.T) {
	for _, tt := range crlfCases {
		t.Run(tt.name, func(t *testing.T) {
			// Small input reads split CRLF pairs; small output buffers force
			// the CR and LF of a converted line apart.
			sources := map[string]func() io.Reader{
				"whole":    func() io.Reader { return strings.NewReader(tt.stored) },
				"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(tt.stored)) },
				"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(tt.stored)) },
				"data+eof": func() io.Reader { return iotest.DataErrReader(strings.NewReader(tt.stored)) },
			}
			for srcName, src := range sources {
				for _, size := range []int{1, 2, 3, 7, 4096} {
					got, err := readAllWith(NewCRLFReader(src()), size)
					if err != nil || string(got) != tt.served {
						t.Errorf("%s, reads of %d: CRLFReader(%q) = %q, %v; want %q", srcName, size, tt.stored, got, err, tt.served)
					}
				}
			}
			if err := iotest.TestReader(NewCRLFReader(strings.NewReader(tt.stored)), []byte(tt.served)); err != nil {
				t.Error(err)
			}
			n, err := VirtualSize(iotest.OneByteReader(strings.NewReader(tt.stored)))
			if err != nil || n != int64(len(tt.served)) {
				t.Errorf("VirtualSize(%q) = %d, %v; want %d", tt.stored, n, err, len(tt.served))
			}
		})
	}
}

func TestCRLFReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := NewCRLFReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)))
	got, err := io.ReadAll(r)
	if string(got) != "a\r\n" || !errors.Is(err, boom) {
		t.Errorf("ReadAll = %q, %v; want a CRLF then boom", got, err)
	}
	if _, err := VirtualSize(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("VirtualSize error = %v, want boom", err)
	}
}

// toLF is the simplest statement of Deliver's conversion.
func toLF(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func TestLFWriter(t *testing.T) {
	inputs := []string{
		"", "a\r\nb\r\n", "a\nb\n", "a\r\nb\n", "a\rb\r\n", "a\r\r\n", "\r", "\r\r", "\r\n\r\n", "x\r",
		"no trailing newline", strings.Repeat("line\r\n", 30000), strings.Repeat("\r", bufSize+3) + "\n",
	}
	for _, in := range inputs {
		for _, chunk := range []int{1, 2, 3, bufSize, bufSize + 1, len(in) + 1} {
			var out bytes.Buffer
			lw := newLFWriter(&out)
			for rest := in; rest != ""; {
				k := min(chunk, len(rest))
				if n, err := lw.Write([]byte(rest[:k])); n != k || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				rest = rest[k:]
			}
			if err := lw.Close(); err != nil {
				t.Fatal(err)
			}
			want := toLF(in)
			if out.String() != want {
				t.Fatalf("chunks of %d: lfWriter(%.40q) = %.40q, want %.40q", chunk, in, out.String(), want)
			}
			served, _ := io.ReadAll(NewCRLFReader(strings.NewReader(want)))
			if lw.size != int64(len(want)) || lw.vsize != int64(len(served)) {
				t.Fatalf("chunks of %d: sizes of %.40q = %d, %d; want %d, %d", chunk, in, lw.size, lw.vsize, len(want), len(served))
			}
		}
	}
}

func TestCRLFReaderLarge(t *testing.T) {
	// Lines that straddle every internal buffer boundary.
	line := strings.Repeat("x", 997) + "\n"
	stored := strings.Repeat(line, 3*bufSize/len(line)+5)
	got, err := readAllWith(NewCRLFReader(strings.NewReader(stored)), bufSize-1)
	want := strings.ReplaceAll(stored, "\n", "\r\n")
	if err != nil || string(got) != want {
		t.Fatalf("large CRLFReader output differs (len %d, want %d), err %v", len(got), len(want), err)
	}
}
