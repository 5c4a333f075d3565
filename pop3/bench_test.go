package pop3

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// benchMaildir makes a Maildir with n messages of 2 to 12 KiB in new/, named
// as postkit names them, like scripts/bench's pop3 workloads.
func benchMaildir(b *testing.B, n int) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "alice")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:76] + "\n"
	sizes := []int{2 << 10, 3 << 10, 4 << 10, 4 << 10, 5 << 10, 6 << 10, 8 << 10, 12 << 10}
	for i := range n {
		var msg strings.Builder
		fmt.Fprintf(&msg, "From: bob@example.net\nSubject: message %d\n\n", i)
		for msg.Len() < sizes[i%len(sizes)] {
			msg.WriteString(line)
		}
		vsize := msg.Len() + strings.Count(msg.String(), "\n")
		name := fmt.Sprintf("%d.M%dP4242Q%dR%016x.bench,S=%d,W=%d", 1795000000+i/10, i%10*1000, i, i*7919, msg.Len(), vsize)
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(msg.String()), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkOpenMaildir10k is a login's work on a mailbox of 10,000
// messages already in cur/ and in the UID list.
func BenchmarkOpenMaildir10k(b *testing.B) {
	dir := benchMaildir(b, 10000)
	m, err := OpenMaildir(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	m.Close()
	for b.Loop() {
		m, err := OpenMaildir(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

// BenchmarkRETR sends messages over loopback TCP, one RETR at a time, as a
// client downloading its mail does; the first RETR of each message also
// marks it seen.
func BenchmarkRETR(b *testing.B) {
	const n = 2000
	dir := benchMaildir(b, n)
	srv := &Server{
		Hostname:               "pop.test",
		AllowPlaintextLoopback: true,
		Authenticate:           fakeAuth,
		Open:                   func(string) (Mailbox, error) { return OpenMaildir(dir, nil) },
		Log:                    log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go srv.Serve(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	readStatus := func() {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			b.Fatalf("status %q: %v", line, err)
		}
	}
	readStatus()
	io.WriteString(conn, "USER alice@example.org\r\nPASS secret\r\n")
	readStatus()
	readStatus()
	var octets int64
	i := 0
	for b.Loop() {
		io.WriteString(conn, "RETR "+strconv.Itoa(i%n+1)+"\r\n")
		i++
		readStatus()
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if string(line) == ".\r\n" {
				break
			}
			octets += int64(len(line))
		}
	}
	b.SetBytes(octets / int64(max(i, 1)))
	io.WriteString(conn, "QUIT\r\n")
	readStatus()
}

// BenchmarkMaildirsOpen10k is BenchmarkOpenMaildir10k with the UID list
// remembered from the last session, as pop3d --listen does.
func BenchmarkMaildirsOpen10k(b *testing.B) {
	dir := benchMaildir(b, 10000)
	var ms Maildirs
	for b.Loop() {
		m, err := ms.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

// BenchmarkFirstLogin10k is the first login after 10,000 deliveries: the UID
// list is made and every file moved from new/ to cur/. Each round gets the
// same files, hard-linked from a template.
func BenchmarkFirstLogin10k(b *testing.B) {
	template := benchMaildir(b, 10000)
	names, err := os.ReadDir(filepath.Join(template, "new"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "alice")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				b.Fatal(err)
			}
		}
		for _, e := range names {
			if err := os.Link(filepath.Join(template, "new", e.Name()), filepath.Join(dir, "new", e.Name())); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		m, err := OpenMaildir(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}
