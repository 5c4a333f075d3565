package maildir

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
)

// TestDeliverAllocation guards against Deliver making its buffers again for
// every message (some 200 KiB for a 4 KiB one, which made garbage collection
// a fifth of a queue runner's work): over many deliveries of a 4 KiB message
// the heap allocation per delivery must stay far below one 64 KiB buffer.
// The message comes as package lda gives it, in an io.MultiReader, whose
// WriteTo would allocate 32 KiB if Deliver went through io.Copy.
func TestDeliverAllocation(t *testing.T) {
	const (
		deliveries = 50
		maxPerMsg  = 32 << 10
	)
	d := newMaildir(t)
	header := []byte("Return-Path: <bob@example.org>\n")
	msg := testMessage(4 << 10)
	deliver := func() {
		if _, err := d.Deliver(io.MultiReader(bytes.NewReader(header), bytes.NewReader(msg)),
			DeliverOptions{Hostname: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	deliver() // fills the pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range deliveries {
		deliver()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / deliveries; per > maxPerMsg {
		t.Errorf("Deliver of a 4 KiB message allocates %d bytes, want at most %d", per, maxPerMsg)
	}
}

// TestLFWriterFillFrom runs Deliver's conversion with buffers of a few bytes,
// so that CRLF pairs and CR runs straddle every buffer boundary.
func TestLFWriterFillFrom(t *testing.T) {
	inputs := []string{
		"", "a\r\nb\r\n", "a\nb\n", "a\r\nb\n", "a\rb\r\n", "a\r\r\n", "\r", "\r\r", "\r\n\r\n", "x\r", "\n\r",
		"x\r\r\r\n", "\r\r\r\r\r\r\n\r", "no trailing newline", strings.Repeat("li\r\nne\r\n\r", 50),
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"halves", iotest.HalfReader},
		{"bytes", iotest.OneByteReader},
	}
	for _, in := range inputs {
		for _, size := range []int{2, 3, 4, 5, 7, 64} {
			for _, rd := range readers {
				var out bytes.Buffer
				lw := newLFWriter(&out)
				lw.buf = make([]byte, size)
				n, err := lw.fillFrom(rd.wrap(strings.NewReader(in)))
				if err == nil {
					err = lw.Close()
				}
				want := toLF(in)
				if n != int64(len(in)) || err != nil || out.String() != want {
					t.Fatalf("buffer %d, %s reads: fillFrom(%q) = %d, %v, stored %q; want %d, nil, %q",
						size, rd.name, in, n, err, out.String(), len(in), want)
				}
				served, _ := io.ReadAll(NewCRLFReader(strings.NewReader(want)))
				if lw.size != int64(len(want)) || lw.vsize != int64(len(served)) {
					t.Fatalf("buffer %d, %s reads: sizes of %q = %d, %d; want %d, %d",
						size, rd.name, in, lw.size, lw.vsize, len(want), len(served))
				}
			}
		}
	}
}

// TestLFWriterFillFromWriteError checks that a failing write (a full disk
// for Deliver) ends fillFrom with its error, for a full buffer and at the end.
func TestLFWriterFillFromWriteError(t *testing.T) {
	for _, in := range []string{"abc", strings.Repeat("line\r\n", 10)} {
		lw := newLFWriter(failingWriter{})
		lw.buf = make([]byte, 8)
		if _, err := lw.fillFrom(strings.NewReader(in)); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("fillFrom(%q) into a failing writer = %v, want %v", in, err, syscall.ENOSPC)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }
