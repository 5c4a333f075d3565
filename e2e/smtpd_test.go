package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/selfsigned"
	"github.com/postkit/postkit/spool"
)

// smtpMessage is the test message, with CRLF line endings.
const smtpMessage = "From: someone@remote.test\r\nTo: alice@example.org\r\nSubject: e2e\r\n\r\nhello\r\n"

// smtpRoot makes a root with alice and bob at example.org (passwords
// "alice-pw" and "bob-pw", through mkuser), an alias, and a certificate
// for localhost and 127.0.0.1. It returns the root and a pool trusting the
// certificate.
func smtpRoot(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	root := t.TempDir()
	for _, u := range [][2]string{{"alice@example.org", "alice-pw"}, {"bob@example.org", "bob-pw"}} {
		cmd := exec.Command(Bin(t, "mkuser"), "--root", root, "add", u[0])
		cmd.Stdin = strings.NewReader(u[1] + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkuser add %s: %v\n%s", u[0], err, out)
		}
	}
	smtpWriteEtc(t, root, "aliases", "sales@example.org: alice@example.org, bob@example.org\n")
	// The MX checks (SPF, DKIM, DMARC) ask an empty DNS server on loopback,
	// so no test depends on the machine's resolver or the network.
	smtpWriteEtc(t, root, "dns", dnstest.Start(t).Addr+"\n")
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	smtpWriteEtc(t, root, "tls/cert.pem", string(certPEM))
	smtpWriteEtc(t, root, "tls/key.pem", string(keyPEM))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return root, pool
}

func smtpWriteEtc(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, "etc", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSMTPd runs smtpd on root with --listen 127.0.0.1:0 and the args, and
// returns once it logged its address.
func startSMTPd(t *testing.T, root string, args ...string) *daemon {
	t.Helper()
	args = append([]string{"--root", root, "--listen", "127.0.0.1:0", "--hostname", "mx.test", "--auth-failure-delay", "1ms"}, args...)
	return runDaemon(t, exec.Command(Bin(t, "smtpd"), args...), listenAddr)
}

// smtpSpool lists the spool's entries.
func smtpSpool(t *testing.T, root string) []*spool.Envelope {
	t.Helper()
	sp, err := spool.Open(filepath.Join(root, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	envs, err := sp.List()
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func smtpSpoolMessage(t *testing.T, root, id string) string {
	t.Helper()
	sp, err := spool.Open(filepath.Join(root, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sp.OpenMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// smtpConn is a raw SMTP dialog, for when every byte on the wire matters.
type smtpConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func smtpDial(t *testing.T, addr string) *smtpConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtpConn{t: t, c: c, r: bufio.NewReader(c)}
	s.expect(220)
	return s
}

func (s *smtpConn) send(data string) {
	s.t.Helper()
	if _, err := io.WriteString(s.c, data); err != nil {
		s.t.Fatal(err)
	}
}

// reply reads one reply: its code and its lines' text.
func (s *smtpConn) reply() (int, string) {
	s.t.Helper()
	var text []string
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading a reply (so far %q): %v", text, err)
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 {
			s.t.Fatalf("reply line %q", l)
		}
		text = append(text, l[4:])
		if l[3] == ' ' {
			code, _ := strconv.Atoi(l[:3])
			return code, strings.Join(text, "\n")
		}
	}
}

func (s *smtpConn) expect(code int) string {
	s.t.Helper()
	got, text := s.reply()
	if got != code {
		s.t.Fatalf("reply %d %q, want %d", got, text, code)
	}
	return text
}

func (s *smtpConn) cmd(line string, code int) string {
	s.t.Helper()
	s.send(line + "\r\n")
	got, text := s.reply()
	if got != code {
		s.t.Fatalf("%.60q: reply %d %q, want %d", line, got, text, code)
	}
	return text
}

// smtpCode returns the reply code carried by an error of go-smtp's client.
func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// smtpSend sends one message with go-smtp's client and returns the error of
// the first step that failed.
func smtpSend(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// swaks runs swaks and returns its exit code and transcript.
func swaks(t *testing.T, args ...string) (int, string) {
	t.Helper()
	path, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (apt-get install swaks)")
	}
	out, err := exec.Command(path, append([]string{"--timeout", "30"}, args...)...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestSMTPdMXAcceptsWithGoSMTPAndSwaks(t *testing.T) {
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root)
	c, err := smtp.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN", "STARTTLS"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not advertise %s", ext)
		}
	}
	if size, ok := c.MaxMessageSize(); !ok || size != 50<<20 {
		t.Errorf("SIZE %d, %v, want 52428800", size, ok)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH advertised without TLS")
	}
	if err := smtpSend(c, "someone@remote.test", []string{"alice@example.org", "sales@example.org"}, smtpMessage); err != nil {
		t.Fatalf("sending: %v", err)
	}
	if err := c.Rcpt("x@example.org", nil); err == nil {
		t.Error("RCPT without MAIL accepted")
	}
	c.Quit()
	envs := smtpSpool(t, root)
	if len(envs) != 1 || len(envs[0].Recipients) != 2 {
		t.Fatalf("spool: %+v", envs)
	}
	msg := smtpSpoolMessage(t, root, envs[0].ID)
	if !strings.HasPrefix(msg, "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (postkit) with ESMTP\r\n") || !strings.HasSuffix(msg, "\r\n"+smtpMessage) {
		t.Errorf("stored message:\n%s", msg)
	}
	line := srv.waitContains(t, "accepted id="+envs[0].ID)
	if !strings.Contains(line, "from=<someone@remote.test>") || !strings.Contains(line, `to="<alice@example.org>,<sales@example.org>"`) && !strings.Contains(line, "to=<alice@example.org>,<sales@example.org>") {
		t.Errorf("accepted log line %q", line)
	}
	if l := srv.waitContains(t, "session conn="); !strings.Contains(l, "result=quit") || !strings.Contains(l, "client=127.0.0.1") {
		t.Errorf("session log line %q", l)
	}

	code, out := swaks(t, "--server", srv.addr, "--from", "bob@remote.test", "--to", "bob@example.org")
	if code != 0 || !regexp.MustCompile(`<- +250 2\.0\.0 OK queued as [0-9A-V]{16}`).MatchString(out) {
		t.Errorf("swaks: exit %d\n%s", code, out)
	}
	code, out = swaks(t, "--server", srv.addr, "--from", "bob@remote.test", "--to", "nobody@example.org")
	if code == 0 || !strings.Contains(out, "<** 550 5.1.1") {
		t.Errorf("swaks to an unknown user: exit %d\n%s", code, out)
	}
	code, out = swaks(t, "--server", srv.addr, "--from", "bob@remote.test", "--to", "someone@remote.test")
	if code == 0 || !strings.Contains(out, "<** 554 5.7.1") {
		t.Errorf("swaks relaying: exit %d\n%s", code, out)
	}
	if n := len(smtpSpool(t, root)); n != 2 {
		t.Errorf("spool has %d entries, want 2", n)
	}
}

// Each relay trick, on the wire, from a client that may not relay: the
// reply is a refusal or the recipient is local, and no remote recipient
// reaches the spool.
func TestSMTPdNoOpenRelay(t *testing.T) {
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root)
	for _, tc := range []struct {
		rcpt, mailParams string
		code             int
	}{
		{"<alice%remote.test@example.org>", "", 550},
		{"<@example.org:alice@remote.test>", "", 554},
		{`<"alice@remote.test"@example.org>`, "", 550},
		{"<alice@remote.test@example.org>", "", 553},
		{"<remote.test!alice@example.org>", "", 550},
		{"<alice@remote.test.>", "", 553},
		{"<alice@example.org.>", "", 553},
		{"<alice@[127.0.0.1]>", "", 554},
		{"<alice@[IPv6:::1]>", "", 554},
		{"<alice@EXAMPLE.org>", "", 250},
		{"<alice@ＥＸＡＭＰＬＥ.org>", " SMTPUTF8", 250},
		{"<alice@exämple.org>", " SMTPUTF8", 554},
		{"<alice@ｅxample.org>", "", 553},
	} {
		c := smtpDial(t, srv.addr)
		c.cmd("EHLO client.test", 250)
		c.cmd("MAIL FROM:<someone@remote.test>"+tc.mailParams, 250)
		c.send("RCPT TO:" + tc.rcpt + "\r\n")
		if code, text := c.reply(); code != tc.code {
			t.Errorf("RCPT TO:%s: %d %q, want %d", tc.rcpt, code, text, tc.code)
		} else if code == 250 {
			c.cmd("DATA", 354)
			c.send(smtpMessage + ".\r\n")
			c.expect(250)
		}
		c.cmd("QUIT", 221)
	}
	envs := smtpSpool(t, root)
	if len(envs) != 2 {
		t.Errorf("spool has %d entries, want 2", len(envs))
	}
	for _, e := range envs {
		for _, r := range e.Recipients {
			if r.Address != "alice@example.org" {
				t.Errorf("spool entry %s has recipient %q", e.ID, r.Address)
			}
		}
	}
}

// Each smuggling sequence, on the wire: the DATA block runs to the real
// CRLF.CRLF, the whole of it is refused, and the "second message" behind
// the sequence is neither answered nor queued.
func TestSMTPdSmuggling(t *testing.T) {
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root)
	for _, seq := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r"} {
		c := smtpDial(t, srv.addr)
		c.cmd("EHLO client.test", 250)
		c.cmd("MAIL FROM:<someone@remote.test>", 250)
		c.cmd("RCPT TO:<alice@example.org>", 250)
		c.cmd("DATA", 354)
		c.send("Subject: first\r\n\r\nhello" + seq + "MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n")
		if code, text := c.reply(); code/100 != 5 {
			t.Errorf("%q: end of data %d %q, want 5xx", seq, code, text)
		}
		c.cmd("NOOP", 250)
		c.cmd("QUIT", 221)
	}
	if envs := smtpSpool(t, root); len(envs) != 0 {
		t.Errorf("spool has %d entries, want none", len(envs))
	}
}

func TestSMTPdSubmission(t *testing.T) {
	root, pool := smtpRoot(t)
	srv := startSMTPd(t, root, "--submission")
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	// No AUTH before TLS: not offered, and refused when tried.
	raw := smtpDial(t, srv.addr)
	if text := raw.cmd("EHLO client.test", 250); strings.Contains(text, "AUTH") {
		t.Errorf("AUTH offered before TLS:\n%s", text)
	}
	raw.cmd("MAIL FROM:<alice@example.org>", 530)
	raw.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00alice-pw")), 538)
	code, out := swaks(t, "--server", srv.addr, "--from", "alice@example.org", "--to", "bob@example.org",
		"--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "alice-pw")
	if code == 0 || strings.Contains(out, "235 ") {
		t.Errorf("swaks AUTH without TLS: exit %d\n%s", code, out)
	}

	// STARTTLS, AUTH, send as oneself to anyone.
	c, err := smtp.DialStartTLS(srv.addr, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(c, "alice@example.org", []string{"bob@example.org"}, smtpMessage); smtpCode(err) != 530 {
		t.Errorf("MAIL before AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); smtpCode(err) != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := smtpSend(c, "bob@example.org", []string{"someone@remote.test"}, smtpMessage); smtpCode(err) != 553 {
		t.Errorf("send as bob: %v, want 553", err)
	}
	c.Reset()
	if err := smtpSend(c, "alice+x@example.org", []string{"someone@remote.test"}, "Subject: no id\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send as alice+x to a remote address: %v", err)
	}
	c.Quit()
	srv.waitContains(t, "reason=sender-not-owned")
	envs := smtpSpool(t, root)
	if len(envs) != 1 || envs[0].AuthUser != "alice@example.org" || envs[0].Recipients[0].Address != "someone@remote.test" {
		t.Fatalf("spool: %+v", envs)
	}
	msg := smtpSpoolMessage(t, root, envs[0].ID)
	for _, want := range []string{"with ESMTPSA (TLS1.3 ", "\r\nMessage-ID: <", "\r\nDate: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("submitted message has no %q:\n%s", want, msg)
		}
	}

	// swaks with STARTTLS and AUTH LOGIN; sending as someone else fails.
	code, out = swaks(t, "--server", srv.addr, "--tls", "--from", "bob@example.org", "--to", "alice@example.org",
		"--auth", "LOGIN", "--auth-user", "bob@example.org", "--auth-password", "bob-pw")
	if code != 0 {
		t.Errorf("swaks AUTH LOGIN over STARTTLS: exit %d\n%s", code, out)
	}
	code, out = swaks(t, "--server", srv.addr, "--tls", "--from", "alice@example.org", "--to", "alice@example.org",
		"--auth", "PLAIN", "--auth-user", "bob@example.org", "--auth-password", "bob-pw")
	if code == 0 || !regexp.MustCompile(`<.\* 553 5\.7\.1`).MatchString(out) {
		t.Errorf("swaks sending as another user: exit %d\n%s", code, out)
	}
}

func TestSMTPdAuthFailuresDisconnect(t *testing.T) {
	root, pool := smtpRoot(t)
	srv := startSMTPd(t, root, "--submission")
	c, err := smtp.DialStartTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); smtpCode(err) != 535 {
			t.Fatalf("failure %d: %v, want 535", i+1, err)
		}
	}
	if err := c.Noop(); err == nil {
		t.Error("session still open after three failed AUTH")
	}
	line := srv.waitContains(t, "failures=3")
	if !regexp.MustCompile(`^smtpd: auth-failed client=127\.0\.0\.1 `).MatchString(line) {
		t.Errorf("log line %q does not start with auth-failed client=IP", line)
	}
	srv.waitContains(t, "result=too-many-auth-failures")
}

func TestSMTPdSpoolWriteFailure(t *testing.T) {
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root)
	// The queue directory replaced by a file: every enqueue fails, even
	// for root, as on a broken disk.
	queueDir := filepath.Join(root, "spool", "queue")
	if err := os.MkdirAll(filepath.Dir(queueDir), 0o700); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(queueDir)
	if err := os.WriteFile(queueDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = smtpSend(c, "someone@remote.test", []string{"alice@example.org"}, smtpMessage)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("end of data with a broken spool: %v, want 451 4.3.0", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("session ended after the 451: %v", err)
	}
	srv.waitContains(t, "storing the message")
}

func TestSMTPdLimits(t *testing.T) {
	root, _ := smtpRoot(t)
	smtpWriteEtc(t, root, "size-limit", "4K\n")
	smtpWriteEtc(t, root, "recipient-limit", "2\n")
	srv := startSMTPd(t, root)
	c := smtpDial(t, srv.addr)
	if text := c.cmd("EHLO client.test", 250); !strings.Contains(text, "SIZE 4096") {
		t.Errorf("EHLO reply:\n%s", text)
	}
	c.cmd("MAIL FROM:<someone@remote.test> SIZE=5000", 552)
	c.cmd("MAIL FROM:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if text := c.cmd("RCPT TO:<sales@example.org>", 452); !strings.HasPrefix(text, "4.5.3") {
		t.Errorf("third recipient: %q", text)
	}
	c.cmd("DATA", 354)
	c.send("Subject: big\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n")
	if text := c.expect(552); !strings.HasPrefix(text, "5.3.4") {
		t.Errorf("too big: %q", text)
	}
	// A command line of 513 octets: one 500; its tail is no command.
	c.cmd("NOOP "+strings.Repeat("x", 512-len("NOOP "))+"QUIT", 500)
	c.cmd("NOOP", 250)
	// Unknown and malformed commands: the session goes on, until 10 errors.
	c.cmd("XYZZ", 500)
	c.cmd("MAIL TO:<a@b.c>", 501)
	c.cmd("NOOP", 250)
	for range 4 {
		c.cmd("XYZZ", 500)
	}
	c.expect(421) // the tenth error
	if _, err := c.r.ReadString('\n'); err != io.EOF {
		t.Errorf("connection open after 421: %v", err)
	}
	// A long message line (HTML mail) is kept whole.
	code, out := swaks(t, "--server", srv.addr, "--from", "someone@remote.test", "--to", "alice@example.org",
		"--body", strings.Repeat("<p>long line</p>", 200))
	if code != 0 {
		t.Fatalf("swaks with a 3200-octet line: exit %d\n%s", code, out)
	}
	envs := smtpSpool(t, root)
	if len(envs) != 1 || !strings.Contains(smtpSpoolMessage(t, root, envs[0].ID), strings.Repeat("<p>long line</p>", 200)+"\r\n") {
		t.Errorf("long line not stored whole: %d entries", len(envs))
	}
	code, out = swaks(t, "--server", srv.addr, "--from", "someone@remote.test", "--to", "alice@example.org",
		"--body", strings.Repeat("0123456789\n", 500))
	if code == 0 || !strings.Contains(out, "<** 552 5.3.4") {
		t.Errorf("swaks with a big message: exit %d\n%s", code, out)
	}
}

func TestSMTPdImplicitTLS(t *testing.T) {
	root, pool := smtpRoot(t)
	srv := startSMTPd(t, root, "--submission", "--tls-implicit")
	c, err := smtp.DialTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("REQUIRETLS"); !ok {
		t.Error("REQUIRETLS not advertised over TLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised over TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "bob@example.org", "bob-pw")); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(c, "bob@example.org", []string{"alice@example.org"}, smtpMessage); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	code, out := swaks(t, "--server", srv.addr, "--tls-on-connect", "--from", "alice@example.org", "--to", "bob@example.org",
		"--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "alice-pw")
	if code != 0 {
		t.Errorf("swaks --tls-on-connect: exit %d\n%s", code, out)
	}
	if n := len(smtpSpool(t, root)); n != 2 {
		t.Errorf("spool has %d entries, want 2", n)
	}
	if l := srv.waitContains(t, "session conn="); !strings.Contains(l, "tls=TLS1.3/") {
		t.Errorf("session log line %q", l)
	}
}

// systemd Accept=yes: one smtpd per connection, with implicit TLS.
func TestSMTPdSocketActivationImplicitTLS(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	root, pool := smtpRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(ssa, "--accept", "-l", addr,
		Bin(t, "smtpd"), "--root", root, "--hostname", "mx.test", "--submission", "--tls-implicit")
	srv := runDaemon(t, cmd, func(line string) string {
		if strings.HasPrefix(line, "Listening on "+addr) {
			return addr
		}
		return ""
	})
	for i := range 2 {
		c, err := smtp.DialTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
			t.Fatal(err)
		}
		if err := smtpSend(c, "alice@example.org", []string{"bob@example.org"}, smtpMessage); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		c.Quit()
		c.Close()
	}
	if n := len(smtpSpool(t, root)); n != 2 {
		t.Errorf("spool has %d entries, want 2", n)
	}
	if l := srv.waitContains(t, "session conn="); !strings.Contains(l, "tls=TLS1.3/") || !strings.Contains(l, "user=alice@example.org") {
		t.Errorf("session log line %q", l)
	}
}

// inetd "nowait" style (tcpserver): one smtpd per connection on stdin and
// stdout, with STARTTLS, which hands the session over inside the process.
func TestSMTPdTcpserverSTARTTLS(t *testing.T) {
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("tcpserver not installed (apt-get install ucspi-tcp)")
	}
	root, pool := smtpRoot(t)
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
	for i := range 2 {
		c, err := smtp.DialStartTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := smtpSend(c, "someone@remote.test", []string{"alice@example.org"}, smtpMessage); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		c.Quit()
		c.Close()
	}
	envs := smtpSpool(t, root)
	if len(envs) != 2 {
		t.Fatalf("spool has %d entries, want 2", len(envs))
	}
	if msg := smtpSpoolMessage(t, root, envs[0].ID); !strings.Contains(msg, "with ESMTPS (TLS1.3 ") {
		t.Errorf("stored message:\n%s", msg)
	}
}

// A smtpd killed in the middle of DATA leaves no entry in the spool.
func TestSMTPdKilledMidDataLeavesNothing(t *testing.T) {
	root, _ := smtpRoot(t)
	// A relay client's message streams into the spool as it arrives;
	// others are held while checked (see smtpd_auth_test.go).
	smtpWriteEtc(t, root, "relay-clients", "127.0.0.1\n")
	srv := startSMTPd(t, root)
	c := smtpDial(t, srv.addr)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	c.cmd("DATA", 354)
	c.send("Subject: half\r\n\r\n" + strings.Repeat("some of the message\r\n", 5000))
	// The temporary queue file exists once smtpd has started writing it.
	queueDir := filepath.Join(root, "spool", "queue")
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, _ := os.ReadDir(queueDir)
		if len(names) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("smtpd wrote no message file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	if envs := smtpSpool(t, root); len(envs) != 0 {
		t.Errorf("spool shows %d entries after kill -9 mid-DATA, want none", len(envs))
	}
	// What is left is the temporary file, never an entry.
	names, err := os.ReadDir(queueDir)
	if err != nil || len(names) != 1 || !strings.HasPrefix(names[0].Name(), ".tmp.") {
		t.Errorf("queue/ holds %v, %v; want the one temporary file", names, err)
	}
}

// --user: started as root, smtpd serves as the given user, and the spool
// files belong to it.
func TestSMTPdUserDropsPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	root, _ := smtpRoot(t)
	// nobody must reach the root through the test's temporary directories.
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	srv := startSMTPd(t, root, "--user", "nobody")
	c, err := smtp.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := smtpSend(c, "someone@remote.test", []string{"alice@example.org"}, smtpMessage); err != nil {
		t.Fatal(err)
	}
	envs := smtpSpool(t, root)
	if len(envs) != 1 {
		t.Fatalf("spool has %d entries", len(envs))
	}
	fi, err := os.Stat(filepath.Join(root, "spool", "queue", envs[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != 0o600 {
		t.Errorf("queue file owner %d mode %v, want %d and 0600", st.Uid, fi.Mode().Perm(), uid)
	}
	if ps, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid)); err == nil {
		if !regexp.MustCompile(`(?m)^Uid:\s+` + u.Uid + `\s+` + u.Uid + `\s+` + u.Uid).Match(ps) {
			t.Errorf("smtpd's uids are not all %s:\n%s", u.Uid, ps)
		}
	}
}
