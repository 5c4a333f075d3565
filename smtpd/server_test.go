package smtpd

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const testMessage = "From: someone@remote.test\r\nSubject: hi\r\n\r\nhello\r\n"

// queueIDReply matches the 250 to the end of the data.
var queueIDReply = regexp.MustCompile(`^2\.0\.0 OK queued as ([0-9A-V]{16})$`)

func TestEHLOAdvertises(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	plain := c.cmd("EHLO client.test", 250)
	for _, kw := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN", "SIZE 52428800", "STARTTLS"} {
		if !hasLine(plain, kw) {
			t.Errorf("EHLO reply without TLS has no %q:\n%s", kw, plain)
		}
	}
	for _, kw := range []string{"AUTH", "REQUIRETLS"} {
		if hasPrefixLine(plain, kw) {
			t.Errorf("EHLO reply without TLS offers %s:\n%s", kw, plain)
		}
	}
	c.startTLS()
	secure := c.cmd("EHLO client.test", 250)
	for _, kw := range []string{"AUTH PLAIN LOGIN", "REQUIRETLS", "SIZE 52428800", "DSN"} {
		if !hasLine(secure, kw) {
			t.Errorf("EHLO reply over TLS has no %q:\n%s", kw, secure)
		}
	}
	if hasLine(secure, "STARTTLS") {
		t.Errorf("EHLO reply over TLS still offers STARTTLS:\n%s", secure)
	}
	// HELO gets a one-line reply, untouched.
	c.cmd("HELO client.test", 250)
}

func TestEHLOWithoutCertificate(t *testing.T) {
	ts := startServer(t, withConfig(func(c *Config) { c.TLS = nil }))
	c := ts.dial()
	text := c.cmd("EHLO client.test", 250)
	if hasLine(text, "STARTTLS") || hasPrefixLine(text, "AUTH") {
		t.Errorf("EHLO reply without a certificate:\n%s", text)
	}
	c.cmd("STARTTLS", 502)
	c.cmd("AUTH PLAIN "+plainResponse("alice@example.org", alicePassword), 538)
}

func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func hasPrefixLine(text, prefix string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestMXAcceptsLocalMail(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<someone@remote.test> BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef", 250)
	c.cmd("RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+2Bx@example.org", 250)
	code, text := c.message(testMessage)
	m := queueIDReply.FindStringSubmatch(text)
	if code != 250 || m == nil {
		t.Fatalf("end of data: %d %q, want 250 with the queue ID", code, text)
	}
	envs, msgs := ts.queued()
	if len(envs) != 1 || envs[0].ID != m[1] {
		t.Fatalf("spool holds %d entries, want 1 with ID %s", len(envs), m[1])
	}
	e := envs[0]
	if e.From != "someone@remote.test" || len(e.Recipients) != 1 || e.Recipients[0].Address != "alice@example.org" {
		t.Errorf("envelope from %q to %+v", e.From, e.Recipients)
	}
	if e.Body != "8BITMIME" || e.Ret != "HDRS" || e.EnvID != "abc+def" || e.ClientAddr != "127.0.0.1" || e.Helo != "client.test" {
		t.Errorf("envelope body %q ret %q envid %q client %q helo %q", e.Body, e.Ret, e.EnvID, e.ClientAddr, e.Helo)
	}
	if r := e.Recipients[0]; r.Notify != "SUCCESS,FAILURE" || r.ORCPT != "RFC822;alice+x@example.org" {
		t.Errorf("recipient notify %q orcpt %q", r.Notify, r.ORCPT)
	}
	received := regexp.MustCompile(`^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n` +
		`\tby mx\.example\.org \(postkit\) with ESMTP\r\n` +
		`\tid [A-Z2-7]{12}\.1\r\n` +
		`\tfor <alice@example\.org>; \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n`)
	if !received.MatchString(msgs[0]) || !strings.HasSuffix(msgs[0], "\r\n"+testMessage) {
		t.Errorf("stored message:\n%q", msgs[0])
	}
	if strings.Contains(msgs[0], "Message-ID") || strings.Contains(msgs[0], "Date:") {
		t.Errorf("MX mode added Message-ID or Date:\n%s", msgs[0])
	}
	line := ts.waitLog("accepted id=" + m[1])
	for _, want := range []string{"from=<someone@remote.test>", "to=<alice@example.org>", fmt.Sprintf("size=%d", len(testMessage)), "client=127.0.0.1"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q has no %q", line, want)
		}
	}
	c.cmd("QUIT", 221)
	session := ts.waitLog("session conn=")
	for _, want := range []string{"client=127.0.0.1", "tls=none", "user=-", "messages=1", "result=quit"} {
		if !strings.Contains(session, want) {
			t.Errorf("session log line %q has no %q", session, want)
		}
	}
}

func TestMXRecipients(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<>", 250)
	for _, tc := range []struct {
		rcpt string
		code int
	}{
		{"alice@example.org", 250},
		{"Alice@EXAMPLE.ORG", 250},
		{"alice+lists@example.org", 250},
		{"sales@example.org", 250},             // alias
		{"friend@example.org", 250},            // alias to a remote address
		{"anything@catchall.test", 250},        // catch-all
		{"nobody@example.org", 550},            // unknown user
		{"someone@remote.test", 554},           // relaying
		{"alice@example.org.", 553},            // trailing dot
		{"bad address@example.org", 501},       // go-smtp's syntax check
		{"alice@[127.0.0.1]", 554},             // address literal: never local
		{"alice%remote.test@example.org", 550}, // '%' is no routing
	} {
		c.send("RCPT TO:<" + tc.rcpt + ">\r\n")
		if code, text := c.reply(); code != tc.code {
			t.Errorf("RCPT TO:<%s>: %d %q, want %d", tc.rcpt, code, text, tc.code)
		}
	}
}

func TestMXUnknownUserText(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.mx("a@remote.test")
	if text := c.cmd("RCPT TO:<nobody@example.org>", 550); !strings.HasPrefix(text, "5.1.1 ") {
		t.Errorf("unknown user: %q, want 550 5.1.1", text)
	}
	if text := c.cmd("RCPT TO:<x@remote.test>", 554); !strings.HasPrefix(text, "5.7.1 ") {
		t.Errorf("relay: %q, want 554 5.7.1", text)
	}
}

func TestUsersReloadedEachTransaction(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.mx("a@remote.test")
	c.cmd("RCPT TO:<carol@example.org>", 550)
	c.cmd("RSET", 250)
	users, err := os.ReadFile(ts.root.Etc("users"))
	if err != nil {
		t.Fatal(err)
	}
	writeEtc(t, ts.root, "users", string(users)+"carol@example.org:{BLF-CRYPT}$2y$04$x::::::\n")
	c.cmd("MAIL FROM:<a@remote.test>", 250)
	c.cmd("RCPT TO:<carol@example.org>", 250)
}

func TestRelayClients(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		code       int
	}{
		{"none", "", 554},
		{"other address", "192.0.2.1\n", 554},
		{"address", "# local apps\n127.0.0.1\n", 250},
		{"prefix", "127.0.0.0/8\n", 250},
		{"mapped form", "::ffff:127.0.0.1\n", 250},
		{"bad line skipped", "not-an-ip\n127.0.0.1\n", 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			writeEtc(t, ts.root, "relay-clients", tc.file)
			c := ts.dial()
			c.mx("app@example.org")
			c.cmd("RCPT TO:<someone@remote.test>", tc.code)
		})
	}
}

func TestRelayAfterAuthInMXMode(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.authPlain("alice@example.org", alicePassword, 235)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<someone@remote.test>", 250)
	if code, text := c.message(testMessage); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	_, msgs := ts.queued()
	if !strings.Contains(msgs[0], "with ESMTPSA (TLS") {
		t.Errorf("Received header does not say ESMTPSA with TLS:\n%s", msgs[0])
	}
}

// Every trick that makes some servers relay: each is resolved as a local
// address or refused, and the spool never gets a remote recipient.
func TestNoOpenRelay(t *testing.T) {
	ts := startServer(t)
	accepted := 0
	for _, tc := range []struct {
		rcpt, params string
		code         int
	}{
		{"<alice%remote.test@example.org>", "", 550},
		{"<@example.org:alice@remote.test>", "", 554},
		{"<@example.org,@other.test:alice@remote.test>", "", 554},
		{`<"alice@remote.test"@example.org>`, "", 550},
		{"<alice@remote.test@example.org>", "", 553},
		{"<remote.test!alice@example.org>", "", 550},
		{"<alice@remote.test.>", "", 553},
		{"<alice@example.org.>", "", 553},
		{"<alice@[127.0.0.1]>", "", 554},
		{"<alice@[IPv6:::1]>", "", 554},
		{"<alice@EXAMPLE.ORG>", "", 250},
		{"<alice@ｅxample.org>", " ", 553},         // non-ASCII without SMTPUTF8
		{"<alice@ｅxample.org>", " SMTPUTF8", 250}, // full-width: example.org once mapped
		{"<alice@exämple.org>", " SMTPUTF8", 554}, // another domain
		{"<alice@xn--exmple-cua.org>", "", 554},   // the same, in A-labels
		{"<\"alice\"@example.org>", "", 250},
	} {
		c := ts.dial()
		c.cmd("EHLO client.test", 250)
		c.cmd("MAIL FROM:<someone@remote.test>"+strings.TrimRight(tc.params, " "), 250)
		c.send("RCPT TO:" + tc.rcpt + "\r\n")
		code, text := c.reply()
		if code != tc.code {
			t.Errorf("RCPT TO:%s: %d %q, want %d", tc.rcpt, code, text, tc.code)
		}
		if code == 250 {
			accepted++
			if code, text := c.message(testMessage); code != 250 {
				t.Errorf("RCPT TO:%s: end of data %d %q", tc.rcpt, code, text)
			}
		}
		c.cmd("QUIT", 221)
	}
	envs, _ := ts.queued()
	for _, e := range envs {
		for _, r := range e.Recipients {
			if r.Address != "alice@example.org" {
				t.Errorf("spool has recipient %q", r.Address)
			}
		}
	}
	if len(envs) != accepted {
		t.Errorf("spool has %d entries, want %d", len(envs), accepted)
	}
}

func TestSubmissionNeedsAuth(t *testing.T) {
	ts := startServer(t, submission)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	if text := c.cmd("MAIL FROM:<alice@example.org>", 530); !strings.HasPrefix(text, "5.7.0 ") {
		t.Errorf("MAIL before AUTH: %q, want 530 5.7.0", text)
	}
	// No AUTH without TLS, not even offered.
	if text := c.cmd("AUTH PLAIN "+plainResponse("alice@example.org", alicePassword), 538); !strings.HasPrefix(text, "5.7.11 ") {
		t.Errorf("AUTH before TLS: %q", text)
	}
	c.cmd("AUTH LOGIN", 538)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<alice@example.org>", 530)
	c.authPlain("alice@example.org", alicePassword, 235)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<nobody@example.org>", 550)
	if code, text := c.message("Subject: no id\r\n\r\nbody\r\n"); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	c.cmd("DATA", 502) // the transaction is over

	envs, msgs := ts.queued()
	if len(envs) != 1 || envs[0].AuthUser != "alice@example.org" {
		t.Fatalf("spool: %+v", envs)
	}
	for _, re := range []string{`(?m)^Message-ID: <[A-Z2-7]{12}\.1\.[A-Z2-7]{12}@mx\.example\.org>\r$`, `(?m)^Date: \w{3}, \d\d \w{3} \d{4} `, `with ESMTPSA \(TLS1\.[23] `} {
		if !regexp.MustCompile(re).MatchString(msgs[0]) {
			t.Errorf("submitted message does not match %s:\n%s", re, msgs[0])
		}
	}
}

func TestSubmissionKeepsMessageIDAndDate(t *testing.T) {
	ts := startServer(t, submission)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.authPlain("bob@example.org", bobPassword, 235)
	c.cmd("MAIL FROM:<bob@example.org>", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	msg := "message-id: <x@y>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nMessage-ID: in the body\r\n"
	if code, _ := c.message(msg); code != 250 {
		t.Fatal(code)
	}
	_, msgs := ts.queued()
	if strings.Count(msgs[0], "<x@y>") != 1 || strings.Count(strings.ToLower(msgs[0]), "message-id:") != 2 || strings.Contains(msgs[0], "\r\nDate:") {
		t.Errorf("message changed:\n%s", msgs[0])
	}
}

func TestSendAs(t *testing.T) {
	ts := startServer(t, submission)
	for _, tc := range []struct {
		from string
		code int
	}{
		{"alice@example.org", 250},
		{"ALICE@Example.Org", 250},
		{"alice+news@example.org", 250},
		{"sales@example.org", 250},      // alias with alice among its targets
		{"whatever@catchall.test", 250}, // catch-all to alice
		{"bob@example.org", 553},        // another user
		{"bob+x@example.org", 553},      // another user's subaddress
		{"friend@example.org", 553},     // alias to someone else
		{"alice@remote.test", 553},      // not ours at all
		{"", 553},                       // the null sender
	} {
		c := ts.dial()
		c.cmd("EHLO client.test", 250)
		c.startTLS()
		c.cmd("EHLO client.test", 250)
		c.authPlain("alice@example.org", alicePassword, 235)
		c.send("MAIL FROM:<" + tc.from + ">\r\n")
		code, text := c.reply()
		if code != tc.code || code == 553 && !strings.HasPrefix(text, "5.7.1 ") {
			t.Errorf("MAIL FROM:<%s> as alice: %d %q, want %d", tc.from, code, text, tc.code)
		}
		c.cmd("QUIT", 221)
	}
	ts.waitLog("reason=sender-not-owned")
}

func TestAuthLogin(t *testing.T) {
	ts := startServer(t, submission)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	if text := c.cmd("AUTH LOGIN", 334); text != b64("Username:") {
		t.Errorf("first challenge %q", text)
	}
	if text := c.cmd(b64("bob@example.org"), 334); text != b64("Password:") {
		t.Errorf("second challenge %q", text)
	}
	c.cmd(b64(bobPassword), 235)
	c.cmd("MAIL FROM:<bob@example.org>", 250)
	// With the user name as initial response, on a new session.
	c2 := ts.dialTLSStartTLS()
	c2.cmd("AUTH LOGIN "+b64("bob@example.org"), 334)
	c2.cmd(b64(bobPassword), 235)
}

// dialTLSStartTLS connects, says EHLO, runs STARTTLS and says EHLO again.
func (ts *testServer) dialTLSStartTLS() *client {
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	return c
}

func TestAuthFailures(t *testing.T) {
	ts := startServer(t, submission)
	c := ts.dialTLSStartTLS()
	c.authPlain("alice@example.org", "wrong", 535)
	c.cmd("AUTH LOGIN", 334)
	c.cmd(b64("alice@example.org"), 334)
	c.cmd(b64("wrong again"), 535)
	// A malformed PLAIN response counts as a failure too.
	c.cmd("AUTH PLAIN "+b64("no separators"), 535)
	c.expect(421)
	c.closed()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	if got := ts.sleepsSoFar(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	for n := 1; n <= 3; n++ {
		if line := ts.waitLog(fmt.Sprintf("failures=%d", n)); !strings.HasPrefix(line, "auth-failed client=127.0.0.1 conn=") {
			t.Errorf("log line %q is not for fail2ban", line)
		}
	}
	ts.waitLog("result=too-many-auth-failures")
	// A good login after a failure is fine.
	c = ts.dialTLSStartTLS()
	c.authPlain("bob@example.org", "wrong", 535)
	c.authPlain("bob@example.org", bobPassword, 235)
}

func TestAuthAppPassword(t *testing.T) {
	ts := startServer(t, submission)
	h, err := bcrypt.GenerateFromPassword([]byte("app-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeEtc(t, ts.root, "app-passwords", "alice@example.org:{BLF-CRYPT}"+string(h)+":phone:1767225600\n")
	c := ts.dialTLSStartTLS()
	c.authPlain("alice@example.org", "app-pw", 235)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
}

func TestAuthNotInTransaction(t *testing.T) {
	ts := startServer(t)
	c := ts.dialTLSStartTLS()
	c.cmd("MAIL FROM:<a@remote.test>", 250)
	c.cmd("AUTH PLAIN "+plainResponse("alice@example.org", alicePassword), 503)
}

func TestRequireTLS(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@remote.test> REQUIRETLS", 530)
	c.startTLS()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@remote.test> REQUIRETLS SMTPUTF8", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	if code, text := c.message(testMessage); code != 250 {
		t.Fatalf("%d %q", code, text)
	}
	envs, msgs := ts.queued()
	if !envs[0].RequireTLS || !envs[0].SMTPUTF8 {
		t.Errorf("envelope RequireTLS %v SMTPUTF8 %v, want both", envs[0].RequireTLS, envs[0].SMTPUTF8)
	}
	if !strings.Contains(msgs[0], "with UTF8SMTPS (TLS1.") {
		t.Errorf("Received header:\n%s", msgs[0])
	}
}

func TestImplicitTLS(t *testing.T) {
	ts := startServer(t, submission, implicitTLS)
	c := ts.dialTLS()
	text := c.cmd("EHLO client.test", 250)
	if hasLine(text, "STARTTLS") || !hasLine(text, "AUTH PLAIN LOGIN") || !hasLine(text, "REQUIRETLS") {
		t.Errorf("EHLO reply over implicit TLS:\n%s", text)
	}
	c.cmd("STARTTLS", 503)
	c.authPlain("alice@example.org", alicePassword, 235)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if code, text := c.message(testMessage); code != 250 {
		t.Fatalf("%d %q", code, text)
	}
	c.cmd("QUIT", 221)
	line := ts.waitLog("session conn=")
	if !strings.Contains(line, "tls=TLS1.3/TLS_") || !strings.Contains(line, "user=alice@example.org") {
		t.Errorf("session log line %q", line)
	}
}

// Plaintext sent after STARTTLS, before the handshake, is thrown away
// (CVE-2011-0411): it is never run as a command inside TLS.
func TestSTARTTLSDropsInjectedCommands(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	c.send("STARTTLS\r\nRSET\r\n")
	c.expect(220)
	// The server waits for the handshake: the RSET was dropped.
	ts.waitLog("starttls-discard")
	c.startTLSHandshake()
	c.cmd("EHLO client.test", 250)
	c.cmd("NOOP", 250)
	// After STARTTLS the session starts over (RFC 3207 §4.2): no greeting,
	// and MAIL needs a new EHLO.
	c2 := ts.dial()
	c2.cmd("EHLO client.test", 250)
	c2.cmd("STARTTLS", 220)
	c2.startTLSHandshake()
	c2.cmd("MAIL FROM:<a@remote.test>", 502)
}
