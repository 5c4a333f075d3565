package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtureMessages are the files of the test Maildir, by path under it; they
// get UIDs 1 to 4 in this order. Message 2 has no W= (its size is counted
// and cached), message 4 waits in new/.
var fixtureMessages = []struct{ path, content string }{
	{"cur/1700000001.M1P100.test,S=34,W=39:2,", "Subject: one\n\nline 1\n.dotted\nlast\n"},
	{"cur/1700000002.M2P100.test:2,", "Subject: two\nX: y\n\nbody\n"},
	{"cur/1700000003.M3P100.test,S=31,W=32:2,S", "no separator header only\nsecond"},
	{"new/1700000004.M4P100.test,S=19,W=22", "Subject: four\n\nnew\n"},
}

// fixtureValidity is the UIDVALIDITY of the test Maildir (0x6553f100), fixed
// so that dialogs can show UIDLs: message n has UIDL "0000000N6553f100".
const fixtureValidity = 1700000000

// newMaildir makes a Maildir with the fixture messages and a dovecot-uidlist
// that has given out no UIDs yet.
func newMaildir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "alice")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	list := fmt.Sprintf("3 V%d N1 G0123456789abcdef0123456789abcdef\n", fixtureValidity)
	if err := os.WriteFile(filepath.Join(dir, "dovecot-uidlist"), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range fixtureMessages {
		if err := os.WriteFile(filepath.Join(dir, m.path), []byte(m.content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lockedBuffer collects log output written from session goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is a running Server on a loopback port over one Maildir.
type fixture struct {
	srv    *Server
	addr   string
	dir    string
	log    *lockedBuffer
	mu     sync.Mutex
	delays []time.Duration
}

// fakeAuth knows alice@example.org (password "secret", any case of the
// address) and bob@example.org ("pass  word"); both use the same Maildir.
func fakeAuth(login, password string) (string, error) {
	switch {
	case strings.EqualFold(login, "alice@example.org") && password == "secret":
		return "alice@example.org", nil
	case login == "bob@example.org" && password == "pass  word":
		return "bob@example.org", nil
	case login == "broken@example.org":
		return "", errors.New("users file unreadable")
	}
	return "", ErrBadCredentials
}

// startServer serves a fresh fixture Maildir. configure may change the
// Server before it starts.
func startServer(t *testing.T, configure func(*Server)) *fixture {
	t.Helper()
	f := &fixture{dir: newMaildir(t), log: &lockedBuffer{}}
	logger := log.New(f.log, "", 0)
	f.srv = &Server{
		Hostname:               "pop.test",
		AllowPlaintextLoopback: true,
		Authenticate:           fakeAuth,
		Open: func(user string) (Mailbox, error) {
			return OpenMaildir(f.dir, logger)
		},
		Log: logger,
		sleep: func(d time.Duration) {
			f.mu.Lock()
			f.delays = append(f.delays, d)
			f.mu.Unlock()
		},
	}
	if configure != nil {
		configure(f.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return f
}

// waitSessions waits until every session so far has ended (their connections
// were closed by the client or the server) and logged.
func (f *fixture) waitSessions(t *testing.T) {
	t.Helper()
	f.waitSessionsExcept(t, 0)
}

// client is a raw POP3 client that checks every octet.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func newClient(t *testing.T, conn net.Conn) *client {
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		c.t.Fatalf("sending %q: %v", lines, err)
	}
}

// line reads one line and checks it ends in CRLF, which it removes.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("got reply %q, want %q", got, w)
		}
	}
}

func (c *client) expectPrefix(prefix string) string {
	c.t.Helper()
	got := c.line()
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("got reply %q, want prefix %q", got, prefix)
	}
	return got
}

func (c *client) expectClosed() {
	c.t.Helper()
	if l, err := c.r.ReadString('\n'); err == nil || l != "" {
		c.t.Fatalf("got %q, %v, want the connection closed", l, err)
	}
}

// login logs in as alice and checks the greeting.
func (c *client) login() {
	c.t.Helper()
	c.expectPrefix("+OK ")
	c.send("USER alice@example.org", "PASS secret")
	c.expect("+OK send PASS")
	c.expectPrefix("+OK ")
}

// TestDialogs runs the dialogs in testdata/dialogs: "C: " lines are sent
// (consecutive ones in one write, which pipelines them), "S: " lines must be
// the next reply line exactly, "S~ " a prefix of it, "S: <closed>" the end of
// the connection; "@plaintext-refused" before the first line turns off the
// loopback exception.
func TestDialogs(t *testing.T) {
	files, err := filepath.Glob("testdata/dialogs/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dialogs: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			plaintext := true
			for _, l := range lines {
				if l == "@plaintext-refused" {
					plaintext = false
				}
			}
			f := startServer(t, func(s *Server) { s.AllowPlaintextLoopback = plaintext })
			c := dial(t, f.addr)
			var batch []string
			for n, l := range lines {
				if strings.HasPrefix(l, "C: ") {
					batch = append(batch, strings.TrimPrefix(l, "C: "))
					continue
				}
				if len(batch) > 0 {
					c.send(batch...)
					batch = nil
				}
				switch {
				case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "@"):
				case l == "S: <closed>":
					c.expectClosed()
				case strings.HasPrefix(l, "S: "):
					if got, want := c.line(), strings.TrimPrefix(l, "S: "); got != want {
						t.Fatalf("%s:%d: got %q, want %q", file, n+1, got, want)
					}
				case strings.HasPrefix(l, "S~ "):
					if got, want := c.line(), strings.TrimPrefix(l, "S~ "); !strings.HasPrefix(got, want) {
						t.Fatalf("%s:%d: got %q, want prefix %q", file, n+1, got, want)
					}
				default:
					t.Fatalf("%s:%d: cannot parse %q", file, n+1, l)
				}
			}
			if len(batch) > 0 {
				t.Fatalf("%s: dialog ends with unanswered commands", file)
			}
		})
	}
}
