package imapd

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// batchPair returns a batchConn accepted on a loopback listener and the
// client's end.
func batchPair(t *testing.T) (*batchConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := batchListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := c.(*batchConn)
	if !ok {
		t.Fatalf("Accept returned %T, want *batchConn", c)
	}
	t.Cleanup(func() { bc.Close() })
	return bc, client
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return string(buf)
}

// TestBatchConnReadSends: lines written before the server reads reach
// the client, in order, and the client's command reaches the server.
func TestBatchConnReadSends(t *testing.T) {
	bc, client := batchPair(t)
	want := ""
	for _, l := range []string{"* 1 FETCH (UID 1)\r\n", "* 2 FETCH (UID 2)\r\n", "A1 OK done\r\n"} {
		if _, err := bc.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
		want += l
	}
	done := make(chan string)
	go func() {
		buf := make([]byte, 64)
		n, _ := bc.Read(buf)
		done <- string(buf[:n])
	}()
	if got := readN(t, client, len(want)); got != want {
		t.Errorf("client read %q, want %q", got, want)
	}
	client.Write([]byte("A2 NOOP\r\n"))
	if got := <-done; got != "A2 NOOP\r\n" {
		t.Errorf("server read %q", got)
	}
}

// TestBatchConnTimerSends: a line written while the server waits for
// nothing (an update during IDLE) reaches the client without a read.
func TestBatchConnTimerSends(t *testing.T) {
	bc, client := batchPair(t)
	if _, err := bc.Write([]byte("* 3 EXISTS\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, client, 12); got != "* 3 EXISTS\r\n" {
		t.Errorf("client read %q", got)
	}
}

// TestBatchConnLargeAndClose: a write larger than batchSize passes
// through whole after what was gathered, and Close sends the rest.
func TestBatchConnLargeAndClose(t *testing.T) {
	bc, client := batchPair(t)
	big := strings.Repeat("x", 3*batchSize)
	var want bytes.Buffer
	for _, p := range []string{"* 1 FETCH (BODY[] {", "98304}\r\n", big, ")\r\n", "* BYE\r\n"} {
		if _, err := bc.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		want.WriteString(p)
	}
	go bc.Close()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("client read %d bytes, want %d in order", len(got), want.Len())
	}
}
