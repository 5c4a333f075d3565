package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/selfsigned"
)

// pop3Messages are stored in alice's new/ as other software would leave them
// (no ,S= or ,W= in the name, so pop3d counts the sizes), oldest first; a
// message delivered by the deliver binary follows them in the listing.
var pop3Messages = []struct{ name, content string }{
	{"1000000001.P1.other", "Subject: dots\n\n.leading dot\n..two dots\n.\nend\n"},
	{"1000000002.P1.other", "Subject: no final newline\n\nlast line"},
	{"1000000003.P1.other", "Subject: caf\xe9 \x00\n\nNUL \x00 and 8-bit \xff\r\nalready CRLF\r\n"},
	{"1000000004.P1.other", "X-Only: header\nX-Two: 2\n"},
}

// pop3Root makes a root with alice@example.org (password "secret", through
// mkuser), the pop3Messages and one delivered message, and a TLS certificate
// for localhost and 127.0.0.1 unless withoutCert. It returns the root and
// the certificate's path.
func pop3Root(t *testing.T, withoutCert bool) (root, cert string) {
	t.Helper()
	return pop3RootIn(t, t.TempDir(), withoutCert)
}

// pop3RootIn is pop3Root in the directory root.
func pop3RootIn(t *testing.T, root string, withoutCert bool) (_, cert string) {
	t.Helper()
	mkuser := exec.Command(Bin(t, "mkuser"), "--root", root, "add", "alice@example.org")
	mkuser.Stdin = strings.NewReader("secret\n")
	if out, err := mkuser.CombinedOutput(); err != nil {
		t.Fatalf("mkuser add: %v\n%s", err, out)
	}
	pop3WriteFile(t, filepath.Join(root, "etc", "hostname"), "mail.example.org\n")
	for _, m := range pop3Messages {
		pop3WriteFile(t, filepath.Join(pop3Maildir(root), "new", m.name), m.content)
	}
	deliver := exec.Command(Bin(t, "deliver"), "--root", root, "alice@example.org")
	deliver.Stdin = strings.NewReader("Subject: delivered\n\nhello\n")
	if out, err := deliver.CombinedOutput(); err != nil {
		t.Fatalf("deliver: %v\n%s", err, out)
	}
	cert = filepath.Join(root, "etc", "tls", "cert.pem")
	if !withoutCert {
		certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pop3WriteFile(t, cert, string(certPEM))
		pop3WriteFile(t, filepath.Join(root, "etc", "tls", "key.pem"), string(keyPEM))
	}
	return root, cert
}

func pop3Maildir(root string) string { return filepath.Join(root, "mail", "example.org", "alice") }

func pop3WriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pop3Expected returns the messages of the root's listing in order, as RETR
// must send them before dot-stuffing: CRLF line endings.
func pop3Expected(t *testing.T, root string) []string {
	t.Helper()
	var msgs []string
	for _, m := range pop3Messages {
		msgs = append(msgs, crlf(m.content))
	}
	// The delivered one, wherever it is by now.
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(pop3Maildir(root), sub))
		for _, e := range entries {
			if !strings.Contains(e.Name(), ".other") {
				data, err := os.ReadFile(filepath.Join(pop3Maildir(root), sub, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, crlf(string(data)))
			}
		}
	}
	if len(msgs) != len(pop3Messages)+1 {
		t.Fatalf("found %d messages, want %d", len(msgs), len(pop3Messages)+1)
	}
	return msgs
}

// crlf turns every LF not preceded by CR into CRLF.
func crlf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pop3Files returns the names in alice's cur/.
func pop3Files(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(pop3Maildir(root), "cur"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// pop3UIDValidity returns the UIDVALIDITY in the header of alice's
// dovecot-uidlist ("3 V<uidvalidity> N<next uid> G<guid>").
func pop3UIDValidity(t *testing.T, root string) uint32 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(pop3Maildir(root), "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	var validity uint32
	if _, err := fmt.Sscanf(string(data), "3 V%d ", &validity); err != nil {
		t.Fatalf("dovecot-uidlist header %q: %v", strings.SplitN(string(data), "\n", 2)[0], err)
	}
	return validity
}

// startPOP3d runs pop3d on root with --listen 127.0.0.1:0 and returns once it
// logged the address it listens on.
func startPOP3d(t *testing.T, root string, args ...string) *daemon {
	t.Helper()
	args = append([]string{"--root", root, "--listen", "127.0.0.1:0", "--hostname", "pop.test", "--login-failure-delay", "1ms"}, args...)
	return runDaemon(t, exec.Command(Bin(t, "pop3d"), args...), listenAddr)
}

// waitSession waits for the n-th session log line and returns it.
func (p *daemon) waitSession(t *testing.T, n int) string {
	t.Helper()
	return p.waitLog(t, func(string) string {
		var sessions []string
		for _, l := range p.lines() {
			if strings.Contains(l, " session client=") {
				sessions = append(sessions, l)
			}
		}
		if len(sessions) >= n {
			return sessions[n-1]
		}
		return ""
	})
}

// poplibScript runs the steps of a JSON spec with Python's poplib and prints
// each result (bytes as Latin-1 strings) or the -ERR line it raised.
const poplibScript = `
import json, poplib, ssl, sys
spec = json.loads(sys.argv[1])
ctx = None
if spec.get("cafile"):
    ctx = ssl.create_default_context(cafile=spec["cafile"])
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
host, port = spec["addr"].rsplit(":", 1)
if spec["mode"] == "ssl":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=60)
else:
    p = poplib.POP3(host, int(port), timeout=60)
def conv(x):
    if isinstance(x, bytes):
        return x.decode("latin-1")
    if isinstance(x, (list, tuple)):
        return [conv(i) for i in x]
    if isinstance(x, dict):
        return {k: conv(v) for k, v in x.items()}
    return x
out = [p.getwelcome().decode("latin-1")]
for step in spec["steps"]:
    op, args = step[0], step[1:]
    try:
        if op == "stls":
            r = p.stls(context=ctx)
        elif op == "raw":
            r = p._shortcmd(args[0])
        elif op == "drop":
            p.sock.close()
            r = None
        else:
            r = getattr(p, op)(*args)
        out.append({"ok": conv(r)})
    except poplib.error_proto as e:
        out.append({"err": conv(e.args[0])})
print(json.dumps(out))
`

// poplibResult is one step's outcome: OK holds the decoded return value.
type poplibResult struct {
	OK  any    `json:"ok"`
	Err string `json:"err"`
}

// poplib runs steps (method name and arguments) against addr in mode
// "plain", "stls" (steps include "stls") or "ssl" and returns the welcome
// line and the results.
func poplib(t *testing.T, addr, mode, cafile string, steps ...[]any) (string, []poplibResult) {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{"addr": addr, "mode": mode, "cafile": cafile, "steps": steps})
	cmd := exec.Command("python3", "-c", poplibScript, string(spec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, stderr.String())
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil || len(raw) != len(steps)+1 {
		t.Fatalf("poplib printed %q: %v", out, err)
	}
	var welcome string
	json.Unmarshal(raw[0], &welcome)
	results := make([]poplibResult, len(steps))
	for i := range steps {
		json.Unmarshal(raw[i+1], &results[i])
	}
	return welcome, results
}

func step(op string, args ...any) []any { return append([]any{op}, args...) }

// wantOK checks that result i succeeded with the value want (compared as
// JSON-decoded values).
func wantOK(t *testing.T, results []poplibResult, steps [][]any, i int, want any) {
	t.Helper()
	r := results[i]
	if r.Err != "" {
		t.Errorf("%v: error %q, want %v", steps[i], r.Err, want)
		return
	}
	got, _ := json.Marshal(r.OK)
	w, _ := json.Marshal(want)
	if !bytes.Equal(got, w) {
		t.Errorf("%v = %s, want %s", steps[i], got, w)
	}
}

func wantErr(t *testing.T, results []poplibResult, steps [][]any, i int, want string) {
	t.Helper()
	if r := results[i]; r.Err != want {
		t.Errorf("%v = %v, error %q, want error %q", steps[i], r.OK, r.Err, want)
	}
}

func TestPOP3dPoplibCommands(t *testing.T) {
	root, _ := pop3Root(t, false)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	steps := [][]any{
		step("capa"),                             // 0
		step("raw", "APOP alice@example.org 0f"), // 1
		step("user", "alice@example.org"),        // 2
		step("pass_", "wrong"),                   // 3
		step("user", "Alice@Example.ORG"),        // 4
		step("pass_", "secret"),                  // 5
		step("stat"),                             // 6
		step("list"),                             // 7
		step("list", 2),                          // 8
		step("uidl"),                             // 9
		step("uidl", 1),                          // 10
		step("retr", 1),                          // 11
		step("retr", 2),                          // 12
		step("retr", 3),                          // 13
		step("retr", 4),                          // 14
		step("retr", 5),                          // 15
		step("top", 1, 0),                        // 16
		step("top", 1, 2),                        // 17
		step("top", 4, 0),                        // 18
		step("dele", 1),                          // 19
		step("dele", 1),                          // 20
		step("list", 1),                          // 21
		step("rset"),                             // 22
		step("noop"),                             // 23
		step("retr", 9),                          // 24
		step("dele", 2),                          // 25
		step("stat"),                             // 26
		step("quit"),                             // 27
	}
	welcome, res := poplib(t, srv.addr, "plain", "", steps...)
	if welcome != "+OK pop.test POP3 server ready" {
		t.Errorf("welcome = %q", welcome)
	}
	wantOK(t, res, steps, 0, map[string][]string{
		"TOP": {}, "UIDL": {}, "USER": {}, "SASL": {"PLAIN"}, "RESP-CODES": {}, "AUTH-RESP-CODE": {},
		"PIPELINING": {}, "STLS": {}, "EXPIRE": {"NEVER"}, "IMPLEMENTATION": {"postkit"},
	})
	wantErr(t, res, steps, 1, "-ERR APOP not supported")
	wantErr(t, res, steps, 3, "-ERR [AUTH] invalid credentials")
	msgs := pop3Expected(t, root)
	total := 0
	var list []string
	for i, m := range msgs {
		total += len(m)
		list = append(list, fmt.Sprintf("%d %d", i+1, len(m)))
	}
	wantOK(t, res, steps, 5, fmt.Sprintf("+OK 5 messages (%d octets)", total))
	wantOK(t, res, steps, 6, []int{5, total})
	wantOK(t, res, steps, 7, []any{fmt.Sprintf("+OK 5 messages (%d octets)", total), list, len(strings.Join(list, "\r\n")) + 2})
	wantOK(t, res, steps, 8, fmt.Sprintf("+OK 2 %d", len(msgs[1])))
	// Dovecot's default UIDLs: UID and UIDVALIDITY from the dovecot-uidlist
	// pop3d made, the messages numbered in order of arrival.
	validity := pop3UIDValidity(t, root)
	var wantUIDLs []string
	for uid := 1; uid <= 5; uid++ {
		wantUIDLs = append(wantUIDLs, fmt.Sprintf("%d %08x%08x", uid, uid, validity))
	}
	uidls, _ := res[9].OK.([]any)
	if len(uidls) != 3 {
		t.Fatalf("uidl() = %v", res[9].OK)
	}
	if lines, _ := uidls[1].([]any); !slices.Equal(anyStrings(lines), wantUIDLs) {
		t.Errorf("uidl() lines = %q, want %q", lines, wantUIDLs)
	}
	wantOK(t, res, steps, 10, "+OK "+wantUIDLs[0])
	// RETR: poplib undoes the dot-stuffing and counts the octets of the
	// lines with CRLF; both must match the message and its LIST size.
	for i, m := range msgs {
		r, _ := res[11+i].OK.([]any)
		if len(r) != 3 {
			t.Errorf("retr(%d) = %v", i+1, res[11+i])
			continue
		}
		got := strings.Join(anyStrings(r[1].([]any)), "\r\n") + "\r\n"
		wantMsg := m
		if !strings.HasSuffix(m, "\r\n") {
			wantMsg += "\r\n" // the line ending added before the final dot
		}
		if got != wantMsg {
			t.Errorf("retr(%d) content = %q, want %q", i+1, got, wantMsg)
		}
		if r[0] != fmt.Sprintf("+OK %d octets", len(m)) || int(r[2].(float64)) != len(wantMsg) {
			t.Errorf("retr(%d) = %q, %v octets; want size %d", i+1, r[0], r[2], len(m))
		}
	}
	wantOK(t, res, steps, 16, []any{"+OK top of message follows", []string{"Subject: dots", ""}, 17})
	wantOK(t, res, steps, 17, []any{"+OK top of message follows", []string{"Subject: dots", "", ".leading dot", "..two dots"}, 43})
	wantOK(t, res, steps, 18, []any{"+OK top of message follows", []string{"X-Only: header", "X-Two: 2"}, 26})
	wantOK(t, res, steps, 19, "+OK message 1 deleted")
	wantErr(t, res, steps, 20, "-ERR message 1 already deleted")
	wantErr(t, res, steps, 21, "-ERR message 1 already deleted")
	wantOK(t, res, steps, 22, fmt.Sprintf("+OK 5 messages (%d octets)", total))
	wantOK(t, res, steps, 23, "+OK")
	wantErr(t, res, steps, 24, "-ERR no such message")
	wantOK(t, res, steps, 26, []int{4, total - len(msgs[1])})
	wantOK(t, res, steps, 27, "+OK bye, 1 messages deleted")

	line := srv.waitSession(t, 1)
	if !regexp.MustCompile(`^pop3d: session client=127\.0\.0\.1:\d+ user=alice@example\.org tls=false retrieved=5 deleted=1 result=quit$`).MatchString(line) {
		t.Errorf("session log line = %q", line)
	}
	files := pop3Files(t, root)
	if len(files) != 4 || slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "1000000002.") }) {
		t.Errorf("cur/ after DELE 2 and QUIT = %q", files)
	}
	// RETR marked the messages seen.
	for _, f := range files {
		if !strings.HasSuffix(f, ":2,S") {
			t.Errorf("%s: not marked seen after RETR", f)
		}
	}
}

// anyStrings converts poplib's strings back to the octets they stand for
// (the script decoded them as Latin-1).
func anyStrings(a []any) []string {
	s := make([]string, len(a))
	for i, v := range a {
		str, _ := v.(string)
		b := make([]byte, 0, len(str))
		for _, r := range str {
			b = append(b, byte(r))
		}
		s[i] = string(b)
	}
	return s
}

// pop3Conn is a raw client that sees every octet.
type pop3Conn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) *pop3Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &pop3Conn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("+OK pop.test POP3 server ready\r\n")
	return c
}

func (c *pop3Conn) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly len(want) octets and compares them.
func (c *pop3Conn) expect(want string) {
	c.t.Helper()
	got := make([]byte, len(want))
	if n, err := io.ReadFull(c.r, got); err != nil {
		c.t.Fatalf("reading %q: got %q: %v", want, got[:n], err)
	}
	if string(got) != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

func (c *pop3Conn) login() {
	c.t.Helper()
	c.send("USER alice@example.org")
	c.expect("+OK send PASS\r\n")
	c.send("PASS secret")
	if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK ") {
		c.t.Fatalf("PASS: %q, %v", l, err)
	}
}

// TestPOP3dWireBytes checks the exact octets on the wire: CRLF, doubled
// dots, the terminating dot, and huge or odd messages.
func TestPOP3dWireBytes(t *testing.T) {
	root, _ := pop3Root(t, true)
	// 10 MB without a line ending, starting with a dot.
	big := "." + strings.Repeat("x", 10<<20)
	pop3WriteFile(t, filepath.Join(pop3Maildir(root), "new", "1000000005.P1.other"), big)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	c := dialPOP3(t, srv.addr)
	c.login()
	c.send("RETR 1")
	c.expect("+OK 51 octets\r\nSubject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n.\r\n")
	c.send("TOP 2 0")
	c.expect("+OK top of message follows\r\nSubject: no final newline\r\n\r\n.\r\n")
	c.send("RETR 2")
	c.expect("+OK 38 octets\r\nSubject: no final newline\r\n\r\nlast line\r\n.\r\n")
	c.send("RETR 3")
	c.expect("+OK 52 octets\r\nSubject: caf\xe9 \x00\r\n\r\nNUL \x00 and 8-bit \xff\r\nalready CRLF\r\n.\r\n")
	c.send("LIST 5")
	c.expect(fmt.Sprintf("+OK 5 %d\r\n", len(big)))
	c.send("RETR 5")
	c.expect(fmt.Sprintf("+OK %d octets\r\n.", len(big)) + big + "\r\n.\r\n")
	c.send("TOP 5 0")
	c.expect("+OK top of message follows\r\n." + big + "\r\n.\r\n")
	// Pipelined: answered in order.
	if _, err := io.WriteString(c.conn, "NOOP\r\nLIST 4\r\nUIDL 4\r\nNOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	c.expect(fmt.Sprintf("+OK\r\n+OK 4 26\r\n+OK 4 %08x%08x\r\n+OK\r\n", 4, pop3UIDValidity(t, root)))
	// An overlong command is refused and the session goes on.
	c.send("NOOP " + strings.Repeat("x", 300))
	c.expect("-ERR line too long (RFC 2449 §4: at most 255 octets)\r\n")
	c.send("QUIT")
	c.expect("+OK bye, 0 messages deleted\r\n")
	// The size cache remembers the counted sizes.
	cache, err := os.ReadFile(filepath.Join(pop3Maildir(root), "pop3-sizes"))
	if err != nil || !strings.Contains(string(cache), fmt.Sprintf("%d %d 1000000005.P1.other\n", len(big), len(big))) {
		t.Errorf("pop3-sizes = %q, %v", cache, err)
	}
}

func TestPOP3dAuthPlain(t *testing.T) {
	root, _ := pop3Root(t, true)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	c := dialPOP3(t, srv.addr)
	c.send("AUTH PLAIN")
	c.expect("+ \r\n")
	c.send("*")
	c.expect("-ERR authentication cancelled\r\n")
	c.send("AUTH PLAIN " + b64("\x00alice@example.org\x00nope"))
	c.expect("-ERR [AUTH] invalid credentials\r\n")
	c.send("AUTH PLAIN")
	c.expect("+ \r\n")
	c.send(b64("\x00ALICE@example.org\x00secret"))
	c.expect("+OK 5 messages (")
	c.r.ReadString('\n')
	c.send("QUIT")
	c.expect("+OK bye, 0 messages deleted\r\n")

	// Three failures close the connection.
	c = dialPOP3(t, srv.addr)
	for range 2 {
		c.send("AUTH PLAIN " + b64("\x00alice@example.org\x00wrong"))
		c.expect("-ERR [AUTH] invalid credentials\r\n")
	}
	c.send("AUTH PLAIN " + b64("\x00alice@example.org\x00wrong"))
	c.expect("-ERR [AUTH] invalid credentials, closing\r\n")
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after three failures: %v, want EOF", err)
	}
}

func TestPOP3dAppPassword(t *testing.T) {
	root, _ := pop3Root(t, true)
	out, err := exec.Command(Bin(t, "mkuser"), "--root", root, "app-password", "add", "alice@example.org", "phone").Output()
	if err != nil {
		t.Fatalf("mkuser app-password add: %v", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		t.Fatalf("mkuser app add printed %q", out)
	}
	password := fields[len(fields)-1]
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	c := dialPOP3(t, srv.addr)
	c.send("USER alice@example.org")
	c.expect("+OK send PASS\r\n")
	c.send("PASS " + password)
	c.expect("+OK 5 messages")
}

// TestPOP3dUIDLStable: UIDLs stay the same across sessions, after RETR
// marked a message seen, after another program added a flag, and after other
// messages were deleted.
func TestPOP3dUIDLStable(t *testing.T) {
	root, _ := pop3Root(t, true)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	steps := [][]any{step("user", "alice@example.org"), step("pass_", "secret"), step("uidl"), step("retr", 5), step("top", 4, 0), step("quit")}
	_, first := poplib(t, srv.addr, "plain", "", steps...)
	if first[2].Err != "" {
		t.Fatalf("uidl: %s", first[2].Err)
	}
	srv.waitSession(t, 1)
	files := pop3Files(t, root)
	var delivered string
	for _, f := range files {
		switch {
		case strings.HasPrefix(f, "1000000004."):
			if f != "1000000004.P1.other:2," {
				t.Errorf("TOP changed the flags: %s", f)
			}
		case !strings.Contains(f, ".other"):
			delivered = f
		}
	}
	if !strings.HasSuffix(delivered, ":2,S") {
		t.Errorf("RETR 5 did not mark %q seen", delivered)
	}
	want := uidlLines(t, first[2])
	if len(want) != 5 {
		t.Fatalf("first UIDL listing %q, want 5 lines", want)
	}
	// An IMAP client flags message 1.
	cur := filepath.Join(pop3Maildir(root), "cur")
	if err := os.Rename(filepath.Join(cur, "1000000001.P1.other:2,"), filepath.Join(cur, "1000000001.P1.other:2,F")); err != nil {
		t.Fatal(err)
	}
	_, second := poplib(t, srv.addr, "plain", "", steps...)
	if got := uidlLines(t, second[2]); !slices.Equal(got, want) {
		t.Errorf("UIDL after a flag change = %q, want %q", got, want)
	}
	// Messages 2 and 4 are deleted, one by POP3, one by another program.
	poplib(t, srv.addr, "plain", "", step("user", "alice@example.org"), step("pass_", "secret"), step("dele", 2), step("quit"))
	if err := os.Remove(filepath.Join(cur, "1000000004.P1.other:2,")); err != nil {
		t.Fatal(err)
	}
	_, third := poplib(t, srv.addr, "plain", "", step("user", "alice@example.org"), step("pass_", "secret"), step("uidl"), step("quit"))
	var kept []string
	for i, l := range []int{0, 2, 4} {
		_, uid, _ := strings.Cut(want[l], " ")
		kept = append(kept, fmt.Sprintf("%d %s", i+1, uid))
	}
	if got := uidlLines(t, third[2]); !slices.Equal(got, kept) {
		t.Errorf("UIDL after deleting messages 2 and 4 = %q, want %q", got, kept)
	}
}

// uidlLines returns the lines of a poplib uidl() result.
func uidlLines(t *testing.T, r poplibResult) []string {
	t.Helper()
	if r.Err != "" {
		t.Fatalf("uidl: %s", r.Err)
	}
	res, _ := r.OK.([]any)
	if len(res) != 3 {
		t.Fatalf("uidl() = %v", r.OK)
	}
	lines, _ := res[1].([]any)
	return anyStrings(lines)
}

// TestPOP3dInUseAndKill9: a second pop3d process sees the mailbox locked
// while the first serves it, and free as soon as the first is killed -9.
func TestPOP3dInUseAndKill9(t *testing.T) {
	root, _ := pop3Root(t, true)
	holder := startPOP3d(t, root, "--allow-plaintext-loopback")
	other := startPOP3d(t, root, "--allow-plaintext-loopback")
	c := dialPOP3(t, holder.addr)
	c.login()
	c.send("DELE 1")
	c.expect("+OK message 1 deleted\r\n")

	d := dialPOP3(t, other.addr)
	d.send("USER alice@example.org")
	d.expect("+OK send PASS\r\n")
	d.send("PASS secret")
	d.expect("-ERR [IN-USE] mailbox in use by another POP3 session\r\n")

	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-holder.done
	holder.cmd.Wait()
	// The kernel dropped the flock with the process: no stale lock.
	d.send("USER alice@example.org")
	d.expect("+OK send PASS\r\n")
	d.send("PASS secret")
	d.expect("+OK 5 messages")
	d.r.ReadString('\n')
	d.send("QUIT")
	d.expect("+OK bye, 0 messages deleted\r\n")
	if n := len(pop3Files(t, root)); n != 5 {
		t.Errorf("after kill -9 mid-session cur/ has %d files, want 5", n)
	}
}

func TestPOP3dDeleteOnlyAtQuit(t *testing.T) {
	root, _ := pop3Root(t, true)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	// A dropped connection deletes nothing.
	_, res := poplib(t, srv.addr, "plain", "", step("user", "alice@example.org"), step("pass_", "secret"),
		step("dele", 1), step("dele", 2), step("drop"))
	if res[3].Err != "" {
		t.Fatalf("dele: %s", res[3].Err)
	}
	if l := srv.waitSession(t, 1); !strings.Contains(l, "deleted=0 result=dropped") {
		t.Errorf("session log = %q", l)
	}
	if n := len(pop3Files(t, root)); n != 5 {
		t.Errorf("after DELE and a dropped connection cur/ has %d files, want 5", n)
	}
	// QUIT removes, also when another program removed one meanwhile.
	c := dialPOP3(t, srv.addr)
	c.login()
	c.send("DELE 1")
	c.expect("+OK message 1 deleted\r\n")
	c.send("DELE 2")
	c.expect("+OK message 2 deleted\r\n")
	if err := os.Remove(filepath.Join(pop3Maildir(root), "cur", "1000000002.P1.other:2,")); err != nil {
		t.Fatal(err)
	}
	c.send("QUIT")
	c.expect("+OK bye, 2 messages deleted\r\n")
	srv.waitSession(t, 2)
	files := pop3Files(t, root)
	if len(files) != 3 || slices.ContainsFunc(files, func(f string) bool { return strings.HasPrefix(f, "1000000001.") }) {
		t.Errorf("cur/ after DELE 1, DELE 2, QUIT = %q", files)
	}
}

func TestPOP3dSTLSRequired(t *testing.T) {
	root, cert := pop3Root(t, false)
	srv := startPOP3d(t, root)
	steps := [][]any{step("capa"), step("user", "alice@example.org"), step("stls"), step("capa"),
		step("user", "alice@example.org"), step("pass_", "secret"), step("stat"), step("quit")}
	_, res := poplib(t, srv.addr, "stls", cert, steps...)
	before, _ := res[0].OK.(map[string]any)
	if _, ok := before["STLS"]; !ok || before["USER"] != nil || before["SASL"] != nil {
		t.Errorf("CAPA before STLS = %v, want STLS and no USER or SASL", res[0].OK)
	}
	wantErr(t, res, steps, 1, "-ERR [AUTH] login only over TLS: use STLS first")
	wantOK(t, res, steps, 2, "+OK begin TLS negotiation")
	after, _ := res[3].OK.(map[string]any)
	if _, ok := after["STLS"]; ok || after["USER"] == nil {
		t.Errorf("CAPA after STLS = %v, want USER and no STLS", res[3].OK)
	}
	if r, _ := res[5].OK.(string); !strings.HasPrefix(r, "+OK 5 messages (") {
		t.Errorf("pass_ after STLS = %v %q", res[5].OK, res[5].Err)
	}
	if !strings.Contains(srv.waitSession(t, 1), "user=alice@example.org tls=true") {
		t.Errorf("session log = %q", srv.lines())
	}
}

func TestPOP3dImplicitTLS(t *testing.T) {
	root, cert := pop3Root(t, false)
	srv := startPOP3d(t, root, "--tls-implicit")
	steps := [][]any{step("capa"), step("user", "alice@example.org"), step("pass_", "secret"), step("stat"), step("quit")}
	welcome, res := poplib(t, srv.addr, "ssl", cert, steps...)
	if welcome != "+OK pop.test POP3 server ready" {
		t.Errorf("welcome = %q", welcome)
	}
	caps, _ := res[0].OK.(map[string]any)
	if _, ok := caps["STLS"]; ok || caps["USER"] == nil {
		t.Errorf("CAPA over implicit TLS = %v, want USER and no STLS", res[0].OK)
	}
	if r, _ := res[2].OK.(string); !strings.HasPrefix(r, "+OK 5 messages (") {
		t.Errorf("pass_ = %v %q", res[2].OK, res[2].Err)
	}
	if !strings.Contains(srv.waitSession(t, 1), "tls=true retrieved=0 deleted=0 result=quit") {
		t.Errorf("session log = %q", srv.lines())
	}
}

// TestPOP3dSocketActivation runs pop3d the inetd way (one process per
// connection on stdin/stdout) under systemd-socket-activate.
func TestPOP3dSocketActivation(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	root, _ := pop3Root(t, true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(ssa, "--inetd", "--accept", "-l", addr,
		Bin(t, "pop3d"), "--root", root, "--hostname", "pop.test", "--allow-plaintext-loopback")
	srv := runDaemon(t, cmd, func(line string) string {
		if strings.HasPrefix(line, "Listening on "+addr) {
			return addr
		}
		return ""
	})
	for i := range 2 {
		_, res := poplib(t, srv.addr, "plain", "", step("user", "alice@example.org"), step("pass_", "secret"), step("dele", 1), step("quit"))
		if res[3].OK != "+OK bye, 1 messages deleted" {
			t.Errorf("connection %d: %v", i+1, res)
		}
		if l := srv.waitSession(t, i+1); !strings.Contains(l, "user=alice@example.org tls=false retrieved=0 deleted=1 result=quit") {
			t.Errorf("session log = %q", l)
		}
	}
	if n := len(pop3Files(t, root)); n != 3 {
		t.Errorf("after two sessions deleting one message each, cur/ has %d files, want 3", n)
	}
}

// TestPOP3dFetchmail fetches with fetchmail over STLS: with "keep" and UIDLs
// a second run finds nothing new, a message delivered meanwhile is fetched
// alone, and a run without "keep" empties the mailbox.
func TestPOP3dFetchmail(t *testing.T) {
	fetchmail, err := exec.LookPath("fetchmail")
	if err != nil {
		t.Skip("fetchmail not installed (apt-get install fetchmail)")
	}
	root, cert := pop3Root(t, false)
	srv := startPOP3d(t, root)
	_, port, _ := net.SplitHostPort(srv.addr)
	home := t.TempDir()
	out := filepath.Join(home, "out")
	run := func(keep string) int {
		t.Helper()
		rc := filepath.Join(home, "rc")
		pop3WriteFile(t, rc, fmt.Sprintf(`set no syslog
poll localhost with proto POP3 service %s uidl
  user "alice@example.org" there with password "secret" is "root" here
  %s sslcertck sslcertfile "%s"
  mda "cat >> %s"
`, port, keep, cert, out))
		cmd := exec.Command(fetchmail, "--nodetach", "-f", rc, "--pidfile", filepath.Join(home, "pid"), "--idfile", filepath.Join(home, "ids"))
		cmd.Env = append(os.Environ(), "HOME="+home)
		output, err := cmd.CombinedOutput()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("fetchmail (%s): exit %d\n%s", keep, code, output)
		return code
	}
	count := func() int {
		data, _ := os.ReadFile(out)
		return strings.Count(string(data), "\nSubject: ") + strings.Count(string(data), "\nX-Only: ")
	}
	// fetchmail exits 0 when it fetched mail, 1 when there was none.
	if code := run("keep"); code != 0 || count() != 5 {
		t.Fatalf("first run: exit %d, %d messages fetched, want 0 and 5", code, count())
	}
	if code := run("keep"); code != 1 || count() != 5 {
		t.Errorf("second run: exit %d, %d messages in total, want 1 and still 5", code, count())
	}
	deliver := exec.Command(Bin(t, "deliver"), "--root", root, "alice@example.org")
	deliver.Stdin = strings.NewReader("Subject: later\n\nmore\n")
	if o, err := deliver.CombinedOutput(); err != nil {
		t.Fatalf("deliver: %v\n%s", err, o)
	}
	if code := run("keep"); code != 0 || count() != 6 {
		t.Errorf("third run: exit %d, %d messages in total, want 0 and 6", code, count())
	}
	if code := run("nokeep fetchall"); code != 0 {
		t.Errorf("run without keep: exit %d", code)
	}
	if n := len(pop3Files(t, root)); n != 0 {
		t.Errorf("after a run without keep cur/ has %d files, want 0", n)
	}
}

// TestPOP3dTemporaryFailure: an unreadable users file gives [SYS/TEMP] and a
// log line for the operator; it is read again at the next login.
func TestPOP3dTemporaryFailure(t *testing.T) {
	root, _ := pop3Root(t, true)
	srv := startPOP3d(t, root, "--allow-plaintext-loopback")
	usersFile := filepath.Join(root, "etc", "users")
	good, err := os.ReadFile(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	pop3WriteFile(t, usersFile, "this line has no colon\n")
	c := dialPOP3(t, srv.addr)
	c.send("USER alice@example.org")
	c.expect("+OK send PASS\r\n")
	c.send("PASS secret")
	c.expect("-ERR [SYS/TEMP] authentication temporarily unavailable\r\n")
	srv.waitLog(t, func(l string) string {
		if strings.HasPrefix(l, "pop3d: error client=") && strings.Contains(l, "malformed line") {
			return l
		}
		return ""
	})
	pop3WriteFile(t, usersFile, string(good))
	c.login()
}

// TestPOP3dNoConnectionsIsUsageError: started by hand without --listen (stdin
// not a socket), pop3d exits 64 and says what to give.
func TestPOP3dNoConnectionsIsUsageError(t *testing.T) {
	root, _ := pop3Root(t, true)
	cmd := exec.Command(Bin(t, "pop3d"), "--root", root)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 64 {
		t.Fatalf("pop3d without --listen: %v, want exit status 64\n%s", err, out)
	}
	if !strings.Contains(string(out), "use --listen ADDR") {
		t.Errorf("pop3d without --listen said %q, want it to name --listen", out)
	}
}

// privateDovecot is Dovecot's POP3 server run from a configuration in a
// temporary directory, on a loopback port, serving one Maildir for any user
// with the password "secret". It runs as root (Dovecot's master needs it)
// and reads the mail as the user nobody.
type privateDovecot struct {
	t      *testing.T
	conf   string
	addr   string
	nobody *user.User
}

func startDovecotPOP3(t *testing.T, maildir string) *privateDovecot {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/dovecot"); err != nil {
		t.Skip("Dovecot is not installed (/usr/sbin/dovecot; apt-get install dovecot-pop3d): cannot compare with its pop3")
	}
	if _, err := os.Stat("/usr/lib/dovecot/pop3"); err != nil {
		t.Skip("Dovecot's pop3 is not installed (apt-get install dovecot-pop3d)")
	}
	if os.Geteuid() != 0 {
		t.Skip("Dovecot's master process must be started as root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "dovecot-pop3-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A free port: Dovecot takes it from its configuration.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	d := &privateDovecot{t: t, conf: filepath.Join(dir, "dovecot.conf"), addr: addr, nobody: nobody}
	conf := fmt.Sprintf(`base_dir = %[1]s/base
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_login_user = nobody
default_internal_user = root
mail_location = maildir:%[2]s
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[3]s
  }
}
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=%[4]s gid=%[5]s home=%[1]s/home
}
`, dir, maildir, port, nobody.Uid, nobody.Gid)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// dovecot forks into the background; the pipe it inherits would keep
	// CombinedOutput waiting, so its output goes to the log file.
	if err := exec.Command("/usr/sbin/dovecot", "-c", d.conf).Run(); err != nil {
		t.Fatalf("starting dovecot: %v\n%s", err, d.log())
	}
	t.Cleanup(func() {
		exec.Command("/usr/sbin/dovecot", "-c", d.conf, "stop").Run()
		if t.Failed() {
			t.Logf("dovecot log:\n%s", d.log())
		}
	})
	// Ready when it greets.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			greeting, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(greeting, "+OK") {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot does not answer on %s: %v\n%s", addr, err, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *privateDovecot) log() string {
	data, _ := os.ReadFile(filepath.Join(filepath.Dir(d.conf), "dovecot.log"))
	return string(data)
}

// doveadm runs doveadm on the Maildir (as nobody, through the running
// Dovecot's userdb).
func (d *privateDovecot) doveadm(args ...string) {
	d.t.Helper()
	args = append([]string{"-c", d.conf}, args...)
	if out, err := exec.Command("doveadm", args...).CombinedOutput(); err != nil || strings.Contains(string(out), "Error") {
		d.t.Fatalf("doveadm %q: %v\n%s", args, err, out)
	}
}

// chownTree gives everything under dir to user u, so that Dovecot's pop3
// and pop3d --user nobody can both write the Maildir.
func chownTree(t *testing.T, dir string, u *user.User) {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// popListing logs in at addr and returns the UIDL and LIST lines.
func popListing(t *testing.T, addr string) (uidl, list []string) {
	t.Helper()
	steps := [][]any{step("user", "alice@example.org"), step("pass_", "secret"), step("uidl"), step("list"), step("quit")}
	_, res := poplib(t, addr, "plain", "", steps...)
	uidl = uidlLines(t, res[2])
	l, _ := res[3].OK.([]any)
	if len(l) != 3 {
		t.Fatalf("list() = %v, %s", res[3].OK, res[3].Err)
	}
	lines, _ := l[1].([]any)
	return uidl, anyStrings(lines)
}

// TestPOP3dUIDLsAsDovecot: on a Maildir whose dovecot-uidlist Dovecot wrote
// (with a gap in the UIDs from an expunge), pop3d lists exactly the UIDLs and
// sizes Dovecot's own pop3 lists, whichever of the two sees new messages
// first and gives them their UIDs.
func TestPOP3dUIDLsAsDovecot(t *testing.T) {
	dir, err := os.MkdirTemp("", "pop3d-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, _ := pop3RootIn(t, dir, true)
	box := pop3Maildir(root)
	dovecot := startDovecotPOP3(t, box)
	chownTree(t, root, dovecot.nobody)
	// Dovecot numbers the five messages, then expunges UID 2.
	dovecot.doveadm("expunge", "-u", "alice@example.org", "mailbox", "INBOX", "uid", "2")
	if _, err := os.Stat(filepath.Join(box, "dovecot-uidlist")); err != nil {
		t.Fatalf("doveadm wrote no dovecot-uidlist: %v", err)
	}
	srv := startPOP3d(t, root, "--allow-plaintext-loopback", "--user", "nobody")

	deliver := func(name, content string) {
		pop3WriteFile(t, filepath.Join(box, "new", name), content)
		chownTree(t, box, dovecot.nobody)
	}
	same := func(first, second string, want int) {
		t.Helper()
		uidl1, list1 := popListing(t, first)
		uidl2, list2 := popListing(t, second)
		if len(uidl1) != want {
			t.Errorf("%s lists %d UIDLs %q, want %d", first, len(uidl1), uidl1, want)
		}
		if !slices.Equal(uidl1, uidl2) {
			t.Errorf("UIDL differs:\n%s: %q\n%s: %q", first, uidl1, second, uidl2)
		}
		if !slices.Equal(list1, list2) {
			t.Errorf("LIST differs:\n%s: %q\n%s: %q", first, list1, second, list2)
		}
	}
	// A message Dovecot numbers first, then one pop3d numbers first.
	deliver("1000000010.P1.other", "Subject: six\n\nsix\n")
	same(dovecot.addr, srv.addr, 5)
	deliver("1000000011.P1.other", "Subject: seven\n\n.seven\n")
	same(srv.addr, dovecot.addr, 6)
	validity := pop3UIDValidity(t, root)
	uidl, _ := popListing(t, srv.addr)
	if want := fmt.Sprintf("1 %08x%08x", 1, validity); uidl[0] != want {
		t.Errorf("first UIDL %q, want %q", uidl[0], want)
	}
	if want := fmt.Sprintf("2 %08x%08x", 3, validity); uidl[1] != want {
		t.Errorf("second UIDL %q, want %q (UID 2 was expunged)", uidl[1], want)
	}
}
