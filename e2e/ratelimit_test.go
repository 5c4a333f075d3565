package e2e

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The rate limit tests: the counters live in ROOT/spool/ratelimit/, so
// they hold across the processes of inetd-style serving, one smtpd per
// connection.

// One smtpd per connection (tcpserver): the third connection within a
// minute from 127.0.0.1 gets 421 4.7.0 instead of the greeting.
func TestRateLimitConnectionsAcrossProcesses(t *testing.T) {
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("tcpserver not installed (apt-get install ucspi-tcp)")
	}
	root, _ := smtpRoot(t)
	smtpWriteEtc(t, root, "rate-connections-per-minute", "2\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	host, port, _ := net.SplitHostPort(addr)
	l.Close()
	cmd := exec.Command(tcpserver, "-v", "-R", "-H", "-l", "0", host, port,
		Bin(t, "smtpd"), "--root", root, "--hostname", "mx.test")
	srv := runDaemon(t, cmd, func(line string) string {
		if strings.HasPrefix(line, "tcpserver: status: 0/") {
			return addr
		}
		return ""
	})
	for range 2 {
		c := smtpDial(t, srv.addr)
		c.cmd("QUIT", 221)
	}
	c, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := &smtpConn{t: t, c: c, r: bufio.NewReader(c)}
	code, text := s.reply()
	if code != 421 || !strings.HasPrefix(text, "4.7.0 mx.test Too many connections from 127.0.0.1, try again in ") {
		t.Fatalf("third connection: %d %q, want 421 4.7.0", code, text)
	}
	srv.waitContains(t, "reason=rate-connections limit=2/minute")
	if _, err := os.Stat(filepath.Join(root, "spool", "ratelimit", "connections", "127.0.0.1")); err != nil {
		t.Errorf("no counter on disk: %v", err)
	}
}

// An authenticated user over the limit of etc/rate-messages-per-hour gets
// 451 4.7.1 at MAIL.
func TestRateLimitMessages(t *testing.T) {
	root, pool := smtpRoot(t)
	smtpWriteEtc(t, root, "rate-messages-per-hour", "1\n")
	srv := startSMTPd(t, root, "--submission")
	send := func() error {
		c, err := smtp.DialStartTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
			t.Fatal(err)
		}
		return smtpSend(c, "alice@example.org", []string{"bob@example.org"}, smtpMessage)
	}
	if err := send(); err != nil {
		t.Fatalf("first message: %v", err)
	}
	err := send()
	var se *smtp.SMTPError
	if smtpCode(err) != 451 || !strings.Contains(err.Error(), "Too many messages from alice@example.org, try again in 60 minutes") {
		t.Fatalf("second message in the hour: %v, want 451 4.7.1", err)
	} else if errors.As(err, &se) && se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) {
		t.Errorf("enhanced code %v, want 4.7.1", se.EnhancedCode)
	}
	if n := len(smtpSpool(t, root)); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
	srv.waitContains(t, "reason=rate-messages limit=1/hour")
}
