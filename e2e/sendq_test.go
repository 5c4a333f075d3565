package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/selfsigned"
	"github.com/postkit/postkit/spool"
)

// sqRoot makes a root (users alice and bob of example.org, the aliases
// given) with fast retries, and the control files in etc.
func sqRoot(t *testing.T, aliases string, etc map[string]string) string {
	t.Helper()
	root := testRoot(t, aliases)
	defaults := map[string]string{"dns": "127.0.0.1:1", "retry-min": "200ms", "retry-max": "1s", "timeout-command": "10s"}
	for name, value := range defaults {
		if _, ok := etc[name]; !ok {
			writeFile(t, filepath.Join(root, "etc", name), value+"\n")
		}
	}
	for name, value := range etc {
		writeFile(t, filepath.Join(root, "etc", name), value)
	}
	return root
}

// sqCommand runs sendq with stdin and returns its exit code, stdout and
// stderr.
func sqCommand(t *testing.T, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	return sqExec(t, Bin(t, "sendq"), stdin, env, args...)
}

func sqExec(t *testing.T, bin, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running %s: %v", bin, err)
	return 0, "", ""
}

// sqSend enqueues msg with `sendq sendmail ARGS`, no daemon involved.
func sqSend(t *testing.T, root, msg string, args ...string) {
	t.Helper()
	code, stdout, stderr := sqCommand(t, msg, nil, append([]string{"--root", root, "sendmail"}, args...)...)
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("sendq sendmail %q = %d, stdout %q, stderr %q; want 0 and silence", args, code, stdout, stderr)
	}
}

// sqRunner is a running `sendq run`.
type sqRunner struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  []string
}

func (r *sqRunner) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func (r *sqRunner) count(re string) int {
	n := 0
	for _, l := range r.lines() {
		if regexp.MustCompile(re).MatchString(l) {
			n++
		}
	}
	return n
}

// startSendq starts `sendq --root ROOT run ARGS` and waits for its start
// line; the test's end stops it.
func startSendq(t *testing.T, root string, args ...string) *sqRunner {
	t.Helper()
	cmd := exec.Command(Bin(t, "sendq"), append([]string{"--root", root, "run"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &sqRunner{cmd: cmd, done: make(chan struct{})}
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.log = append(r.log, sc.Text())
			r.mu.Unlock()
			if strings.Contains(sc.Text(), "event=start") {
				started <- true
			}
		}
		cmd.Wait()
		close(r.done)
		started <- false
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case ok := <-started:
		if !ok {
			t.Fatalf("sendq run exited at once:\n%s", strings.Join(r.lines(), "\n"))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sendq run did not start within 30s")
	}
	return r
}

func (r *sqRunner) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		t.Error("sendq run did not stop within 20s of SIGTERM")
	}
}

func (r *sqRunner) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// sqWait polls cond until it holds, failing the test after limit.
func sqWait(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sqSpoolEmpty reports whether the spool holds no entry (queue/ID) and no
// envelope (env/ID). Temporaries (.tmp.*) do not count: no reader looks at
// them.
func sqSpoolEmpty(root string) bool {
	for _, d := range []string{"queue", "env"} {
		entries, err := os.ReadDir(filepath.Join(root, "spool", d))
		if err != nil {
			return false
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".tmp.") {
				return false
			}
		}
	}
	return true
}

// sqNoEntries reports whether queue/ holds no entry.
func sqNoEntries(root string) bool {
	ids, err := sqSpool(root).IDs()
	return err == nil && len(ids) == 0
}

func sqSpool(root string) *spool.Spool {
	sp, err := spool.Open(filepath.Join(root, "spool"))
	if err != nil {
		panic(err)
	}
	return sp
}

func sqDir(root, d string) []string {
	entries, _ := os.ReadDir(filepath.Join(root, "spool", d))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func sqMailbox(t *testing.T, root, user string) []string {
	t.Helper()
	var msgs []string
	for _, f := range mailFiles(t, root, user, "") {
		msgs = append(msgs, readFile(t, f))
	}
	return msgs
}

func TestSendqLocalDeliveryByteExact(t *testing.T) {
	root := sqRoot(t, "", nil)
	msg := "From: Bob <bob@far.example>\nTo: alice@example.org\nDate: Sun, 22 Nov 2026 07:00:00 +0000\n" +
		"Message-ID: <exact@far.example>\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\n\n" +
		".\n..two dots\nbody with trailing space \n\xc3\xa4 8-bit\n" + strings.Repeat("long ", 300) + "\n\n"
	sqSend(t, root, msg, "-i", "-f", "bob@far.example", "alice@example.org")
	startSendq(t, root)
	sqWait(t, "the delivery", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	got := sqMailbox(t, root, "alice@example.org")
	want := "Return-Path: <bob@far.example>\nDelivered-To: alice@example.org\n" + msg
	if len(got) != 1 || got[0] != want {
		t.Errorf("alice's mailbox = %q\nwant [%q]", got, want)
	}
	if code, out, _ := sqCommand(t, "", nil, "--root", root, "list"); code != 0 || out != "Mail queue is empty\n" {
		t.Errorf("sendq list = %d %q, want the empty queue", code, out)
	}
}

func TestSendqSendmailWithoutDaemon(t *testing.T) {
	root := sqRoot(t, "", nil)
	links := t.TempDir()
	for _, name := range []string{"sendmail", "mailq"} {
		if err := os.Symlink(Bin(t, "sendq"), filepath.Join(links, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"POSTKIT_ROOT=" + root}
	// cron and mail(1): sendmail -t -i, with a Bcc that must disappear.
	msg := "To: alice@example.org\nCc: Bob <bob@example.org>\nBcc: alice@example.org\nSubject: cron\n\nline\n.\nafter the dot\n"
	if code, out, errOut := sqExec(t, filepath.Join(links, "sendmail"), msg, env, "-t", "-i"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("sendmail -t -i = %d, %q, %q", code, out, errOut)
	}
	// PHP's mail(): sendmail -t -i -f, and the classic -oi with recipients.
	if code, _, errOut := sqExec(t, filepath.Join(links, "sendmail"), "Subject: php\n\nx\n", env, "-oi", "-f", "www@example.org", "bob@example.org"); code != 0 {
		t.Fatalf("sendmail -oi -f = %d, %q", code, errOut)
	}
	// -bs: an SMTP session on stdin and stdout.
	session := "EHLO local\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: bs\r\n\r\nvia bs\r\n.\r\nQUIT\r\n"
	code, out, _ := sqCommand(t, session, nil, "--root", root, "sendmail", "-bs")
	if code != 0 || !strings.Contains(out, "\r\n250 2.0.0 ") || !strings.Contains(out, "221 ") {
		t.Fatalf("sendmail -bs = %d:\n%s", code, out)
	}
	code, out, _ = sqExec(t, filepath.Join(links, "mailq"), "", env)
	if code != 0 || strings.Count(out, "from=<") != 3 || !strings.Contains(out, "  pending    alice@example.org  attempts=0") {
		t.Errorf("mailq = %d:\n%s\nwant 3 entries", code, out)
	}
	if code, _, errOut := sqExec(t, filepath.Join(links, "sendmail"), "", env, "-Z"); code != 64 || !strings.Contains(errOut, "invalid option") {
		t.Errorf("sendmail -Z = %d, %q; want 64", code, errOut)
	}

	startSendq(t, root)
	sqWait(t, "all deliveries", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	alice, bob := sqMailbox(t, root, "alice@example.org"), sqMailbox(t, root, "bob@example.org")
	if len(alice) != 1 || len(bob) != 3 {
		t.Fatalf("alice got %d, bob %d messages; want 1 and 3 (Bcc to alice counted once)", len(alice), len(bob))
	}
	if strings.Contains(alice[0], "Bcc") || !strings.Contains(alice[0], "\nline\n.\nafter the dot\n") || !strings.Contains(alice[0], "\nMessage-ID: <") {
		t.Errorf("cron message as delivered:\n%s", alice[0])
	}
}

func TestSendqRemoteViaRouteRetriesAfter451(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Data: func(n int) error {
		if n == 0 {
			return smtptest.Refuse(451, smtp.EnhancedCode{4, 3, 0}, "local problem, try later")
		}
		return nil
	}})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n"})
	msg := "From: alice@example.org\nTo: x@far.example\nSubject: out\n\nbody\n"
	sqSend(t, root, msg, "-i", "-f", "alice@example.org", "x@far.example", "y@far.example")
	r := startSendq(t, root)
	got := srv.Wait(t, 1, 10*time.Second)
	sqWait(t, "the entry to be removed", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	m := got[0]
	if m.Helo != "mx.example.org" || m.From != "alice@example.org" || strings.Join(m.To, " ") != "x@far.example y@far.example" {
		t.Errorf("server saw helo=%q from=%q to=%v", m.Helo, m.From, m.To)
	}
	if !strings.HasSuffix(string(m.Data), "\r\n\r\nbody\r\n") || !strings.HasPrefix(string(m.Data), "From: alice@example.org\r\nTo: x@far.example\r\nSubject: out\r\nDate: ") {
		t.Errorf("server got %q", m.Data)
	}
	if r.count(`rcpt=x@far.example status=deferred relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+ code=4\.3\.0 reply="451 4\.3\.0 local problem`) != 1 ||
		r.count(`rcpt=x@far.example status=delivered relay=127\.0\.0\.1.* reply="250 `) != 1 {
		t.Errorf("log:\n%s\nwant a deferral, then a delivery, with relay and reply", strings.Join(r.lines(), "\n"))
	}
}

// twoLoopbackServers starts SMTP servers on 127.0.0.1 and ::1 with the same
// port, as two MX hosts reached through etc/smtp-port.
func twoLoopbackServers(t *testing.T, v4 smtptest.Options) (a, b *smtptest.Server, port string) {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(l.Addr().String())
		l.Close()
		l6, err := net.Listen("tcp", "[::1]:"+port)
		if err != nil {
			continue
		}
		l6.Close()
		v4.Listen = "127.0.0.1:" + port
		return smtptest.Start(t, v4), smtptest.Start(t, smtptest.Options{Listen: "[::1]:" + port}), port
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return nil, nil, ""
}

func TestSendqMXOrderImplicitAndNullMX(t *testing.T) {
	// The IPv4 host refuses mail for fallback.test with 451: the next MX.
	v4, v6, port := twoLoopbackServers(t, smtptest.Options{Rcpt: func(to string) error {
		if strings.HasSuffix(to, "@fallback.test") {
			return smtptest.Refuse(451, smtp.EnhancedCode{4, 2, 0}, "not now")
		}
		return nil
	}})
	dns := dnstest.Start(t,
		"ordered.test. MX 20 mx6.ordered.test.",
		"ordered.test. MX 10 mx4.ordered.test.",
		"mx4.ordered.test. A 127.0.0.1",
		"mx6.ordered.test. AAAA ::1",
		"fallback.test. MX 10 mx4.ordered.test.",
		"fallback.test. MX 20 mx6.ordered.test.",
		"implicit.test. AAAA ::1",
		"null.test. MX 0 .",
	)
	root := sqRoot(t, "", map[string]string{"smtp-port": port + "\n", "dns": "192.0.2.1:53\n"})
	for _, rcpt := range []string{"a@ordered.test", "b@fallback.test", "c@implicit.test", "d@null.test"} {
		sqSend(t, root, "Subject: to "+rcpt+"\n\nx\n", "-i", "-f", "alice@example.org", rcpt)
	}
	// --dns overrides etc/dns, which names no server.
	r := startSendq(t, root, "--dns", dns.Addr)
	v6.Wait(t, 2, 10*time.Second)
	v4.Wait(t, 1, 10*time.Second)
	sqWait(t, "the null MX bounce", 10*time.Second, func() bool { return len(sqMailbox(t, root, "alice@example.org")) == 1 })
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	var to4, to6 []string
	for _, m := range v4.Messages() {
		to4 = append(to4, m.To...)
	}
	for _, m := range v6.Messages() {
		to6 = append(to6, m.To...)
	}
	if strings.Join(to4, " ") != "a@ordered.test" || strings.Join(to6, " ") != "b@fallback.test c@implicit.test" && strings.Join(to6, " ") != "c@implicit.test b@fallback.test" {
		t.Errorf("127.0.0.1 got %v, ::1 got %v; want the preferred MX, the next MX after 451, the implicit MX", to4, to6)
	}
	bounce := sqMailbox(t, root, "alice@example.org")[0]
	if !strings.Contains(bounce, "Status: 5.1.10") || !strings.Contains(bounce, "d@null.test") || r.count(`rcpt=d@null.test status=bounced .*attempts=1`) != 1 {
		t.Errorf("null MX bounce:\n%s\nlog:\n%s", bounce, strings.Join(r.lines(), "\n"))
	}
}

// deliveryStatus parses a DSN with go-message and returns its parts' types,
// the per-message fields, the per-recipient fields and the returned part.
func deliveryStatus(t *testing.T, data string) ([]string, textproto.MIMEHeader, []textproto.MIMEHeader, string) {
	t.Helper()
	e, err := message.Read(strings.NewReader(data))
	if err != nil {
		t.Fatalf("parsing the report: %v", err)
	}
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("report Content-Type %s %v, want multipart/report; report-type=delivery-status", mt, params)
	}
	var types []string
	var perMsg textproto.MIMEHeader
	var perRcpt []textproto.MIMEHeader
	var returned string
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
		body, _ := io.ReadAll(p.Body)
		switch ct {
		case "message/delivery-status":
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					if perMsg == nil {
						perMsg = h
					} else {
						perRcpt = append(perRcpt, h)
					}
				}
				if err != nil {
					break
				}
			}
		case "text/rfc822-headers", "message/rfc822":
			returned = string(body)
		}
	}
	return types, perMsg, perRcpt, returned
}

func TestSendqBounceAfterExpiryAndNoBounceToNullSender(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, come back later")
	}})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n", "queue-lifetime": "1s\n"})
	sqSend(t, root, "From: alice@example.org\nSubject: doomed\n\nsecret body\n", "-i", "-f", "alice@example.org", "bob@far.example")
	sqSend(t, root, "From: MAILER-DAEMON\nSubject: a bounce\n\nx\n", "-i", "-f", "", "carol@far.example")
	r := startSendq(t, root)
	sqWait(t, "the bounce", 15*time.Second, func() bool { return len(sqMailbox(t, root, "alice@example.org")) == 1 })
	sqWait(t, "the spool to empty", 15*time.Second, func() bool { return sqSpoolEmpty(root) })
	bounce := sqMailbox(t, root, "alice@example.org")[0]
	if !strings.HasPrefix(bounce, "Return-Path: <>\n") {
		t.Errorf("bounce does not come from the null sender:\n%s", bounce)
	}
	types, perMsg, perRcpt, returned := deliveryStatus(t, bounce)
	if strings.Join(types, " ") != "text/plain message/delivery-status text/rfc822-headers" {
		t.Errorf("parts %v", types)
	}
	if perMsg.Get("Reporting-MTA") != "dns; mx.example.org" || perMsg.Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", perMsg)
	}
	if len(perRcpt) != 1 || perRcpt[0].Get("Final-Recipient") != "rfc822; bob@far.example" || perRcpt[0].Get("Action") != "failed" ||
		perRcpt[0].Get("Status") != "4.4.7" || !strings.Contains(perRcpt[0].Get("Diagnostic-Code"), "451 4.7.1 greylisted") {
		t.Errorf("per-recipient fields %v", perRcpt)
	}
	if !strings.Contains(returned, "Subject: doomed") || strings.Contains(bounce, "secret body") {
		t.Errorf("returned part %q; want the header only", returned)
	}
	if r.count(`rcpt=carol@far.example event=dsn action=failed status=dropped reason="null sender"`) != 1 {
		t.Errorf("log:\n%s\nwant the bounce for the null sender dropped", strings.Join(r.lines(), "\n"))
	}
	if len(srv.Messages()) != 0 {
		t.Error("the server accepted something")
	}
}

func TestSendqAliasToLocalAndRemote(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	root := sqRoot(t, "team@example.org: alice@example.org, bob@example.org, carol@far.example\n",
		map[string]string{"routes": "far.example " + srv.Addr + "\n"})
	sqSend(t, root, "Subject: team\n\nhi team\n", "-i", "-f", "boss@far.example", "team@example.org")
	startSendq(t, root)
	srv.Wait(t, 1, 10*time.Second)
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	for _, u := range []string{"alice@example.org", "bob@example.org"} {
		if m := sqMailbox(t, root, u); len(m) != 1 || !strings.Contains(m[0], "Delivered-To: "+u+"\n") {
			t.Errorf("%s got %q", u, m)
		}
	}
	if m := srv.Messages(); len(m) != 1 || strings.Join(m[0].To, ",") != "carol@far.example" || m[0].From != "boss@far.example" {
		t.Errorf("remote target got %+v", m)
	}
}

func TestSendqSmarthostAuthOverTLS(t *testing.T) {
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t, smtptest.Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Users: map[string]string{"home@isp.example": "s3cret pass"}})
	root := sqRoot(t, "", map[string]string{
		"routes":                      "# port 25 is blocked: everything through the provider\n* " + srv.Addr + " auth=smarthost-auth ca=tls/smarthost-ca.pem\n",
		"smarthost-auth":              "home@isp.example\ns3cret pass\n",
		"tls/smarthost-ca.pem":        string(certPEM),
		"dns":                         "127.0.0.1:1\n",
		"timeout-command":             "5s\n",
		"concurrency":                 "2\n",
		"concurrency-per-destination": "2\n",
	})
	sqSend(t, root, "Subject: via smarthost\n\nx\n", "-i", "-f", "alice@example.org", "x@anywhere.example", "y@elsewhere.example")
	startSendq(t, root)
	m := srv.Wait(t, 1, 10*time.Second)[0]
	if !m.TLS || m.AuthUser != "home@isp.example" || len(m.To) != 2 {
		t.Errorf("smarthost saw TLS=%v auth=%q to=%v; want TLS, the login, both recipients in one transaction", m.TLS, m.AuthUser, m.To)
	}
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
}

// TestSendqKill9LosesNothing kills the runner with SIGKILL three times
// while it delivers: every message must arrive, at most one extra copy per
// kill (concurrency 1: one delivery in flight), and the spool must end empty.
func TestSendqKill9LosesNothing(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n", "concurrency": "1\n"})
	const n = 30
	for i := range n {
		rcpt := "alice@example.org"
		if i%2 == 1 {
			rcpt = "x@far.example"
		}
		sqSend(t, root, fmt.Sprintf("Subject: load %d\n\nmessage %d\n", i, i), "-i", "-f", "bob@example.org", rcpt)
	}
	subjects := func() map[string]int {
		seen := map[string]int{}
		for _, m := range sqMailbox(t, root, "alice@example.org") {
			seen[regexp.MustCompile(`Subject: (load \d+)`).FindStringSubmatch(m)[1]]++
		}
		for _, m := range srv.Messages() {
			seen[regexp.MustCompile(`Subject: (load \d+)`).FindStringSubmatch(string(m.Data))[1]]++
		}
		return seen
	}
	total := func() int {
		sum := 0
		for _, c := range subjects() {
			sum += c
		}
		return sum
	}
	kills := 0
	for _, after := range []int{3, 10, 18} {
		r := startSendq(t, root)
		sqWait(t, fmt.Sprintf("%d deliveries", after), 20*time.Second, func() bool { return total() >= after })
		r.kill()
		kills++
	}
	last := startSendq(t, root)
	sqWait(t, "the last entry to go", 30*time.Second, func() bool { return sqNoEntries(root) })
	// A kill between the two unlinks of a removal leaves an envelope
	// (env/ID without queue/ID), a kill in an envelope update a temporary:
	// garbage that spool.Clean removes (the runner calls it hourly for
	// files older than an hour). Nothing else may be left.
	if _, err := sqSpool(root).Clean(0); err != nil {
		t.Fatal(err)
	}
	if queue, env := sqDir(root, "queue"), sqDir(root, "env"); len(queue)+len(env) != 0 {
		t.Fatalf("spool after Clean: queue %v env %v\nlog:\n%s", queue, env, strings.Join(last.lines(), "\n"))
	}
	seen := subjects()
	dups := 0
	for i := range n {
		c := seen[fmt.Sprintf("load %d", i)]
		if c == 0 {
			t.Errorf("message %d was lost", i)
		}
		dups += max(c-1, 0)
	}
	if dups > kills {
		t.Errorf("%d duplicates after %d kills, want at most one per kill", dups, kills)
	}
}

func TestSendqSecondRunnerRefused(t *testing.T) {
	root := sqRoot(t, "", nil)
	startSendq(t, root)
	code, _, stderr := sqCommand(t, "", nil, "--root", root, "run")
	if code != 75 || !strings.Contains(stderr, "another queue runner is running") {
		t.Errorf("second sendq run = %d, %q; want 75 and the reason", code, stderr)
	}
}

func TestSendqQueueCommands(t *testing.T) {
	var mu sync.Mutex
	refuse := true
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return smtptest.Refuse(450, smtp.EnhancedCode{4, 2, 0}, "later")
		}
		return nil
	}})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n", "retry-min": "1h\n", "retry-max": "2h\n"})
	sq := func(args ...string) (int, string, string) {
		return sqCommand(t, "", nil, append([]string{"--root", root}, args...)...)
	}
	ids := func() []string {
		_, out, _ := sq("list")
		return regexp.MustCompile(`(?m)^([0-9A-V]{16}) `).FindAllString(out, -1)
	}
	sqSend(t, root, "Subject: held\n\nx\n", "-i", "alice@example.org")
	sqSend(t, root, "Subject: removed\n\nx\n", "-i", "bob@example.org")
	sqSend(t, root, "Subject: deferred\n\nx\n", "-i", "x@far.example")
	list := ids()
	if len(list) != 3 {
		t.Fatalf("sendq list shows %v, want 3 entries", list)
	}
	held, removed, deferred := strings.TrimSpace(list[0]), strings.TrimSpace(list[1]), strings.TrimSpace(list[2])
	if code, _, stderr := sq("hold", held); code != 0 {
		t.Fatalf("hold = %d %s", code, stderr)
	}
	if code, _, stderr := sq("rm", removed); code != 0 {
		t.Fatalf("rm = %d %s", code, stderr)
	}
	if code, out, _ := sq("show", held); code != 0 || !strings.Contains(out, "hold yes\n") || !strings.HasSuffix(out, "--- message ---\nSubject: held\n"+out[strings.Index(out, "Subject: held\n")+14:]) {
		t.Errorf("show = %d:\n%s", code, out)
	}
	if code, _, _ := sq("rm", "0000000000000000"); code != 66 {
		t.Errorf("rm of an unknown ID = %d, want 66", code)
	}
	r := startSendq(t, root)
	sqWait(t, "the deferral", 10*time.Second, func() bool { return r.count(`status=deferred`) == 1 })
	if len(sqMailbox(t, root, "alice@example.org")) != 0 || len(sqMailbox(t, root, "bob@example.org")) != 0 {
		t.Fatal("a held or removed entry was delivered")
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	// The retry is an hour away: flush makes it now, and wakes the runner.
	if code, _, stderr := sq("flush", deferred); code != 0 {
		t.Fatalf("flush = %d %s", code, stderr)
	}
	srv.Wait(t, 1, 10*time.Second)
	if code, _, stderr := sq("release", held); code != 0 {
		t.Fatalf("release = %d %s", code, stderr)
	}
	sqWait(t, "the released message", 10*time.Second, func() bool { return len(sqMailbox(t, root, "alice@example.org")) == 1 })
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	if len(sqMailbox(t, root, "bob@example.org")) != 0 {
		t.Error("the removed entry was delivered")
	}
}

// A user who may not use the queue (spool/queue is the spool owner's
// alone) is told so, with EX_NOPERM (77): not shown an empty queue, and not
// told to try again later as for a temporary failure: sendq list, mailq,
// sendq flush and sendmail -q.
func TestSendqListRefusedToOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run sendq as another user")
	}
	root := sqRoot(t, "", nil)
	sqSend(t, root, "Subject: s\n\nx\n", "alice@example.org")
	// The user nobody must reach the root and run a copy of the binary.
	for d := root; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := t.TempDir()
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(Bin(t, "sendq"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bin, "sendq"), string(data))
	if err := os.Chmod(filepath.Join(bin, "sendq"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sendq", filepath.Join(bin, "mailq")); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	for _, args := range [][]string{{"sendq", "--root", root, "list"}, {"mailq"}, {"sendq", "--root", root, "flush"}, {"sendq", "--root", root, "sendmail", "-q"}} {
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		cmd.Env = []string{"POSTKIT_ROOT=" + root, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 77 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "only root and the spool's owner may read or change the queue") {
			t.Errorf("%s as nobody = %v, stdout %q, stderr %q; want exit 77, nothing listed, and why", args, err, stdout.String(), stderr.String())
		}
	}
	// The owner (root here) still gets the list.
	if code, out, _ := sqCommand(t, "", nil, "--root", root, "list"); code != 0 || !strings.Contains(out, "alice@example.org") {
		t.Errorf("sendq list as root = %d, %q; want the entry", code, out)
	}
}
