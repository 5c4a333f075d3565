package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestSMTPdBarePostmaster checks RFC 5321 §4.1.1.3 with the built smtpd:
// "RCPT TO:<Postmaster>" (any case, with parameters) is accepted and, as
// the host name mx.test is no local domain, means postmaster@example.org,
// the first local domain, whose alias delivers to alice. The same address
// with its domain works as before, and a longer local part is still a
// syntax error.
func TestSMTPdBarePostmaster(t *testing.T) {
	root, _ := smtpRoot(t)
	smtpWriteEtc(t, root, "aliases", "sales@example.org: alice@example.org, bob@example.org\npostmaster@example.org: alice@example.org\n")
	srv := startSMTPd(t, root)
	c := smtpDial(t, srv.addr)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<postmasterx>", 501)
	c.cmd("RCPT TO:<POSTMASTER> NOTIFY=FAILURE", 250)
	c.cmd("DATA", 354)
	c.send("Subject: bare\r\n\r\nto the postmaster\r\n.\r\n")
	c.expect(250)
	c.cmd("MAIL FROM:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<Postmaster@example.org>", 250)
	c.cmd("DATA", 354)
	c.send("Subject: with domain\r\n\r\nto the postmaster\r\n.\r\n")
	c.expect(250)
	c.cmd("QUIT", 221)

	var rcpts []string
	for _, e := range smtpSpool(t, root) {
		for _, r := range e.Recipients {
			rcpts = append(rcpts, r.Address+" "+r.Notify)
		}
	}
	if got := strings.Join(rcpts, ", "); !strings.Contains(got, "postmaster@example.org FAILURE") || !strings.Contains(got, "Postmaster@example.org ") {
		t.Fatalf("spool recipients %q, want postmaster@example.org with NOTIFY=FAILURE and Postmaster@example.org", got)
	}

	startSendq(t, root)
	sqWait(t, "the deliveries", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	got := sqMailbox(t, root, "alice@example.org")
	joined := strings.Join(got, "\n")
	if len(got) != 2 || !strings.Contains(joined, "Subject: bare\n") || !strings.Contains(joined, "Subject: with domain\n") {
		t.Errorf("alice's mailbox = %q, want both messages to the postmaster", got)
	}
	if n := len(sqMailbox(t, root, "bob@example.org")); n != 0 {
		t.Errorf("bob's mailbox has %d messages, want none", n)
	}
}
