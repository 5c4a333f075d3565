package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/remote/smtptest"
)

// logsParse parses every line of a program's log strictly (maillog.Parse)
// and fails the test for each line that is not one key=value event.
func logsParse(t *testing.T, program string, lines []string) []maillog.Line {
	t.Helper()
	var parsed []maillog.Line
	for _, l := range lines {
		p, err := maillog.Parse(l)
		if err != nil {
			t.Errorf("%s logged a line that does not parse: %v", program, err)
			continue
		}
		if p.Program != program {
			t.Errorf("%s logged %q with the prefix of %s", program, l, p.Program)
		}
		parsed = append(parsed, p)
	}
	return parsed
}

// logsFind returns the lines with event (if not empty) whose fields
// include all of want.
func logsFind(lines []maillog.Line, event string, want map[string]string) []maillog.Line {
	var found []maillog.Line
	for _, l := range lines {
		if event != "" && l.Event != event {
			continue
		}
		ok := true
		for k, v := range want {
			if got, has := l.Get(k); !has || got != v {
				ok = false
				break
			}
		}
		if ok {
			found = append(found, l)
		}
	}
	return found
}

// logsOne is logsFind that wants exactly one line.
func logsOne(t *testing.T, what string, lines []maillog.Line, event string, want map[string]string) maillog.Line {
	t.Helper()
	found := logsFind(lines, event, want)
	if len(found) != 1 {
		t.Fatalf("%s: %d lines with event %q and %v, want 1", what, len(found), event, want)
	}
	return found[0]
}

// logsStop ends a daemon with SIGTERM and waits until its log is complete.
func logsStop(t *testing.T, cmd *exec.Cmd, done <-chan struct{}) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SIGTERM", cmd.Path)
	}
}

// One message accepted by smtpd (MX) and one submitted (after a failed
// AUTH) that bounces: every line smtpd and sendq log parses as key=value,
// and the queue ID smtpd logs at "accepted" is the id of sendq's delivered
// or bounced line; the bounce's own entry is logged with the original ID
// and then delivered under its new ID.
func TestLogsJoinMessagesAcrossSMTPdAndSendq(t *testing.T) {
	far := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		if to == "doomed@far.example" {
			return smtptest.Refuse(550, smtp.EnhancedCode{5, 1, 1}, "no such user here")
		}
		return nil
	}})
	root, pool := smtpRoot(t)
	smtpWriteEtc(t, root, "hostname", "mx.test\n")
	smtpWriteEtc(t, root, "routes", "far.example "+far.Addr+"\n")
	mx := startSMTPd(t, root)
	sub := startSMTPd(t, root, "--submission")

	c, err := smtp.Dial(mx.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(c, "someone@remote.test", []string{"alice@example.org"}, smtpMessage); err != nil {
		t.Fatalf("MX: %v", err)
	}
	c.Quit()

	c, err = smtp.DialStartTLS(sub.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); smtpCode(err) != 535 {
		t.Fatalf("wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
		t.Fatal(err)
	}
	doomed := "From: alice@example.org\r\nTo: doomed@far.example\r\nSubject: doomed\r\n\r\nhello\r\n"
	if err := smtpSend(c, "alice@example.org", []string{"doomed@far.example"}, doomed); err != nil {
		t.Fatalf("submission: %v", err)
	}
	c.Quit()

	r := startSendq(t, root)
	// The MX message, then the bounce of the submitted one.
	sqWait(t, "two deliveries to alice", 20*time.Second, func() bool { return r.count(`status=delivered `) == 2 })
	sqWait(t, "the spool to empty", 20*time.Second, func() bool { return sqNoEntries(root) })
	r.stop(t)
	mx.waitContains(t, "session conn=")
	sub.waitContains(t, "session conn=")
	logsStop(t, mx.cmd, mx.done)
	logsStop(t, sub.cmd, sub.done)

	mxLog := logsParse(t, "smtpd", mx.lines())
	subLog := logsParse(t, "smtpd", sub.lines())
	sqLog := logsParse(t, "sendq", r.lines())
	if t.Failed() {
		t.FailNow()
	}

	// The MX message: accepted, then delivered under the same ID.
	acc := logsOne(t, "MX accepted", mxLog, "accepted", map[string]string{
		"client": "127.0.0.1", "user": "-", "from": "<someone@remote.test>", "to": "<alice@example.org>"})
	id := acc.Value("id")
	if size, err := strconv.Atoi(acc.Value("size")); err != nil || size < len(smtpMessage) {
		t.Errorf("accepted size=%q, want at least the message's %d bytes", acc.Value("size"), len(smtpMessage))
	}
	dl := logsOne(t, "MX message delivered", sqLog, "", map[string]string{"id": id, "rcpt": "alice@example.org", "status": "delivered"})
	if dl.Value("relay") != "local" || dl.Value("delay") == "" || !strings.HasPrefix(dl.Value("reply"), "delivered to ") {
		t.Errorf("delivered line %+v, want relay=local, a delay and the file", dl)
	}
	logsOne(t, "MX session", mxLog, "session", map[string]string{
		"client": "127.0.0.1", "tls": "none", "user": "-", "messages": "1", "result": "quit"})

	// The submitted message: a failed AUTH, accepted, bounced; the
	// bounce enqueued with a reference to it, and delivered.
	logsOne(t, "failed AUTH", subLog, "auth-failed", map[string]string{
		"client": "127.0.0.1", "mech": "PLAIN", "user": "alice@example.org", "failures": "1"})
	sess := logsOne(t, "submission session", subLog, "session", map[string]string{
		"client": "127.0.0.1", "user": "alice@example.org", "messages": "1", "result": "quit"})
	if !strings.HasPrefix(sess.Value("tls"), "TLS1.3/") {
		t.Errorf("submission session tls=%q, want TLS1.3/...", sess.Value("tls"))
	}
	acc = logsOne(t, "submission accepted", subLog, "accepted", map[string]string{
		"user": "alice@example.org", "from": "<alice@example.org>", "to": "<doomed@far.example>"})
	orig := acc.Value("id")
	b := logsOne(t, "bounced", sqLog, "", map[string]string{"id": orig, "rcpt": "doomed@far.example", "status": "bounced"})
	if b.Value("code") != "5.1.1" || !strings.Contains(b.Value("reply"), "no such user here") || !strings.HasPrefix(b.Value("relay"), "127.0.0.1[127.0.0.1]:") {
		t.Errorf("bounced line %+v, want code 5.1.1, the remote reply and the relay", b)
	}
	dsn := logsOne(t, "the bounce's enqueue", sqLog, "", map[string]string{"id": orig, "event": "dsn", "action": "failed", "to": "<alice@example.org>"})
	bounceID := dsn.Value("dsn_id")
	if bounceID == "" || bounceID == orig {
		t.Fatalf("dsn line %+v, want dsn_id, the bounce's own queue ID", dsn)
	}
	logsOne(t, "the bounce delivered", sqLog, "", map[string]string{"id": bounceID, "rcpt": "alice@example.org", "status": "delivered", "relay": "local"})
	for _, e := range []string{orig, id, bounceID} {
		logsOne(t, "removal of "+e, sqLog, "", map[string]string{"id": e, "event": "removed"})
	}
	if n := len(sqMailbox(t, root, "alice@example.org")); n != 2 {
		t.Errorf("alice has %d messages, want the MX message and the bounce", n)
	}
}

// pop3d and imapd log a session line and one auth-failed line per failed
// login, all of them key=value; with smtpd's, the auth-failed lines are
// what the fail2ban filter of postkit(7) matches, and nothing else is.
func TestLogsLoginsAndFail2ban(t *testing.T) {
	root, pool := smtpRoot(t)
	smtpWriteEtc(t, root, "hostname", "mx.test\n")
	pop := startPOP3d(t, root, "--allow-plaintext-loopback")
	imap := startIMAPd(t, root, "--allow-plaintext-loopback")
	sub := startSMTPd(t, root, "--submission")

	dialog := func(addr string, lines ...string) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		rd := bufio.NewReader(conn)
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(lines); i += 2 {
			fmt.Fprintf(conn, "%s\r\n", lines[i])
			for {
				got, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("%s: after %q: %v", addr, lines[i], err)
				}
				if strings.HasPrefix(got, lines[i+1]) {
					break
				}
				if !strings.HasPrefix(got, "* ") && !strings.HasPrefix(got, "+OK") {
					t.Fatalf("%s: %q answered %q, want %q", addr, lines[i], got, lines[i+1])
				}
			}
		}
	}
	dialog(pop.addr, "USER alice@example.org", "+OK", "PASS wrong", "-ERR [AUTH]",
		"USER alice@example.org", "+OK", "PASS alice-pw", "+OK", "QUIT", "+OK")
	dialog(imap.addr, `a LOGIN "bob@example.org" wrong`, "a NO", "b LOGIN alice@example.org alice-pw", "b OK", "c LOGOUT", "c OK")
	// AUTH needs TLS in smtpd.
	sc, err := smtp.DialStartTLS(sub.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Auth(sasl.NewPlainClient("", "carol@example.org", "guess")); smtpCode(err) != 535 {
		t.Fatalf("wrong password: %v, want 535", err)
	}
	sc.Quit()
	pop.waitLog(t, func(l string) string {
		if strings.Contains(l, "session client=") {
			return l
		}
		return ""
	})
	imap.waitContains(t, "session client=")
	sub.waitContains(t, "auth-failed ")
	logsStop(t, pop.cmd, pop.done)
	logsStop(t, imap.cmd, imap.done)
	logsStop(t, sub.cmd, sub.done)

	popLog := logsParse(t, "pop3d", pop.lines())
	imapLog := logsParse(t, "imapd", imap.lines())
	subLog := logsParse(t, "smtpd", sub.lines())
	if t.Failed() {
		t.FailNow()
	}
	logsOne(t, "pop3d failed login", popLog, "auth-failed", map[string]string{"client": "127.0.0.1", "mech": "USER", "user": "alice@example.org", "failures": "1"})
	logsOne(t, "pop3d session", popLog, "session", map[string]string{"user": "alice@example.org", "tls": "false", "result": "quit"})
	logsOne(t, "imapd failed login", imapLog, "auth-failed", map[string]string{"client": "127.0.0.1", "user": "bob@example.org", "failures": "1"})
	logsOne(t, "imapd session", imapLog, "session", map[string]string{"user": "alice@example.org", "tls": "false", "result": "ok"})
	logsOne(t, "smtpd failed login", subLog, "auth-failed", map[string]string{"client": "127.0.0.1", "user": "carol@example.org", "failures": "1"})

	t.Run("fail2ban", func(t *testing.T) {
		regex, err := exec.LookPath("fail2ban-regex")
		if err != nil {
			t.Skip("fail2ban-regex not installed (apt-get install fail2ban)")
		}
		common, err := os.ReadFile("/etc/fail2ban/filter.d/common.conf")
		if err != nil {
			t.Skipf("fail2ban's common.conf: %v", err)
		}
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "common.conf"), string(common))
		filter := filepath.Join(dir, "postkit.conf")
		writeFile(t, filter, logsFail2banFilter(t))
		// As syslog (or fail2ban's journal backend) shows the lines.
		var logText strings.Builder
		failed := 0
		for _, l := range append(append(pop.lines(), imap.lines()...), sub.lines()...) {
			prog, _, _ := strings.Cut(l, ":")
			fmt.Fprintf(&logText, "Nov 22 10:00:00 mx %s[4242]: %s\n", prog, l)
			if strings.Contains(l, ": auth-failed ") {
				failed++
			}
		}
		logFile := filepath.Join(dir, "mail.log")
		writeFile(t, logFile, logText.String())
		out, err := exec.Command(regex, "-o", "ip", logFile, filter).CombinedOutput()
		if err != nil {
			t.Fatalf("fail2ban-regex: %v\n%s", err, out)
		}
		ips := strings.Fields(string(out))
		if len(ips) != failed || failed != 3 {
			t.Errorf("fail2ban-regex found %q in\n%s\nwant 127.0.0.1 for each of the %d auth-failed lines (3)", ips, logText.String(), failed)
		}
		for _, ip := range ips {
			if ip != "127.0.0.1" {
				t.Errorf("fail2ban-regex found host %q, want 127.0.0.1", ip)
			}
		}
	})
}

// logsFail2banFilter is the fail2ban filter in the EXAMPLES of postkit(7):
// the lines between .nf and .fi after the one naming its file.
func logsFail2banFilter(t *testing.T) string {
	t.Helper()
	page := manPageText(t, "postkit.7")
	_, after, ok := strings.Cut(page, "filter.d/postkit.conf")
	if !ok {
		t.Fatal("postkit(7) has no fail2ban filter (filter.d/postkit.conf)")
	}
	m := regexp.MustCompile(`(?s)\n\.nf\n(.*?)\n\.fi\n`).FindStringSubmatch(after)
	if m == nil {
		t.Fatal("postkit(7): no .nf/.fi block after filter.d/postkit.conf")
	}
	return manPlain(m[1]) + "\n"
}

// deliver logs one key=value line per address and outcome: delivered
// (with the user and file), forwarded (with the queue ID that sendq then
// logs as id=) and failed; its own failure is one such line too.
func TestLogsDeliver(t *testing.T) {
	root := testRoot(t, "fwd@example.org: alice@example.org, carol@remote.example\n")
	code, stderr := runDeliver(t, testMessage, "--root", root, "-f", "bob@remote.example", "fwd@example.org", "nobody@example.org")
	if code != 67 {
		t.Fatalf("deliver = %d (%s), want 67 for the unknown address", code, stderr)
	}
	lines := logsParse(t, "deliver", strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"))
	if t.Failed() {
		t.FailNow()
	}
	d := logsOne(t, "delivered", lines, "", map[string]string{"rcpt": "fwd@example.org", "user": "alice@example.org", "status": "delivered"})
	if !strings.Contains(d.Value("file"), filepath.Join("mail", "example.org", "alice", "new")+"/") || d.Value("size") == "" {
		t.Errorf("delivered line %+v, want the Maildir file and size", d)
	}
	f := logsOne(t, "forwarded", lines, "", map[string]string{"rcpt": "fwd@example.org", "to": "carol@remote.example", "status": "forwarded"})
	ids, err := sqSpool(root).IDs()
	if err != nil || len(ids) != 1 || f.Value("queue") != ids[0] {
		t.Errorf("forwarded line queue=%q, spool %v (%v); want the one entry's ID", f.Value("queue"), ids, err)
	}
	logsOne(t, "failed", lines, "", map[string]string{"rcpt": "nobody@example.org", "status": "failed", "code": "67"})

	code, stderr = runDeliver(t, testMessage, "--root", root)
	lines = logsParse(t, "deliver", strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"))
	if code != 64 || len(lines) != 1 || lines[0].Value("status") != "failed" || lines[0].Value("code") != "64" || lines[0].Value("error") == "" {
		t.Errorf("deliver without an address = %d, %q; want 64 and one status=failed code=64 line", code, stderr)
	}
}
