package smtpd

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRateConnections(t *testing.T) {
	ts := startServer(t)
	writeEtc(t, ts.root, "rate-connections-per-minute", "2\n")
	// A STARTTLS session counts once.
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.cmd("QUIT", 221)
	ts.dial().cmd("QUIT", 221)

	conn := ts.dialRaw()
	code, text := conn.reply()
	if code != 421 || !strings.HasPrefix(text, "4.7.0 "+testHostname+" Too many connections from 127.0.0.1, try again in ") {
		t.Fatalf("third connection in a minute: %d %q, want 421 4.7.0", code, text)
	}
	conn.closed()
	ts.waitLog("reason=rate-connections limit=2/minute")
	ts.waitLog("result=rate-limited")
	if _, err := os.Stat(filepath.Join(ts.root.SpoolDir(), "ratelimit", "connections", "127.0.0.1")); err != nil {
		t.Errorf("no counter for 127.0.0.1: %v", err)
	}

	// Relay clients are not limited.
	writeEtc(t, ts.root, "relay-clients", "127.0.0.1\n")
	for i := 0; i < 3; i++ {
		ts.dial().cmd("QUIT", 221)
	}
	// Nor is anyone with the limit off.
	writeEtc(t, ts.root, "relay-clients", "")
	writeEtc(t, ts.root, "rate-connections-per-minute", "0\n")
	ts.dial().cmd("QUIT", 221)
}

// The 421 of an implicit TLS connection comes after the handshake, for
// the client to read.
func TestRateConnectionsImplicitTLS(t *testing.T) {
	ts := startServer(t, submission, implicitTLS)
	writeEtc(t, ts.root, "rate-connections-per-minute", "1\n")
	ts.dialTLS().cmd("QUIT", 221)
	conn := ts.dialTLSRaw()
	if code, text := conn.reply(); code != 421 {
		t.Fatalf("second connection: %d %q, want 421", code, text)
	}
}

// submit sends one message as alice over an authenticated submission
// session and returns the replies to MAIL and to the end of the data.
func submitter(ts *testServer) *client {
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.authPlain("alice@example.org", alicePassword, 235)
	return c
}

func TestRateMessages(t *testing.T) {
	ts := startServer(t, submission)
	writeEtc(t, ts.root, "rate-messages-per-hour", "2\n")
	c := submitter(ts)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if code, text := c.message("Subject: one\r\n\r\nbody\r\n"); code != 250 {
		t.Fatalf("first message: %d %q", code, text)
	}

	// Two sessions pass MAIL with one message left; the second to end
	// its data is refused then.
	a, b := submitter(ts), submitter(ts)
	for _, s := range []*client{a, b} {
		s.cmd("MAIL FROM:<alice@example.org>", 250)
		s.cmd("RCPT TO:<bob@example.org>", 250)
	}
	if code, text := a.message("Subject: two\r\n\r\nbody\r\n"); code != 250 {
		t.Fatalf("second message: %d %q", code, text)
	}
	code, text := b.message("Subject: three\r\n\r\nbody\r\n")
	if code != 451 || !strings.HasPrefix(text, "4.7.1 Too many messages from alice@example.org, try again in ") {
		t.Fatalf("third message at the end of its data: %d %q, want 451 4.7.1", code, text)
	}
	// From now on MAIL says so at once, to every session of the user.
	text = c.cmd("MAIL FROM:<alice@example.org>", 451)
	if !strings.HasPrefix(text, "4.7.1 Too many messages from alice@example.org, try again in 30 minutes") {
		t.Errorf("MAIL over the limit: %q", text)
	}
	// Another user has a count of their own.
	d := ts.dial()
	d.cmd("EHLO client.test", 250)
	d.startTLS()
	d.cmd("EHLO client.test", 250)
	d.authPlain("bob@example.org", bobPassword, 235)
	d.cmd("MAIL FROM:<bob@example.org>", 250)
	if envs, _ := ts.queued(); len(envs) != 2 {
		t.Errorf("%d messages stored, want 2", len(envs))
	}
	ts.waitLog("reason=rate-messages limit=2/hour")
}

// Clients that did not authenticate have no message limit, and a bad
// control file is logged and means the default.
func TestRateMessagesOnlyUsers(t *testing.T) {
	ts := startServer(t)
	writeEtc(t, ts.root, "rate-messages-per-hour", "1\n")
	writeEtc(t, ts.root, "rate-connections-per-minute", "many\n")
	for i := 0; i < 2; i++ {
		c := ts.dial()
		c.mx("someone@remote.test", "alice@example.org")
		if code, text := c.message("Subject: x\r\n\r\nbody\r\n"); code != 250 {
			t.Fatalf("message %d: %d %q", i, code, text)
		}
		c.cmd("QUIT", 221)
	}
	ts.waitLog(`is not a whole number" using=0`)
}

func TestRetryText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{20 * time.Second, "20 seconds"},
		{1500 * time.Millisecond, "2 seconds"},
		{119 * time.Second, "119 seconds"},
		{30 * time.Minute, "30 minutes"},
		{30*time.Minute + time.Second, "31 minutes"},
	}
	for _, tt := range tests {
		if got := retryText(tt.d); got != tt.want {
			t.Errorf("retryText(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// dialRaw connects to ts without reading the greeting.
func (ts *testServer) dialRaw() *client {
	ts.t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &client{t: ts.t, conn: c, r: bufio.NewReader(c)}
}

// dialTLSRaw connects with implicit TLS without reading the greeting.
func (ts *testServer) dialTLSRaw() *client {
	ts.t.Helper()
	_, pool := testTLS(ts.t)
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &client{t: ts.t, conn: c, r: bufio.NewReader(c)}
}
