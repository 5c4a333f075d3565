package e2e

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// limitClient is a connection from one loopback address (any of
// 127.0.0.0/8), so that one test can be several clients.
type limitClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialLimitClient(t *testing.T, ip, addr string) *limitClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	return &limitClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *limitClient) expectPrefix(prefix string) {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, %v, want a line starting %q", l, err, prefix)
	}
}

func (c *limitClient) expectClosed() {
	c.t.Helper()
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) > 0 {
		c.t.Fatalf("got %q, %v, want the connection closed", rest, err)
	}
}

func (c *limitClient) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// checkSessionLimits drives a daemon started with --max-sessions 2
// --max-sessions-per-client 1: a second connection from one client and a
// third client are refused with refusal and closed, and once the first
// session ends (quit, answered with the quitReply lines) a newcomer is
// served.
func checkSessionLimits(t *testing.T, d *daemon, greeting, refusal, quit string, quitReply ...string) {
	t.Helper()
	first := dialLimitClient(t, "127.0.0.1", d.addr)
	first.expectPrefix(greeting)
	sameClient := dialLimitClient(t, "127.0.0.1", d.addr)
	sameClient.expectPrefix(refusal + "\r\n")
	sameClient.expectClosed()
	second := dialLimitClient(t, "127.0.0.2", d.addr)
	second.expectPrefix(greeting)
	third := dialLimitClient(t, "127.0.0.3", d.addr)
	third.expectPrefix(refusal + "\r\n")
	third.expectClosed()
	d.waitContains(t, "refused client=127.0.0.1:")
	d.waitContains(t, "reason=too-many-sessions-from-client limit=1")
	d.waitContains(t, "reason=too-many-sessions limit=2")

	first.send(quit)
	for _, r := range quitReply {
		first.expectPrefix(r)
	}
	first.expectClosed()
	d.waitContains(t, "session client=127.0.0.1:")
	again := dialLimitClient(t, "127.0.0.3", d.addr)
	again.expectPrefix(greeting)
}

func TestPOP3dSessionLimits(t *testing.T) {
	d := startPOP3d(t, t.TempDir(), "--max-sessions", "2", "--max-sessions-per-client", "1")
	checkSessionLimits(t, d, "+OK ", "-ERR [SYS/TEMP] too many connections", "QUIT", "+OK ")
}

func TestIMAPdSessionLimits(t *testing.T) {
	d := startIMAPd(t, t.TempDir(), "--max-sessions", "2", "--max-sessions-per-client", "1")
	checkSessionLimits(t, d, "* OK ", "* BYE too many connections", "a LOGOUT", "* BYE ", "a OK ")
}
