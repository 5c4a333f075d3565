package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/postkit/postkit/selfsigned"
)

const (
	imapUser     = "alice@example.org"
	imapPassword = "secret"
)

// imapRoot makes a root with alice@example.org (through mkuser, so with
// the Drafts, Sent, Trash, Junk and Archive folders), two messages
// delivered by the deliver binary and a certificate for localhost and
// 127.0.0.1. It returns the root and the certificate's path.
func imapRoot(t *testing.T) (root, cert string) {
	t.Helper()
	root = t.TempDir()
	mkuser := exec.Command(Bin(t, "mkuser"), "--root", root, "add", imapUser)
	mkuser.Stdin = strings.NewReader(imapPassword + "\n")
	if out, err := mkuser.CombinedOutput(); err != nil {
		t.Fatalf("mkuser add: %v\n%s", err, out)
	}
	imapDeliver(t, root, "From: bob@example.net\nSubject: first\n\nHello Alice\n")
	imapDeliver(t, root, "From: carol@example.net\nSubject: second\n\nInvoice attached\n")
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert = filepath.Join(root, "etc", "tls", "cert.pem")
	for p, data := range map[string][]byte{cert: certPEM, filepath.Join(root, "etc", "tls", "key.pem"): keyPEM} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root, cert
}

func imapDeliver(t *testing.T, root, msg string) {
	t.Helper()
	deliver := exec.Command(Bin(t, "deliver"), "--root", root, imapUser)
	deliver.Stdin = strings.NewReader(msg)
	if out, err := deliver.CombinedOutput(); err != nil {
		t.Fatalf("deliver: %v\n%s", err, out)
	}
}

func imapMaildir(root string) string { return filepath.Join(root, "mail", "example.org", "alice") }

// startIMAPd runs imapd on root with --listen 127.0.0.1:0 and returns once
// it logged its address.
func startIMAPd(t *testing.T, root string, args ...string) *daemon {
	t.Helper()
	args = append([]string{"--root", root, "--listen", "127.0.0.1:0", "--login-failure-delay", "1ms"}, args...)
	return runDaemon(t, exec.Command(Bin(t, "imapd"), args...), listenAddr)
}

func imapTLSConfig(t *testing.T, cert string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// imapEvents collects unilateral responses.
type imapEvents struct {
	mu       sync.Mutex
	exists   []uint32
	expunged []uint32
	flags    map[uint32][]imap.Flag
	changed  chan struct{}
}

func newIMAPEvents() *imapEvents {
	return &imapEvents{flags: map[uint32][]imap.Flag{}, changed: make(chan struct{}, 100)}
}

func (e *imapEvents) handler() *imapclient.UnilateralDataHandler {
	signal := func() {
		select {
		case e.changed <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			e.mu.Lock()
			e.expunged = append(e.expunged, seq)
			e.mu.Unlock()
			signal()
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				e.mu.Lock()
				e.exists = append(e.exists, *d.NumMessages)
				e.mu.Unlock()
				signal()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.flags[buf.SeqNum] = buf.Flags
			e.mu.Unlock()
			signal()
		},
	}
}

func (e *imapEvents) wait(t *testing.T, what string, cond func(e *imapEvents) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-timeout:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %s: exists %v expunged %v flags %v", what, e.exists, e.expunged, e.flags)
		}
	}
}

// TestIMAPdClient drives imapd over STARTTLS with go-imap's client through
// every command it implements.
func TestIMAPdClient(t *testing.T) {
	root, cert := imapRoot(t)
	srv := startIMAPd(t, root)

	plain, err := imapclient.DialInsecure(srv.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Login(imapUser, imapPassword).Wait(); err == nil {
		t.Error("LOGIN without TLS from loopback succeeded without --allow-plaintext-loopback")
	}
	plain.Close()

	c, err := imapclient.DialStartTLS(srv.addr, &imapclient.Options{TLSConfig: imapTLSConfig(t, cert)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	imapCommands(t, c, root)
	l := srv.waitContains(t, "imapd: session client=127.0.0.1:")
	if !strings.Contains(l, "user=- tls=false") {
		t.Errorf("first session's log line = %q", l)
	}
	l = srv.waitContains(t, "user=alice@example.org tls=true")
	if !strings.Contains(l, "appended=1 copied=2 expunged=2") || !strings.Contains(l, "result=ok") {
		t.Errorf("session log line = %q", l)
	}
}

// imapCommands runs every command imapd serves, through go-imap's client,
// on c, a connection over TLS that has not logged in yet, to the root made
// by imapRoot.
func imapCommands(t *testing.T, c *imapclient.Client, root string) {
	t.Helper()
	if err := c.Authenticate(sasl.NewPlainClient("", imapUser, imapPassword)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.Enable(imap.CapIMAP4rev2, imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatalf("ENABLE: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapIMAP4rev2) || !caps.Has(imap.CapMove) {
		t.Errorf("CAPABILITY = %v, %v", caps, err)
	}
	if ns, err := c.Namespace().Wait(); err != nil || len(ns.Personal) != 1 {
		t.Errorf("NAMESPACE = %+v, %v", ns, err)
	}
	boxes, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
		if b.Mailbox == "Sent" && !slices.Contains(b.Attrs, imap.MailboxAttrSent) {
			t.Errorf("Sent listed without \\Sent: %v", b.Attrs)
		}
		if b.Mailbox == "INBOX" && (b.Status == nil || *b.Status.NumMessages != 2) {
			t.Errorf("INBOX LIST-STATUS = %+v", b.Status)
		}
	}
	if !slices.Equal(names, []string{"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}) {
		t.Errorf("LIST = %v", names)
	}
	if err := c.Create("Projekte/Ärger", nil).Wait(); err != nil {
		t.Fatalf("CREATE with UTF-8: %v", err)
	}
	if _, err := os.Stat(filepath.Join(imapMaildir(root), ".Projekte.&AMQ-rger")); err != nil {
		t.Errorf("folder not stored in modified UTF-7: %v", err)
	}
	if err := c.Subscribe("Projekte/Ärger").Wait(); err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@example.org\r\nSubject: draft\r\n\r\nunfinished\r\n"
	app := c.Append("Drafts", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	app.Write([]byte(msg))
	app.Close()
	ad, err := app.Wait()
	if err != nil || ad.UID != 1 {
		t.Fatalf("APPEND = %+v, %v", ad, err)
	}
	st, err := c.Status("Drafts", &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.Size != int64(len(msg)) {
		t.Errorf("STATUS Drafts = %+v, %v", st, err)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 2 {
		t.Fatalf("SELECT = %+v, %v", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("FETCH = %v, %v", msgs, err)
	}
	if body := string(msgs[0].BodySection[0].Bytes); !strings.HasSuffix(body, "\r\n\r\nHello Alice\r\n") || int64(len(body)) != msgs[0].RFC822Size {
		t.Errorf("BODY[] = %q (RFC822.SIZE %d)", body, msgs[0].RFC822Size)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) || msgs[1].Envelope.Subject != "second" {
		t.Errorf("after BODY[]: flags %v, envelope %+v", msgs[0].Flags, msgs[1].Envelope)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}, Body: []string{"invoice"}}, nil).Wait()
	if err != nil || res.AllUIDs()[0] != 2 || len(res.AllUIDs()) != 1 {
		t.Errorf("UID SEARCH FLAGGED BODY invoice = %+v, %v", res, err)
	}
	cd, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait()
	if err != nil || cd.DestUIDs.String() != "1" {
		t.Errorf("COPY = %+v, %v", cd, err)
	}
	md, err := c.Move(imap.SeqSetNum(2), "Projekte/Ärger").Wait()
	if err != nil || md.SourceUIDs.String() != "2" {
		t.Errorf("MOVE = %+v, %v", md, err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UIDExpunge(imap.UIDSetNum(1)).Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Projekte/Ärger", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE: %v", err)
	}
	moved, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil || len(moved) != 1 || moved[0].Envelope.Subject != "second" || !slices.Contains(moved[0].Flags, "$Important") {
		t.Errorf("moved message = %+v, %v", moved, err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
		t.Error("STORE after EXAMINE succeeded")
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Projekte", "Alt", nil).Wait(); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	if err := c.Delete("Alt/Ärger").Wait(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if err := c.Unsubscribe("Alt/Ärger").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIMAPdCommandsInEveryServingMode runs the command suite of
// TestIMAPdClient against imapd started by each real launcher: --listen
// with implicit TLS, systemd socket activation with Accept=no and
// Accept=yes (systemd-socket-activate), and tcpserver as inetd does it
// (the connection on standard input and output).
func TestIMAPdCommandsInEveryServingMode(t *testing.T) {
	ssa, _ := exec.LookPath("systemd-socket-activate")
	tcpserver, _ := exec.LookPath("tcpserver")
	freeAddr := func(t *testing.T) (string, string) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		return l.Addr().String(), port
	}
	listening := func(addr string) func(string) string {
		return func(line string) string {
			if strings.HasPrefix(line, "Listening on "+addr) || strings.Contains(line, "tcpserver: status:") {
				return addr
			}
			return ""
		}
	}
	for _, mode := range []struct {
		name     string
		launcher string
		implicit bool
		start    func(t *testing.T, root string) *daemon
	}{
		{"listen, implicit TLS", "", true, func(t *testing.T, root string) *daemon {
			return startIMAPd(t, root, "--tls-implicit")
		}},
		{"systemd Accept=no", ssa, false, func(t *testing.T, root string) *daemon {
			addr, _ := freeAddr(t)
			return runDaemon(t, exec.Command(ssa, "-l", addr, Bin(t, "imapd"), "--root", root), listening(addr))
		}},
		{"systemd Accept=yes, implicit TLS", ssa, true, func(t *testing.T, root string) *daemon {
			addr, _ := freeAddr(t)
			return runDaemon(t, exec.Command(ssa, "--accept", "-l", addr, Bin(t, "imapd"), "--root", root, "--tls-implicit"), listening(addr))
		}},
		{"inetd (tcpserver)", tcpserver, false, func(t *testing.T, root string) *daemon {
			addr, port := freeAddr(t)
			return runDaemon(t, exec.Command(tcpserver, "-v", "-R", "-H", "127.0.0.1", port, Bin(t, "imapd"), "--root", root), listening(addr))
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			if mode.launcher == "" && mode.name != "listen, implicit TLS" {
				t.Skip("launcher not installed")
			}
			root, cert := imapRoot(t)
			srv := mode.start(t, root)
			opts := &imapclient.Options{TLSConfig: imapTLSConfig(t, cert)}
			var c *imapclient.Client
			var err error
			if mode.implicit {
				c, err = imapclient.DialTLS(srv.addr, opts)
			} else {
				c, err = imapclient.DialStartTLS(srv.addr, opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			imapCommands(t, c, root)
		})
	}
}

// imaplibScript runs steps with Python's imaplib and prints each result as
// [typ, data] with bytes as Latin-1 strings, or ["error", message].
const imaplibScript = `
import imaplib, json, ssl, sys
spec = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=spec["cafile"])
ctx.check_hostname = False
host, port = spec["addr"].rsplit(":", 1)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=60)
def conv(x):
    if isinstance(x, bytes):
        return x.decode("latin-1")
    if isinstance(x, (list, tuple)):
        return [conv(i) for i in x]
    return x
out = []
for step in spec["steps"]:
    op, args = step[0], step[1:]
    try:
        if op == "append":
            r = m.append(args[0], args[1], None, args[2].encode("latin-1"))
        else:
            r = getattr(m, op)(*args)
        out.append(conv(r))
    except (imaplib.IMAP4.error, imaplib.IMAP4.abort) as e:
        out.append(["error", str(e)])
print(json.dumps(out))
`

// TestIMAPdImaplib talks to imapd over implicit TLS with Python's imaplib.
func TestIMAPdImaplib(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	root, cert := imapRoot(t)
	srv := startIMAPd(t, root, "--tls-implicit")
	steps := [][]any{
		{"login", imapUser, "wrong"},
		{"login", imapUser, imapPassword},
		{"select", "INBOX"},
		{"fetch", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"},
		{"search", nil, "UNSEEN", "FROM", "carol"},
		{"store", "1", "+FLAGS", `(\Deleted)`},
		{"expunge"},
		{"append", "Sent", `(\Seen)`, "Subject: sent by imaplib\r\n\r\nhi\r\n"},
		{"list", `""`, `"*"`},
		{"lsub", `""`, `"*"`},
		{"subscribe", "Sent"},
		{"lsub", `""`, `"*"`},
		{"status", "Sent", "(MESSAGES UNSEEN)"},
		{"uid", "FETCH", "1:*", "(FLAGS)"},
		{"close"},
		{"select", `"../etc"`},
		{"logout"},
	}
	spec, _ := json.Marshal(map[string]any{"addr": srv.addr, "cafile": cert, "steps": steps})
	cmd := exec.Command("python3", "-c", imaplibScript, string(spec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var res [][]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	text := func(i int) string { b, _ := json.Marshal(res[i]); return string(b) }
	checks := []struct {
		step int
		want string
	}{
		{0, `"error"`},
		{1, `"OK"`},
		{2, `["OK",["2"]]`},
		{3, `Subject: first`},
		{4, `["OK",["2"]]`},
		{5, `\\Deleted`},
		{6, `["OK",["1"]]`},
		{7, `[APPENDUID `},
		{8, `(\\HasNoChildren \\Sent) \"/\" \"Sent\"`},
		{9, `["OK",[null]]`},
		{11, `\\Subscribed \\Sent) \"/\" \"Sent\"`},
		{12, `\"Sent\" (MESSAGES 1 UNSEEN 0)`},
		// Message 2 came in new/ and this session took it: \Recent for
		// an IMAP4rev1 client.
		{13, `UID 2 FLAGS (\\Recent)`},
		{14, `"OK"`},
		{15, `["NO",["[CANNOT] Invalid mailbox name \"../etc\": contains '.'"]]`},
		{16, `"BYE"`},
	}
	for _, c := range checks {
		if !strings.Contains(text(c.step), c.want) {
			t.Errorf("step %d %v = %s, want it to contain %s", c.step, steps[c.step], text(c.step), c.want)
		}
	}
	srv.waitContains(t, "user=alice@example.org tls=true appended=1 copied=0 expunged=1")
}

// TestIMAPdCrossProcess: two imapd processes and deliver on one Maildir.
// A session IDLE in one process sees a delivery (EXISTS), a STORE made
// through the other process (FETCH FLAGS) and its EXPUNGE.
func TestIMAPdCrossProcess(t *testing.T) {
	root, _ := imapRoot(t)
	a := startIMAPd(t, root, "--allow-plaintext-loopback")
	b := startIMAPd(t, root, "--allow-plaintext-loopback")

	ev := newIMAPEvents()
	watcher, err := imapclient.DialInsecure(a.addr, &imapclient.Options{UnilateralDataHandler: ev.handler()})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if err := watcher.Login(imapUser, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}

	imapDeliver(t, root, "Subject: third\n\nnew mail\n")
	ev.wait(t, "EXISTS 3 after a delivery", func(e *imapEvents) bool { return slices.Contains(e.exists, 3) })

	actor, err := imapclient.DialInsecure(b.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer actor.Close()
	if err := actor.Login(imapUser, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := actor.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := actor.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered, "Followup"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "FETCH FLAGS from the other process", func(e *imapEvents) bool {
		return slices.Contains(e.flags[3], imap.FlagAnswered) && slices.Contains(e.flags[3], "Followup")
	})
	if err := actor.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := actor.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXPUNGE from the other process", func(e *imapEvents) bool { return slices.Equal(e.expunged, []uint32{1}) })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := watcher.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 2 || msgs[0].UID != 2 || msgs[1].UID != 3 {
		t.Errorf("after the changes: %+v, %v; want UIDs 2 and 3", msgs, err)
	}
}

// TestIMAPdMbsync syncs a mailbox both ways with mbsync (isync): mail and
// folders down, flags, a new local folder and message up.
func TestIMAPdMbsync(t *testing.T) {
	if _, err := exec.LookPath("mbsync"); err != nil {
		t.Skip("mbsync not installed")
	}
	root, cert := imapRoot(t)
	srv := startIMAPd(t, root, "--tls-implicit")
	host, port, _ := net.SplitHostPort(srv.addr)
	local := t.TempDir()
	conf := filepath.Join(t.TempDir(), "mbsyncrc")
	rc := fmt.Sprintf(`IMAPAccount postkit
Host %s
Port %s
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore remote
Account postkit

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
`, host, port, imapUser, imapPassword, cert, local, local)
	if err := os.WriteFile(conf, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	mbsync := func() {
		t.Helper()
		out, err := exec.Command("mbsync", "-c", conf, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}
	mbsync()
	inbox, _ := filepath.Glob(filepath.Join(local, "INBOX", "cur", "*"))
	newMail, _ := filepath.Glob(filepath.Join(local, "INBOX", "new", "*"))
	if len(inbox)+len(newMail) != 2 {
		t.Fatalf("after the first sync the local INBOX has %d messages, want 2", len(inbox)+len(newMail))
	}
	for _, f := range []string{"Sent", "Trash", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, f, "cur")); err != nil {
			t.Errorf("folder %s not synced down: %v", f, err)
		}
	}
	// Flag a message locally (as a mail reader does) and file a new
	// message into a new local folder.
	all := append(inbox, newMail...)
	slices.Sort(all)
	first := all[0]
	flagged := first
	if i := strings.Index(first, ":2,"); i >= 0 {
		flagged = first[:i] + ":2,FS"
	} else {
		flagged = filepath.Join(local, "INBOX", "cur", filepath.Base(first)+":2,FS")
	}
	if err := os.Rename(first, flagged); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(local, "Notes", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(local, "Notes", "cur", "1700000000.1.local:2,S"), []byte("Subject: note\n\nwritten offline\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mbsync()

	c, err := imapclient.DialTLS(srv.addr, &imapclient.Options{TLSConfig: imapTLSConfig(t, cert)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged, imap.FlagSeen}}, nil).Wait()
	if err != nil || len(res.AllSeqNums()) != 1 {
		t.Errorf("flagged messages on the server after the sync: %+v, %v; want 1", res, err)
	}
	st, err := c.Status("Notes", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil || *st.NumMessages != 1 || *st.NumUnseen != 0 {
		t.Errorf("STATUS Notes = %+v, %v; want the local message, seen", st, err)
	}
	// A third run changes nothing on either side.
	before := imapTree(t, imapMaildir(root))
	mbsync()
	if after := imapTree(t, imapMaildir(root)); !slices.Equal(before, after) {
		t.Errorf("an idle sync changed the server's Maildir:\n%v\n%v", before, after)
	}
}

// imapTree lists the message files of a Maildir and its folders.
func imapTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"cur/*", "new/*", ".*/cur/*", ".*/new/*"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, p := range m {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

// TestIMAPdSocketActivation runs imapd the inetd way (one process per
// connection) under systemd-socket-activate, with implicit TLS.
func TestIMAPdSocketActivation(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed")
	}
	root, cert := imapRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(ssa, "--inetd", "--accept", "-l", addr, Bin(t, "imapd"), "--root", root, "--tls-implicit")
	srv := runDaemon(t, cmd, func(line string) string {
		if strings.HasPrefix(line, "Listening on "+addr) {
			return addr
		}
		return ""
	})
	for i := range 2 {
		c, err := imapclient.DialTLS(srv.addr, &imapclient.Options{TLSConfig: imapTLSConfig(t, cert)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(imapUser, imapPassword).Wait(); err != nil {
			t.Fatalf("connection %d: LOGIN: %v", i+1, err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(uint32(i+1)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Logout().Wait(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	srv.waitLog(t, func(l string) string {
		if strings.Count(strings.Join(srv.lines(), "\n"), "user=alice@example.org tls=true") >= 2 {
			return l
		}
		return ""
	})
	seen, _ := filepath.Glob(filepath.Join(imapMaildir(root), "cur", "*:2,S"))
	if len(seen) != 2 {
		t.Errorf("%d messages seen after two connections, want 2", len(seen))
	}
}
