package imapd

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawConn is a connection from the loopback address ip (any of
// 127.0.0.0/8), so that one test can be several clients, read line by line.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialFrom(t *testing.T, ip, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawConn) expectPrefix(prefix string) {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("got %q, %v, want a line starting %q", l, err, prefix)
	}
}

func (c *rawConn) expectClosed() {
	c.t.Helper()
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) > 0 {
		c.t.Fatalf("got %q, %v, want the connection closed", rest, err)
	}
}

func (c *rawConn) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

func TestSessionLimits(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.MaxSessions = 2; s.MaxSessionsPerClient = 1 })
	first := dialFrom(t, "127.0.0.1", f.addr)
	first.expectPrefix("* OK ")
	// A second from the same client is over the per-client limit, a
	// second client is not, and a third one is over the total.
	sameClient := dialFrom(t, "127.0.0.1", f.addr)
	sameClient.expectPrefix("* BYE too many connections\r\n")
	sameClient.expectClosed()
	second := dialFrom(t, "127.0.0.2", f.addr)
	second.expectPrefix("* OK ")
	third := dialFrom(t, "127.0.0.3", f.addr)
	third.expectPrefix("* BYE too many connections\r\n")
	third.expectClosed()
	waitLog(t, f, "reason=too-many-sessions-from-client limit=1")
	waitLog(t, f, "refused client=127.0.0.3:")
	waitLog(t, f, "reason=too-many-sessions limit=2")

	// Once a session ends its place is free for a newcomer, and the
	// sessions still open were not disturbed.
	first.send("a LOGOUT")
	first.expectPrefix("* BYE ")
	first.expectPrefix("a OK ")
	first.expectClosed()
	waitLog(t, f, "session client=127.0.0.1:")
	again := dialFrom(t, "127.0.0.3", f.addr)
	again.expectPrefix("* OK ")
	second.send("b NOOP")
	second.expectPrefix("b OK ")
}

// Zero limits mean the defaults, not "no sessions".
func TestSessionLimitsDefault(t *testing.T) {
	f := newFixture(t)
	f.login()
}
