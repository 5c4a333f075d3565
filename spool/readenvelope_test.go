package spool

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadEnvelope(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n-1) + "\n" } // a line of n bytes with its newline
	for _, tc := range []struct {
		name            string
		data            string
		maxLine, maxLen int
		head            string // the envelope read, if no error
		err             string // in the error, "" for none
	}{
		{"envelope and message", "a 1\nb 2\n\nmsg\n", 64, 64, "a 1\nb 2\n", ""},
		{"empty message", "a 1\n\n", 64, 64, "a 1\n", ""},
		{"empty line first", "\na 1\n\n", 64, 64, "", ""},
		{"CRLF line is not empty", "a 1\r\n\r\n\nmsg", 64, 64, "a 1\r\n\r\n", ""},
		{"no empty line", "a 1\nb 2\n", 64, 64, "", "no empty line after the envelope (truncated?)"},
		{"no newline at the end", "a 1\nb 2", 64, 64, "", "no empty line after the envelope (truncated?)"},
		{"empty", "", 64, 64, "", "no empty line after the envelope (truncated?)"},
		{"line at the limit", long(8) + "\n", 8, 64, long(8), ""},
		{"line over the limit", "a\n" + long(9) + "\n", 8, 64, "", "envelope line 2 longer than 8 bytes"},
		{"unended line at the limit", "a\n" + strings.Repeat("x", 8), 8, 64, "", "envelope line 2 longer than 8 bytes"},
		{"unended line under the limit", strings.Repeat("x", 7), 8, 64, "", "no empty line"},
		// Lines longer than the reader's 16-byte buffer come in pieces.
		{"line over the buffer", long(40) + "\nmsg", 64, 64, long(40), ""},
		{"long line over the limit", long(65) + "\n", 64, 128, "", "envelope line 1 longer than 64 bytes"},
		{"envelope at the limit", long(30) + long(30) + "\n", 64, 60, long(30) + long(30), ""},
		{"envelope over the limit", long(30) + long(31) + "\n", 64, 60, "", "envelope longer than 60 bytes"},
		{"unended envelope over the limit", long(30) + strings.Repeat("x", 31), 64, 60, "", "no empty line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tc.data), 16)
			head, err := readEnvelope(r, tc.maxLine, tc.maxLen)
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) || head != nil {
					t.Errorf("readEnvelope(%q, %d, %d) = %q, %v; want an ErrInvalid saying %q", tc.data, tc.maxLine, tc.maxLen, head, err, tc.err)
				}
				return
			}
			if err != nil || string(head) != tc.head {
				t.Fatalf("readEnvelope(%q, %d, %d) = %q, %v; want %q", tc.data, tc.maxLine, tc.maxLen, head, err, tc.head)
			}
			if rest, _ := io.ReadAll(r); string(rest) != tc.data[len(head)+1:] {
				t.Errorf("readEnvelope(%q) left %q to read, want the message %q", tc.data, rest, tc.data[len(head)+1:])
			}
		})
	}
}

// A read error is returned as it is, for the caller's StorageError.
func TestReadEnvelopeReadError(t *testing.T) {
	fault := errors.New("disk on fire")
	r := bufio.NewReaderSize(io.MultiReader(strings.NewReader("a 1\n"), iotest.ErrReader(fault)), 16)
	if head, err := readEnvelope(r, 64, 64); err != fault {
		t.Errorf("readEnvelope = %q, %v; want %v", head, err, fault)
	}
	if _, err := readDrop(bufio.NewReader(iotest.ErrReader(fault))); !errors.Is(err, fault) || !IsTemporary(err) {
		t.Errorf("readDrop on a failing reader = %v; want a StorageError", err)
	}
}

// Pickup removes a drop it refuses: a drop it could not read because the
// disk failed must stay for the next Pickup, never be refused.
func TestDropEnvelopeReadErrorIsNoRefusal(t *testing.T) {
	fault := errors.New("disk on fire")
	_, err := readDropEnvelope(bufio.NewReader(iotest.ErrReader(fault)))
	if !IsTemporary(err) || errors.Is(err, errRefused) {
		t.Errorf("readDropEnvelope on a failing reader = %v; want a temporary error, not a refusal", err)
	}
	_, err = readDropEnvelope(bufio.NewReader(strings.NewReader("no envelope\n\n")))
	if !errors.Is(err, errRefused) || IsTemporary(err) {
		t.Errorf("readDropEnvelope on a bad envelope = %v; want a refusal", err)
	}
}

// The drop limits that the documented refusals (see doc.go) rest on: a
// line of 64 KiB with its newline, an envelope of 1 MiB.
func TestReadDropLimits(t *testing.T) {
	line := func(n int) []byte { return append(bytes.Repeat([]byte("x"), n-1), '\n') }
	many := bytes.Repeat(line(1024), maxDropEnvelope/1024)
	for _, tc := range []struct {
		name string
		data []byte
		err  string // in the error, "" for one from ParseDrop
	}{
		{"longest line", append(line(maxDropLine), '\n'), ""},
		{"line too long", append(line(maxDropLine+1), '\n'), "spool: invalid envelope: envelope line 1 longer than 65536 bytes"},
		{"longest envelope", append(many, '\n'), ""},
		{"envelope too long", append(append(many, 'x', '\n'), '\n'), "spool: invalid envelope: envelope longer than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readDrop(bufio.NewReaderSize(bytes.NewReader(tc.data), 64<<10))
			if tc.err == "" && (err == nil || strings.Contains(err.Error(), "longer than")) || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Errorf("readDrop(%d bytes) = %v, want %q (or a parse error)", len(tc.data), err, tc.err)
			}
		})
	}
}

// headOf reads with ReadAt: the file's offset does not move, and the
// message starts right after the empty line.
func TestHeadOf(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/q")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("postkit-envelope 1\nid X\n\nSubject: x\n\nbody\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	head, body, err := headOf(f, "X")
	if string(head) != "postkit-envelope 1\nid X\n" || body != 25 || err != nil {
		t.Errorf("headOf = %q, %d, %v; want the envelope and 25", head, body, err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 3 {
		t.Errorf("headOf moved the offset to %d", off)
	}
	if err := f.Truncate(20); err != nil {
		t.Fatal(err)
	}
	if _, _, err := headOf(f, "X"); !errors.Is(err, ErrInvalid) || err.Error() != "spool: entry X: spool: invalid envelope: no empty line after the envelope (truncated?)" {
		t.Errorf("headOf on a truncated file = %v", err)
	}
}

// FuzzReadEnvelope checks readEnvelope, with small limits and a small
// buffer, against the envelope found another way: the bytes before the
// first line that is just "\n", if no line before it is over the line
// limit and they are not over the size limit.
func FuzzReadEnvelope(f *testing.F) {
	for _, s := range []string{"a 1\nb 2\n\nmsg\n", "\n\n", "a\r\n\r\n\n", "", "a", strings.Repeat("x", 40) + "\n\n", strings.Repeat("y\n", 40) + "\n"} {
		f.Add([]byte(s))
	}
	const maxLine, maxLen = 24, 64
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		head, err := readEnvelope(r, maxLine, maxLen)
		want, ok := wantEnvelope(data, maxLine, maxLen)
		if !ok {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("readEnvelope(%q) = %q, %v; want ErrInvalid", data, head, err)
			}
			return
		}
		if err != nil || !bytes.Equal(head, want) {
			t.Fatalf("readEnvelope(%q) = %q, %v; want %q", data, head, err, want)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, data[len(head)+1:]) {
			t.Fatalf("readEnvelope(%q) left %q to read", data, rest)
		}
	})
}

func wantEnvelope(data []byte, maxLine, maxLen int) ([]byte, bool) {
	for i := 0; ; {
		j := bytes.IndexByte(data[i:], '\n')
		switch {
		case j < 0 || j+1 > maxLine:
			return nil, false
		case j == 0:
			return data[:i], true
		case i+j+1 > maxLen:
			return nil, false
		}
		i += j + 1
	}
}
