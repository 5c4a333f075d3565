package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/selfsigned"
)

// testTLS returns a server configuration with a fresh self-signed
// certificate for pop.test and a client configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate([]string{"pop.test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool, ServerName: "pop.test"}
}

func capa(c *client) []string {
	c.t.Helper()
	c.send("CAPA")
	c.expect("+OK capability list follows")
	var caps []string
	for {
		l := c.line()
		if l == "." {
			return caps
		}
		caps = append(caps, l)
	}
}

// curNames returns the file names in the fixture's cur/.
func curNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFailureDelaysDouble(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	for range 2 {
		c.send("USER alice@example.org", "PASS wrong")
		c.expect("+OK send PASS", "-ERR [AUTH] invalid credentials")
	}
	c.send("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n")
	c.expect("-ERR [AUTH] invalid credentials, closing")
	c.expectClosed()
	f.waitSessions(t)
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.delays, want) {
		t.Errorf("failure delays = %v, want %v", f.delays, want)
	}
	if !strings.Contains(f.log.String(), "result=too-many-login-failures") {
		t.Errorf("log %q lacks result=too-many-login-failures", f.log.String())
	}
	// One line per failure, starting with the client's IP for fail2ban.
	for _, want := range []string{
		"auth-failed client=127.0.0.1 mech=USER user=alice@example.org failures=1\n",
		"auth-failed client=127.0.0.1 mech=USER user=alice@example.org failures=2\n",
		"auth-failed client=127.0.0.1 mech=PLAIN user=alice@example.org failures=3\n",
	} {
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("log %q lacks %q", f.log.String(), want)
		}
	}
}

func TestSTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	f := startServer(t, func(s *Server) {
		s.TLSConfig = serverTLS
		s.AllowPlaintextLoopback = false
	})
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	caps := capa(c)
	if !slices.Contains(caps, "STLS") || slices.Contains(caps, "USER") || slices.Contains(caps, "SASL PLAIN") {
		t.Errorf("CAPA before STLS = %q, want STLS and neither USER nor SASL PLAIN", caps)
	}
	c.send("USER alice@example.org")
	c.expect("-ERR [AUTH] login only over TLS: use STLS first")
	c.send("STLS")
	c.expect("+OK begin TLS negotiation")
	tc := tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, tc)
	caps = capa(c)
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL PLAIN") {
		t.Errorf("CAPA after STLS = %q, want USER and SASL PLAIN, no STLS", caps)
	}
	c.send("STLS")
	c.expect("-ERR already using TLS")
	c.send("USER alice@example.org", "PASS secret", "QUIT")
	c.expect("+OK send PASS", "+OK 4 messages (121 octets)", "+OK bye, 0 messages deleted")
	c.expectClosed()
	f.waitSessions(t)
	if !strings.Contains(f.log.String(), "user=alice@example.org tls=true") {
		t.Errorf("log %q lacks user=alice@example.org tls=true", f.log.String())
	}
}

// TestSTLSDropsInjectedCommands: plain text sent after STLS in the same
// packet must not be executed as if it had come over TLS (CVE-2011-0411).
func TestSTLSDropsInjectedCommands(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	f := startServer(t, func(s *Server) { s.TLSConfig = serverTLS })
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	// The injected bytes cannot take part in the handshake, so a server
	// that kept them would fail it or answer them first.
	c.send("STLS")
	c.expect("+OK begin TLS negotiation")
	tc := tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, tc)
	c.send("NOOP")
	c.expect("-ERR log in first")

	// Now with the injection in the same write as STLS.
	c = dial(t, f.addr)
	c.expectPrefix("+OK")
	c.send("STLS", "USER alice@example.org")
	c.expect("+OK begin TLS negotiation")
	tc = tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after injected command: %v", err)
	}
	c = newClient(t, tc)
	c.send("PASS secret")
	c.expect("-ERR send USER first")
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	f := startServer(t, func(s *Server) {
		s.TLSConfig = serverTLS
		s.AllowPlaintextLoopback = false
	})
	conn, err := tls.Dial("tcp", f.addr, clientTLS)
	if err == nil {
		t.Fatal("TLS handshake with a plain-text listener succeeded")
	}
	_ = conn

	// A listener that wraps connections in TLS, as inetd does for --tls-implicit.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go f.srv.Serve(tls.NewListener(ln, serverTLS))
	tc, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, tc)
	defer tc.Close()
	c.expect("+OK pop.test POP3 server ready")
	caps := capa(c)
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA over implicit TLS = %q, want USER and no STLS", caps)
	}
	c.send("USER alice@example.org", "PASS secret", "STAT", "QUIT")
	c.expect("+OK send PASS", "+OK 4 messages (121 octets)", "+OK 4 121", "+OK bye, 0 messages deleted")
}

func TestInUse(t *testing.T) {
	f := startServer(t, nil)
	first := dial(t, f.addr)
	first.login()
	second := dial(t, f.addr)
	second.expectPrefix("+OK")
	second.send("USER alice@example.org", "PASS secret")
	second.expect("+OK send PASS", "-ERR [IN-USE] mailbox in use by another POP3 session")
	// Still in AUTHORIZATION: it may try again once the first has gone.
	first.send("QUIT")
	first.expect("+OK bye, 0 messages deleted")
	first.expectClosed()
	f.waitSessionsExcept(t, 1)
	second.send("USER alice@example.org", "PASS secret")
	second.expect("+OK send PASS", "+OK 4 messages (121 octets)")
}

// waitSessionsExcept waits until only n sessions are left.
func (f *fixture) waitSessionsExcept(t *testing.T, n int) {
	t.Helper()
	for {
		f.srv.mu.Lock()
		left := len(f.srv.conns)
		f.srv.mu.Unlock()
		if left <= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDropDeletesNothing(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	c.send("DELE 1", "DELE 2")
	c.expect("+OK message 1 deleted", "+OK message 2 deleted")
	c.conn.Close()
	f.waitSessions(t)
	if n := len(curNames(t, f.dir)); n != 4 {
		t.Errorf("after DELE and a dropped connection cur/ has %d files, want 4", n)
	}
	if !strings.Contains(f.log.String(), "deleted=0 result=dropped") {
		t.Errorf("log %q lacks deleted=0 result=dropped", f.log.String())
	}
	// And the lock is gone.
	c = dial(t, f.addr)
	c.login()
}

func TestQuitRemovesMarked(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	c.send("DELE 1", "DELE 3", "QUIT")
	c.expect("+OK message 1 deleted", "+OK message 3 deleted", "+OK bye, 2 messages deleted")
	c.expectClosed()
	f.waitSessions(t)
	want := []string{"1700000002.M2P100.test:2,", "1700000004.M4P100.test,S=19,W=22:2,"}
	if got := curNames(t, f.dir); !slices.Equal(got, want) {
		t.Errorf("cur/ after DELE 1, DELE 3, QUIT = %q, want %q", got, want)
	}
	if !strings.Contains(f.log.String(), "deleted=2 result=quit") {
		t.Errorf("log %q lacks deleted=2 result=quit", f.log.String())
	}
}

// TestOtherProgramMeanwhile: an IMAP session renames (flags) and removes
// files while the POP3 session runs.
func TestOtherProgramMeanwhile(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	cur := filepath.Join(f.dir, "cur")
	// Message 1 gets flagged, message 2 removed, message 3 flagged.
	rename := func(from, to string) {
		if err := os.Rename(filepath.Join(cur, from), filepath.Join(cur, to)); err != nil {
			t.Fatal(err)
		}
	}
	rename("1700000001.M1P100.test,S=34,W=39:2,", "1700000001.M1P100.test,S=34,W=39:2,F")
	rename("1700000003.M3P100.test,S=31,W=32:2,S", "1700000003.M3P100.test,S=31,W=32:2,FS")
	if err := os.Remove(filepath.Join(cur, "1700000002.M2P100.test:2,")); err != nil {
		t.Fatal(err)
	}
	c.send("RETR 1")
	c.expect("+OK 39 octets", "Subject: one", "", "line 1", "..dotted", "last", ".")
	c.send("RETR 2")
	c.expect("-ERR message 2 was removed by another program")
	c.send("UIDL 1")
	c.expect("+OK 1 000000016553f100")
	c.send("DELE 2", "DELE 3", "QUIT")
	c.expect("+OK message 2 deleted", "+OK message 3 deleted", "+OK bye, 2 messages deleted")
	c.expectClosed()
	f.waitSessions(t)
	want := []string{"1700000001.M1P100.test,S=34,W=39:2,FS", "1700000004.M4P100.test,S=19,W=22:2,"}
	if got := curNames(t, f.dir); !slices.Equal(got, want) {
		t.Errorf("cur/ = %q, want %q", got, want)
	}
}

func TestRetrMarksSeenTopDoesNot(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	c.send("TOP 1 0")
	c.expect("+OK top of message follows", "Subject: one", "", ".")
	c.send("NOOP")
	c.expect("+OK")
	if got := curNames(t, f.dir)[0]; got != "1700000001.M1P100.test,S=34,W=39:2," {
		t.Errorf("after TOP message 1 is %q, want it unchanged", got)
	}
	c.send("RETR 2")
	c.expect("+OK 28 octets", "Subject: two", "X: y", "", "body", ".")
	c.send("NOOP")
	c.expect("+OK")
	// Marked at RETR time, before QUIT.
	if got := curNames(t, f.dir)[1]; got != "1700000002.M2P100.test:2,S" {
		t.Errorf("after RETR message 2 is %q, want the S flag", got)
	}
	c.send("RETR 2", "UIDL 2", "QUIT")
	c.expect("+OK 28 octets", "Subject: two", "X: y", "", "body", ".", "+OK 2 000000026553f100", "+OK bye, 0 messages deleted")
	f.waitSessions(t)
	if !strings.Contains(f.log.String(), "retrieved=2 deleted=0 result=quit") {
		t.Errorf("log %q lacks retrieved=2", f.log.String())
	}
}

func TestListingFixedForSession(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	if _, err := os.Stat(filepath.Join(f.dir, "cur", "1700000004.M4P100.test,S=19,W=22:2,")); err != nil {
		t.Errorf("message in new/ not moved to cur/ at login: %v", err)
	}
	if _, err := maildir.Dir(f.dir).Deliver(strings.NewReader("Subject: five\n\nlate\n"), maildir.DeliverOptions{Hostname: "test"}); err != nil {
		t.Fatal(err)
	}
	c.send("STAT", "LIST 5", "QUIT")
	c.expect("+OK 4 121", "-ERR no such message", "+OK bye, 0 messages deleted")
	f.waitSessions(t)
	c = dial(t, f.addr)
	c.login()
	c.send("LIST 5", "UIDL 5")
	c.expect("+OK 5 23", "+OK 5 "+UIDL(5, fixtureValidity))
}

func TestIdleTimeout(t *testing.T) {
	f := startServer(t, func(s *Server) { s.IdleTimeout = 50 * time.Millisecond })
	c := dial(t, f.addr)
	c.login()
	c.send("DELE 1")
	c.expect("+OK message 1 deleted")
	c.expect("-ERR disconnected for inactivity")
	c.expectClosed()
	f.waitSessions(t)
	if n := len(curNames(t, f.dir)); n != 4 {
		t.Errorf("after an idle timeout cur/ has %d files, want 4 (no UPDATE state)", n)
	}
	if !strings.Contains(f.log.String(), "result=timeout") {
		t.Errorf("log %q lacks result=timeout", f.log.String())
	}
}

func TestLongLines(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	// 255 octets with CRLF is allowed (RFC 2449 §4), one more is not.
	c.send("USER " + strings.Repeat("a", 248))
	c.expect("+OK send PASS")
	c.send("USER " + strings.Repeat("a", 249))
	c.expect("-ERR line too long (RFC 2449 §4: at most 255 octets)")
	// A long SASL response is fine.
	c.send("AUTH PLAIN")
	c.expect("+ ")
	c.send(strings.Repeat("QUFB", 500))
	c.expect("-ERR [AUTH] invalid credentials")
	c.send("NOOP")
	c.expect("-ERR log in first")
	// Megabytes without a line ending close the connection.
	big := bytes.Repeat([]byte("x"), 1<<20)
	go c.conn.Write(big)
	c.expect("-ERR line too long, closing")
	c.expectClosed()
}

func TestTooManyBadCommands(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	for range maxBadCommands - 1 {
		c.send("BLAH")
		c.expect("-ERR unknown command")
	}
	c.send("BLAH")
	c.expect("-ERR too many bad commands, closing")
	c.expectClosed()
}

func TestTemporaryFailures(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.expectPrefix("+OK")
	c.send("USER broken@example.org", "PASS x")
	c.expect("+OK send PASS", "-ERR [SYS/TEMP] authentication temporarily unavailable")
	f.srv.Open = func(string) (Mailbox, error) { return nil, errors.New("disk on fire") }
	c.send("USER alice@example.org", "PASS secret")
	c.expect("+OK send PASS", "-ERR [SYS/TEMP] cannot open mailbox")
	c.send("QUIT")
	c.expect("+OK bye")
	f.waitSessions(t)
	if !strings.Contains(f.log.String(), `error="disk on fire"`) {
		t.Errorf("log %q lacks the error", f.log.String())
	}
}

func TestShutdownEndsSessionsWithoutUpdate(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
	c.send("DELE 1")
	c.expect("+OK message 1 deleted")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(cancelled) = %v, want context.Canceled", err)
	}
	c.expectClosed()
	if n := len(curNames(t, f.dir)); n != 4 {
		t.Errorf("after Shutdown cur/ has %d files, want 4", n)
	}
	if _, err := net.Dial("tcp", f.addr); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
}

// TestSizesAreOctetsSent: for awkward messages, LIST sizes equal the octets
// RETR sends before dot-stuffing, and the contents arrive intact.
func TestSizesAreOctetsSent(t *testing.T) {
	messages := map[string]string{
		"empty":           "",
		"crlf on disk":    "A: b\r\n\r\nc\r\n",
		"bare CR":         "A: b\r\n\rx\r\r\n",
		"NUL bytes":       "A: \x00\n\n\x00\x00\n",
		"8-bit header":    "Subject: gr\xfc\xdfe\n\n\xff\n",
		"dots":            ".\n..\n...\n.x",
		"no separator":    "A: b\nC: d",
		"10 MB one line":  strings.Repeat("y", 10<<20),
		"dot at 32K edge": strings.Repeat("z", copyBufSize-2) + "\n.\n",
	}
	f := startServer(t, nil)
	// Without W= in the name, so sizes are counted.
	i := 0
	var names []string
	for name, content := range messages {
		i++
		file := filepath.Join(f.dir, "new", fmt.Sprintf("17100000%02d.M0P1.x", i))
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	c := dial(t, f.addr)
	c.login()
	for n := 5; n < 5+len(messages); n++ {
		num := strconv.Itoa(n)
		c.send("LIST " + num)
		size, err := strconv.Atoi(strings.TrimPrefix(c.expectPrefix("+OK "+num+" "), "+OK "+num+" "))
		if err != nil {
			t.Fatal(err)
		}
		c.send("RETR " + num)
		c.expectPrefix("+OK ")
		var got bytes.Buffer
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == ".\r\n" {
				break
			}
			if !strings.HasSuffix(line, "\r\n") {
				t.Fatalf("RETR %s: line %q without CRLF", num, line)
			}
			got.WriteString(strings.TrimPrefix(line, "."))
		}
		content := messages[names[n-5]]
		want, _ := io.ReadAll(maildir.NewCRLFReader(strings.NewReader(content)))
		if len(want) != size {
			t.Errorf("message %q: LIST says %d octets, the CRLF form has %d", names[n-5], size, len(want))
		}
		// The terminating CRLF added after a last line without one is not
		// part of the message.
		if !bytes.Equal(got.Bytes(), want) && !bytes.Equal(got.Bytes(), append(want, '\r', '\n')) {
			t.Errorf("message %q: RETR sent %d octets that differ from its %d-octet CRLF form", names[n-5], got.Len(), len(want))
		}
	}
}

// TestServeSingleConnection: with a listener that hands out one inherited
// connection (inetd, systemd Accept=yes), Serve returns once it is served.
func TestServeSingleConnection(t *testing.T) {
	f := startServer(t, nil)
	clientEnd, serverEnd := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(inetd.ConnListener(serverEnd)) }()
	c := newClient(t, clientEnd)
	// net.Pipe is not loopback TCP: no plain-text login.
	c.expect("+OK pop.test POP3 server ready")
	c.send("USER alice@example.org")
	c.expect("-ERR [AUTH] login only over TLS")
	c.send("QUIT")
	c.expect("+OK bye")
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve(one connection) = %v, want net.ErrClosed", err)
	}
}
