package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// referenceData is readData's rule one byte at a time: the DATA block up to
// and including the CRLF.CRLF that ends it (all of in if none does), and
// whether it has a bare CR or LF.
func referenceData(in []byte) (block []byte, bare bool) {
	state, prevCR := dataBeginLine, false
	for i, b := range in {
		if b == '\n' && !prevCR || b != '\n' && prevCR {
			bare = true
		}
		prevCR = b == '\r'
		state = nextDataState(state, b)
		if state == dataEnd {
			return in[:i+1], bare
		}
	}
	return in, bare
}

// chunkyReader returns at most a random number of bytes per Read.
type chunkyReader struct {
	data []byte
	rnd  *rand.Rand
}

func (r *chunkyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+r.rnd.IntN(40))], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestReadDataMatchesReference checks readData's fast path for the middle
// of lines against the byte-by-byte rule: the same block, the same bare
// CR/LF verdict, and nothing read past the end of the block, whatever the
// read sizes and however the input arrives.
func TestReadDataMatchesReference(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab.\r\n")
	for trial := range 3000 {
		body := make([]byte, rnd.IntN(300))
		for i := range body {
			if rnd.IntN(4) == 0 {
				body[i] = alphabet[rnd.IntN(len(alphabet))]
			} else {
				body[i] = 'x'
			}
		}
		in := append(append(body, "\r\n.\r\n"...), "TAIL"...)
		wantBlock, wantBare := referenceData(in)

		local, remote := net.Pipe()
		c := &conn{
			Conn:      local,
			srv:       &Server{dataTimeout: time.Minute},
			info:      &connInfo{},
			br:        bufio.NewReaderSize(&chunkyReader{data: in, rnd: rnd}, 16),
			mode:      modeData,
			dataState: dataBeginLine,
		}
		var got []byte
		for c.mode == modeData {
			p := make([]byte, 1+rnd.IntN(50))
			n, err := c.readData(p)
			got = append(got, p[:n]...)
			if err != nil {
				// The input ran out without an end of data (a
				// CR CR LF "." CR LF does not end it).
				break
			}
		}
		rest, _ := io.ReadAll(c.br)
		local.Close()
		remote.Close()
		ended := c.mode != modeData
		if ended != (len(wantBlock) < len(in)) || !bytes.Equal(got, wantBlock) || ended && c.dataLast.Load() != wantBare {
			t.Fatalf("trial %d: input %q: readData gave %q (ended %v, bare %v), want %q (bare %v)", trial, in, got, ended, c.dataLast.Load(), wantBlock, wantBare)
		}
		if want := in[len(wantBlock):]; !bytes.Equal(rest, want) {
			t.Fatalf("trial %d: after the block %q is left, want %q", trial, rest, want)
		}
	}
}

// TestBareLineEnding checks the CR-hopping scan against the byte-by-byte
// rule, across chunk boundaries.
func TestBareLineEnding(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("x\r\n")
	for trial := range 20000 {
		in := make([]byte, rnd.IntN(12))
		for i := range in {
			in[i] = alphabet[rnd.IntN(len(alphabet))]
		}
		wantBare, prev := false, false
		for _, b := range in {
			if b == '\n' && !prev || b != '\n' && prev {
				wantBare = true
			}
			prev = b == '\r'
		}
		// In chunks, as reads deliver it, stopping at the first bare one.
		gotBare, prevCR := false, false
		for rest := in; len(rest) > 0 && !gotBare; {
			k := 1 + rnd.IntN(len(rest))
			gotBare, prevCR = bareLineEnding(rest[:k], prevCR)
			rest = rest[k:]
		}
		if gotBare != wantBare || !wantBare && prevCR != prev {
			t.Fatalf("trial %d: %q: bare %v, ends with CR %v; want %v, %v", trial, in, gotBare, prevCR, wantBare, prev)
		}
	}
}
