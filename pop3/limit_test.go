package pop3

import (
	"net"
	"strings"
	"testing"
	"time"
)

// dialFrom connects from the loopback address ip (any of 127.0.0.0/8), so
// that one test can be several clients.
func dialFrom(t *testing.T, ip, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return newClient(t, conn)
}

func TestSessionLimits(t *testing.T) {
	f := startServer(t, func(s *Server) { s.MaxSessions = 2; s.MaxSessionsPerClient = 1 })
	first := dialFrom(t, "127.0.0.1", f.addr)
	first.expectPrefix("+OK ")
	// A second from the same client is over the per-client limit, a
	// second client is not, and a third one is over the total.
	sameClient := dialFrom(t, "127.0.0.1", f.addr)
	sameClient.expect("-ERR [SYS/TEMP] too many connections")
	sameClient.expectClosed()
	second := dialFrom(t, "127.0.0.2", f.addr)
	second.expectPrefix("+OK ")
	third := dialFrom(t, "127.0.0.3", f.addr)
	third.expect("-ERR [SYS/TEMP] too many connections")
	third.expectClosed()
	for _, want := range []string{
		"refused client=127.0.0.1:", "reason=too-many-sessions-from-client limit=1",
		"refused client=127.0.0.3:", "reason=too-many-sessions limit=2",
	} {
		if !strings.Contains(f.log.String(), want) {
			t.Errorf("log %q lacks %q", f.log.String(), want)
		}
	}

	// The sessions still open were not disturbed, and once one ends its
	// place is free for a newcomer.
	first.send("QUIT")
	first.expectPrefix("+OK ")
	first.expectClosed()
	f.waitSessionsExcept(t, 1)
	again := dialFrom(t, "127.0.0.3", f.addr)
	again.expectPrefix("+OK ")
	second.send("QUIT")
	second.expectPrefix("+OK ")
}

// Zero limits mean the defaults, not "no sessions".
func TestSessionLimitsDefault(t *testing.T) {
	f := startServer(t, nil)
	c := dial(t, f.addr)
	c.login()
}
