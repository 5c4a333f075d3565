package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/remote/smtptest"
)

// svActivate stores script as user's active script with mkuser.
func svActivate(t *testing.T, root, user, script string) {
	t.Helper()
	mkuserOK(t, root, script, "sieve", "put", "--activate", user, "main")
}

// svDeliver runs deliver and wants exit 0; it returns deliver's log.
func svDeliver(t *testing.T, root, msg, sender, rcpt string) string {
	t.Helper()
	code, stderr := runDeliver(t, msg, "--root", root, "-f", sender, rcpt)
	if code != 0 {
		t.Fatalf("deliver -f %q %s = %d, %s; want 0", sender, rcpt, code, stderr)
	}
	return stderr
}

// svFiles lists the message files (new/ and cur/) of a user's folder, ""
// for INBOX, as paths relative to the folder.
func svFiles(t *testing.T, root, user, folder string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(user, "@")
	dir := filepath.Join(root, "mail", domain, local)
	if folder != "" {
		dir = filepath.Join(dir, "."+folder)
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

const svMsg = "From: Bob <bob@far.example>\nTo: alice@example.org\nSubject: hello\nMessage-ID: <sv1@far.example>\n\nbody\n"

func TestSieveFilesByHeaderAndEnvelope(t *testing.T) {
	root := testRoot(t, "")
	svActivate(t, root, "alice@example.org", `require ["fileinto", "envelope", "mailbox", "subaddress"];
if header :contains "List-Id" "go.lists.example" {
    fileinto :create "INBOX.lists.go";
    stop;
}
if envelope :is "from" "" {
    fileinto :create "Bounces";
    stop;
}
if envelope :detail "to" "shop" {
    fileinto :create "Shopping";
}
`)
	svDeliver(t, root, "List-Id: Go <go.lists.example>\n"+svMsg, "bob@far.example", "alice@example.org")
	svDeliver(t, root, svMsg, "", "alice@example.org")
	svDeliver(t, root, svMsg, "bob@far.example", "alice+shop@example.org")
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	for folder, want := range map[string]int{"lists.go": 1, "Bounces": 1, "Shopping": 1, "": 1} {
		if got := svFiles(t, root, "alice@example.org", folder); len(got) != want {
			t.Errorf("folder %q holds %q, want %d message", folder, got, want)
		}
	}
	list := filepath.Join(root, "mail", "example.org", "alice", ".lists.go")
	if _, err := os.Stat(filepath.Join(list, "maildirfolder")); err != nil {
		t.Errorf("the created folder is incomplete: %v", err)
	}
	files := svFiles(t, root, "alice@example.org", "lists.go")
	if len(files) == 1 {
		want := "Return-Path: <bob@far.example>\nDelivered-To: alice@example.org\nList-Id: Go <go.lists.example>\n" + svMsg
		if got := readFile(t, filepath.Join(list, files[0])); got != want {
			t.Errorf("filed message %q, want %q", got, want)
		}
	}
}

// svFlagsScript files into Lists with flags that imapd, Dovecot and
// every Maildir reader must see.
const svFlagsScript = `require ["fileinto", "imap4flags", "mailbox"];
fileinto :create :flags ["\\Seen", "\\Flagged", "$Important"] "Lists";
`

func TestSieveFlagsVisibleToIMAPReaders(t *testing.T) {
	root := testRoot(t, "")
	svActivate(t, root, "alice@example.org", svFlagsScript)
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	files := svFiles(t, root, "alice@example.org", "Lists")
	if len(files) != 1 || !strings.HasPrefix(files[0], "cur/") || !strings.HasSuffix(files[0], ":2,FSa") {
		t.Fatalf("Lists holds %q, want one file in cur/ with flags FSa", files)
	}
	dir := filepath.Join(root, "mail", "example.org", "alice", ".Lists")
	if got := readFile(t, filepath.Join(dir, uidlist.KeywordsFileName)); got != "0 $Important\n" {
		t.Errorf("dovecot-keywords = %q, want keyword a = $Important", got)
	}
	// imapd's view: the UID list lists the file with its flags.
	state, err := uidlist.Sync(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Entries) != 1 || !strings.HasSuffix(state.Entries[0].Filename, ":2,FSa") {
		t.Errorf("uidlist entries %+v, want the flagged file", state.Entries)
	}
}

// Dovecot, reading the same Maildir, shows the flags and the keyword.
func TestSieveFlagsDovecotSees(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Skip("doveadm is not installed: cannot compare with Dovecot")
	}
	// Not t.TempDir: Dovecot runs as nobody when we are root, and must
	// reach the Maildir.
	root, err := os.MkdirTemp("", "postkit-sieve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc", "users"), "alice@example.org:{BLF-CRYPT}$2y$05$Aj0TCk6SjZkxLQcnRaTgvuI8q4Ma0WEBjG5XUbgP0Bm7tyBWIfmFK::::::\n")
	writeFile(t, filepath.Join(root, "etc", "hostname"), "mx.example.org\n")
	svActivate(t, root, "alice@example.org", svFlagsScript)
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	home := filepath.Join(root, "mail", "example.org", "alice")
	conf := filepath.Join(root, "dovecot.conf")
	writeFile(t, conf, fmt.Sprintf("mail_location = maildir:%s\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\n", home))
	os.Chmod(conf, 0o644)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		err := filepath.WalkDir(filepath.Join(root, "mail"), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(doveadm, "-c", conf, "-f", "tab", "fetch", "flags", "mailbox", "Lists", "all")
	cmd.Env = []string{"USER=alice", "HOME=" + home, "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("doveadm fetch: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("doveadm fetch flags = %q, want a header and one message", out)
	}
	// \Recent is Dovecot's own: the message is new to it.
	flags := slices.DeleteFunc(strings.Fields(lines[1]), func(f string) bool { return f == `\Recent` })
	slices.Sort(flags)
	if strings.Join(flags, " ") != `$Important \Flagged \Seen` {
		t.Errorf("Dovecot sees flags %q, want $Important \\Flagged \\Seen", flags)
	}
}

// A redirect, from deliver and from sendq's own local delivery, reaches the
// remote address through sendq run with the original envelope sender.
func TestSieveRedirectThroughSendq(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n"})
	svActivate(t, root, "alice@example.org", `require ["copy", "fileinto", "mailbox"];
redirect :copy "carol@far.example";
fileinto :create "Lists";
`)
	log := svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	if !strings.Contains(log, "action=redirect from=<bob@far.example> to=carol@far.example queue=") {
		t.Errorf("deliver's log does not show the redirect:\n%s", log)
	}
	sqSend(t, root, strings.Replace(svMsg, "<sv1@", "<sv2@", 1), "-i", "-f", "dave@far.example", "alice@example.org")
	startSendq(t, root)
	got := srv.Wait(t, 2, 10*time.Second)
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	froms := map[string]bool{}
	for _, m := range got {
		froms[m.From] = true
		if strings.Join(m.To, ",") != "carol@far.example" || !strings.HasPrefix(string(m.Data), "Delivered-To: alice@example.org\r\nFrom: Bob <bob@far.example>\r\n") ||
			!strings.HasSuffix(string(m.Data), "\r\n\r\nbody\r\n") {
			t.Errorf("the server got from=%q to=%v:\n%s", m.From, m.To, m.Data)
		}
	}
	if !froms["bob@far.example"] || !froms["dave@far.example"] {
		t.Errorf("envelope senders %v, want the original ones (bob from deliver, dave from sendq)", froms)
	}
	if files := svFiles(t, root, "alice@example.org", "Lists"); len(files) != 2 || len(svFiles(t, root, "alice@example.org", "")) != 0 {
		t.Errorf("Lists holds %q, INBOX %q; want both messages in Lists", files, svFiles(t, root, "alice@example.org", ""))
	}
}

func TestSieveRejectSendsDSN(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n"})
	svActivate(t, root, "alice@example.org", `require "reject"; reject "I do not take mail from you.";`)
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	// A bounce is rejected without a notice.
	log := svDeliver(t, root, svMsg, "", "alice@example.org")
	if !strings.Contains(log, "status=no-notice") {
		t.Errorf("deliver's log does not say that the null sender got no notice:\n%s", log)
	}
	if ids, err := sqSpool(root).IDs(); err != nil || len(ids) != 1 {
		t.Fatalf("spool holds %v, %v; want one notice", ids, err)
	}
	startSendq(t, root)
	got := srv.Wait(t, 1, 10*time.Second)
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	m := got[0]
	if m.From != "" || strings.Join(m.To, ",") != "bob@far.example" {
		t.Errorf("notice went from=%q to=%v, want from <> to bob@far.example", m.From, m.To)
	}
	data := strings.ReplaceAll(string(m.Data), "\r\n", "\n")
	_, _, perRcpt, returned := deliveryStatus(t, data)
	if len(perRcpt) != 1 || perRcpt[0].Get("Final-Recipient") != "rfc822; alice@example.org" || perRcpt[0].Get("Action") != "failed" ||
		perRcpt[0].Get("Status") != "5.7.1" || !strings.Contains(perRcpt[0].Get("Diagnostic-Code"), "I do not take mail from you.") {
		t.Errorf("per-recipient fields %v", perRcpt)
	}
	if !strings.Contains(returned, "Message-ID: <sv1@far.example>") {
		t.Errorf("returned message %q, want the original", returned)
	}
	if files := svFiles(t, root, "alice@example.org", ""); len(files) != 0 {
		t.Errorf("INBOX holds %q, want nothing", files)
	}
}

func TestSieveVacationOncePerSender(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n"})
	svActivate(t, root, "alice@example.org", `require "vacation";
vacation :days 7 :subject "Away" "I am away until Monday.";
`)
	from := func(sender string) string {
		return strings.Replace(svMsg, "bob@far.example", sender, 1)
	}
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")                       // within 7 days
	svDeliver(t, root, from("carol@far.example"), "carol@far.example", "alice@example.org") // another sender
	svDeliver(t, root, "List-Id: <go.lists.example>\n"+from("list@far.example"), "list@far.example", "alice@example.org")
	svDeliver(t, root, "Precedence: bulk\n"+from("news@far.example"), "news@far.example", "alice@example.org")
	svDeliver(t, root, svMsg, "", "alice@example.org")
	if n := len(svFiles(t, root, "alice@example.org", "")); n != 6 {
		t.Errorf("INBOX holds %d messages, want all 6", n)
	}
	startSendq(t, root)
	got := srv.Wait(t, 2, 10*time.Second)
	sqWait(t, "the spool to empty", 10*time.Second, func() bool { return sqSpoolEmpty(root) })
	var to []string
	for _, m := range srv.Messages() {
		to = append(to, m.To...)
		data := string(m.Data)
		if m.From != "" || !strings.Contains(data, "\r\nAuto-Submitted: auto-replied\r\n") || !strings.Contains(data, "\r\nSubject: Away\r\n") ||
			!strings.Contains(data, "\r\nIn-Reply-To: <sv1@far.example>\r\n") || !strings.Contains(data, "I am away until Monday.") {
			t.Errorf("reply from=%q:\n%s", m.From, data)
		}
	}
	slices.Sort(to)
	if len(got) != 2 || strings.Join(to, " ") != "bob@far.example carol@far.example" {
		t.Errorf("replies went to %v, want bob and carol once each", to)
	}
}

func TestSieveBrokenScriptKeeps(t *testing.T) {
	for _, tc := range []struct{ name, script, log string }{
		{"does not parse", "fileinto \"Lists\";\n", "status=broken action=keep"},
		{"fails while running", "require \"variables\";\nset \"a\" \"no address\";\nredirect \"${a}\";\n", "status=failed action=keep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRoot(t, "")
			home := filepath.Join(root, "mail", "example.org", "alice")
			// mkuser refuses such scripts: write it as an older
			// version of the checker or an editor might have.
			writeFile(t, filepath.Join(home, "sieve", "main.sieve"), tc.script)
			if err := os.Symlink("sieve/main.sieve", filepath.Join(home, ".dovecot.sieve")); err != nil {
				t.Fatal(err)
			}
			log := svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
			if !strings.Contains(log, tc.log) {
				t.Errorf("deliver's log lacks %q:\n%s", tc.log, log)
			}
			if files := svFiles(t, root, "alice@example.org", ""); len(files) != 1 {
				t.Errorf("INBOX holds %q, want the message", files)
			}
		})
	}
}

func TestSieveBeforeScript(t *testing.T) {
	root := testRoot(t, "")
	writeFile(t, filepath.Join(root, "etc", "sieve", "before.sieve"), `require ["fileinto", "mailbox"];
if header :contains "X-Spam-Flag" "YES" {
    fileinto :create "Junk";
}
`)
	svActivate(t, root, "alice@example.org", `require ["fileinto", "mailbox"]; fileinto :create "Lists";`)
	svDeliver(t, root, "X-Spam-Flag: YES\n"+svMsg, "bob@far.example", "alice@example.org")
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	// bob has no script of his own: the administrator's still runs.
	svDeliver(t, root, "X-Spam-Flag: YES\n"+svMsg, "carol@far.example", "bob@example.org")
	if j, l := svFiles(t, root, "alice@example.org", "Junk"), svFiles(t, root, "alice@example.org", "Lists"); len(j) != 1 || len(l) != 1 {
		t.Errorf("alice's Junk %q, Lists %q; want one message each", j, l)
	}
	if j := svFiles(t, root, "bob@example.org", "Junk"); len(j) != 1 {
		t.Errorf("bob's Junk %q, want the spam", j)
	}
}

// When the queue cannot take a redirect, deliver exits 75 and leaves no
// copy behind for the MTA's retry to duplicate.
func TestSieveSpoolFailureIsTemporary(t *testing.T) {
	root := testRoot(t, "")
	svActivate(t, root, "alice@example.org", `require "copy"; redirect :copy "carol@far.example";`)
	writeFile(t, filepath.Join(root, "spool"), "not a directory\n")
	code, stderr := runDeliver(t, svMsg, "--root", root, "-f", "bob@far.example", "alice@example.org")
	if code != 75 {
		t.Errorf("deliver = %d, %s; want 75", code, stderr)
	}
	if files := svFiles(t, root, "alice@example.org", ""); len(files) != 0 {
		t.Errorf("INBOX holds %q after the failure, want nothing", files)
	}
}

func TestSieveMkuserCommands(t *testing.T) {
	root := testRoot(t, "")
	home := filepath.Join(root, "mail", "example.org", "alice")
	code, _, stderr := mkuser(t, root, "require \"fileinto\";\nif true {\n  fileinto :bogus \"x\";\n}\n", "sieve", "put", "alice@example.org", "main")
	if code != 65 || !strings.Contains(stderr, "main") || !strings.Contains(stderr, " 3:") {
		t.Errorf("sieve put (bad script) = %d, %q; want 65 and the line:column", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "sieve", "main.sieve")); err == nil {
		t.Errorf("a refused script was stored")
	}
	script := "require \"fileinto\";\nfileinto \"Lists\";\n"
	mkuserOK(t, root, script, "sieve", "put", "alice@example.org", "main")
	mkuserOK(t, root, "keep;\n", "sieve", "put", "alice@example.org", "spare")
	if out := mkuserOK(t, root, "", "sieve", "list", "alice@example.org"); out != "main\nspare\n" {
		t.Errorf("sieve list = %q, want main and spare, none active", out)
	}
	if out := mkuserOK(t, root, "", "sieve", "get", "alice@example.org", "main"); out != script {
		t.Errorf("sieve get = %q, want %q", out, script)
	}
	mkuserOK(t, root, "", "sieve", "activate", "alice@example.org", "main")
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/main.sieve" {
		t.Errorf(".dovecot.sieve -> %q, %v; want sieve/main.sieve", target, err)
	}
	if out := mkuserOK(t, root, "", "sieve", "list", "alice@example.org"); out != "main\tactive\nspare\n" {
		t.Errorf("sieve list = %q, want main active", out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"del", "alice@example.org", "main"}, 65},
		{[]string{"get", "alice@example.org", "missing"}, 67},
		{[]string{"activate", "alice@example.org", "missing"}, 67},
		{[]string{"get", "alice@example.org", "../etc"}, 65},
		{[]string{"list", "nobody@example.org"}, 67},
		{[]string{"put", "alice@example.org"}, 64},
	} {
		if code, _, stderr := mkuser(t, root, "", append([]string{"sieve"}, tc.args...)...); code != tc.code {
			t.Errorf("mkuser sieve %q = %d, %q; want %d", tc.args, code, stderr, tc.code)
		}
	}
	mkuserOK(t, root, "", "sieve", "deactivate", "alice@example.org")
	mkuserOK(t, root, "", "sieve", "del", "alice@example.org", "main")
	if out := mkuserOK(t, root, "", "sieve", "list", "alice@example.org"); out != "spare\n" {
		t.Errorf("sieve list after del = %q, want spare", out)
	}
	if _, err := os.Lstat(filepath.Join(home, ".dovecot.sieve")); err == nil {
		t.Errorf(".dovecot.sieve is still there after deactivate")
	}
}

// The envelope test sees the recipient the sender gave, before aliases
// were resolved.
func TestSieveEnvelopeToIsTheAlias(t *testing.T) {
	root := testRoot(t, "sales@example.org: alice@example.org\n")
	svActivate(t, root, "alice@example.org", `require ["fileinto", "envelope", "mailbox"];
if envelope :is "to" "sales@example.org" {
    fileinto :create "Sales";
}
`)
	svDeliver(t, root, svMsg, "bob@far.example", "sales@example.org")
	svDeliver(t, root, svMsg, "bob@far.example", "alice@example.org")
	if s, i := svFiles(t, root, "alice@example.org", "Sales"), svFiles(t, root, "alice@example.org", ""); len(s) != 1 || len(i) != 1 {
		t.Errorf("Sales holds %q, INBOX %q; want one message each", s, i)
	}
}
