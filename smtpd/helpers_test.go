package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/selfsigned"
	"github.com/postkit/postkit/spool"
)

// Test users: alice and bob at example.org, and their passwords.
const (
	alicePassword = "alice-secret"
	bobPassword   = "bob-secret"
	testHostname  = "mx.example.org"
)

// testAliases are the aliases of every test root.
const testAliases = `sales@example.org: alice@example.org, bob@example.org
@catchall.test: alice@example.org
friend@example.org: someone@remote.test
`

var (
	tlsOnce   sync.Once
	tlsServer *tls.Config
	tlsPool   *x509.CertPool
)

// testTLS returns a server configuration with a certificate for localhost
// and a pool that trusts it.
func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	tlsOnce.Do(func() {
		certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
		if err != nil {
			panic(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			panic(err)
		}
		tlsServer = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		tlsPool = x509.NewCertPool()
		tlsPool.AppendCertsFromPEM(certPEM)
	})
	return tlsServer, tlsPool
}

// newRoot makes a postkit root with the test users and aliases.
func newRoot(t testing.TB) control.Root {
	t.Helper()
	root := control.Root(t.TempDir())
	var users strings.Builder
	for _, u := range []struct{ addr, pw string }{{"alice@example.org", alicePassword}, {"bob@example.org", bobPassword}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u.pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "%s:{BLF-CRYPT}%s::::::\n", u.addr, h)
	}
	writeEtc(t, root, "users", users.String())
	writeEtc(t, root, "aliases", testAliases)
	return root
}

func writeEtc(t testing.TB, root control.Root, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(root.Etc(name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Etc(name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a log destination tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testServer is a Server on a loopback port.
type testServer struct {
	t      testing.TB
	srv    *Server
	root   control.Root
	addr   string
	log    *syncBuffer
	mu     sync.Mutex
	sleeps []time.Duration
	// implicit makes the listener TLS from the first byte.
	implicit bool
}

type serverOption func(*Config, *testServer)

// implicitTLS serves with TLS from the first byte.
func implicitTLS(_ *Config, ts *testServer) { ts.implicit = true }

// startServer starts a Server in MX mode with STARTTLS on a fresh root,
// changed by opts, and stops it when the test ends.
func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	conf, _ := testTLS(t)
	ts := &testServer{t: t, root: newRoot(t), log: &syncBuffer{}}
	cfg := Config{
		Root:     ts.root,
		Hostname: testHostname,
		// An empty DNS: no SPF, DKIM or DMARC records, no DNSBL
		// listing, and no query leaves the machine.
		DNS:              dnstest.Start(t).Addr,
		TLS:              conf,
		AuthFailureDelay: time.Second,
		Log:              log.New(ts.log, "", 0),
		sleep: func(d time.Duration) {
			ts.mu.Lock()
			ts.sleeps = append(ts.sleeps, d)
			ts.mu.Unlock()
		},
	}
	for _, o := range opts {
		o(&cfg, ts)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	served := l
	if ts.implicit {
		served = tls.NewListener(l, conf)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(served)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if t.Failed() {
			t.Logf("server log:\n%s", ts.log.String())
		}
	})
	return ts
}

func submission(c *Config, _ *testServer) { c.Submission = true }

func withConfig(f func(*Config)) serverOption {
	return func(c *Config, _ *testServer) { f(c) }
}

// queued returns the spool's entries and their messages.
func (ts *testServer) queued() ([]*spool.Envelope, []string) {
	ts.t.Helper()
	sp, err := spool.Open(ts.root.SpoolDir())
	if err != nil {
		ts.t.Fatal(err)
	}
	envs, err := sp.List()
	if err != nil {
		ts.t.Fatal(err)
	}
	var msgs []string
	for _, e := range envs {
		f, err := sp.OpenMessage(e.ID)
		if err != nil {
			ts.t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			ts.t.Fatal(err)
		}
		msgs = append(msgs, string(b))
	}
	return envs, msgs
}

// waitLog waits until the server logged a line containing s.
func (ts *testServer) waitLog(s string) string {
	ts.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range strings.Split(ts.log.String(), "\n") {
			if strings.Contains(l, s) {
				return l
			}
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("no log line with %q; log:\n%s", s, ts.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (ts *testServer) sleepsSoFar() []time.Duration {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]time.Duration(nil), ts.sleeps...)
}

// client speaks SMTP line by line, for dialogs where every byte matters.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects to ts and reads the greeting.
func (ts *testServer) dial() *client {
	ts.t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	cl := &client{t: ts.t, conn: c, r: bufio.NewReader(c)}
	cl.expect(220)
	return cl
}

// dialTLS connects with implicit TLS.
func (ts *testServer) dialTLS() *client {
	ts.t.Helper()
	_, pool := testTLS(ts.t)
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	cl := &client{t: ts.t, conn: c, r: bufio.NewReader(c)}
	cl.expect(220)
	return cl
}

// send writes raw bytes.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one reply and returns its code and its text (lines joined by
// "\n", without codes).
func (c *client) reply() (int, string) {
	c.t.Helper()
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply (so far %q): %v", lines, err)
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 {
			c.t.Fatalf("short reply line %q", l)
		}
		lines = append(lines, l[4:])
		if l[3] == ' ' {
			code, err := strconv.Atoi(l[:3])
			if err != nil {
				c.t.Fatalf("reply line %q has no code", l)
			}
			return code, strings.Join(lines, "\n")
		}
	}
}

// expect reads a reply and checks its code.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, text := c.reply()
	if got != code {
		c.t.Fatalf("reply %d %q, want %d", got, text, code)
	}
	return text
}

// cmd sends a command line and checks the reply code.
func (c *client) cmd(line string, code int) string {
	c.t.Helper()
	c.send(line + "\r\n")
	got, text := c.reply()
	if got != code {
		c.t.Fatalf("%.80q: reply %d %q, want %d", line, got, text, code)
	}
	return text
}

// closed checks that the server closed the connection.
func (c *client) closed() {
	c.t.Helper()
	if l, err := c.r.ReadString('\n'); err != io.EOF {
		c.t.Fatalf("connection still open: read %q, %v", l, err)
	}
}

// startTLS runs STARTTLS and the handshake.
func (c *client) startTLS() {
	c.t.Helper()
	c.cmd("STARTTLS", 220)
	c.startTLSHandshake()
}

// startTLSHandshake does the client handshake after a 220 to STARTTLS.
func (c *client) startTLSHandshake() {
	c.t.Helper()
	_, pool := testTLS(c.t)
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// authPlain authenticates with AUTH PLAIN and an initial response.
func (c *client) authPlain(user, password string, code int) {
	c.t.Helper()
	c.cmd("AUTH PLAIN "+plainResponse(user, password), code)
}

func plainResponse(user, password string) string {
	return b64("\x00" + user + "\x00" + password)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// message sends DATA and the message (CRLF lines, dot-stuffed by the
// caller) and returns the final reply.
func (c *client) message(msg string) (int, string) {
	c.t.Helper()
	c.cmd("DATA", 354)
	c.send(msg + ".\r\n")
	return c.reply()
}

// mx runs EHLO, MAIL and one RCPT per recipient, all expected to succeed.
func (c *client) mx(from string, rcpts ...string) {
	c.t.Helper()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<"+from+">", 250)
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", 250)
	}
}

func newBufReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
