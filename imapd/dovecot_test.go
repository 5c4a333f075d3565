package imapd

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

	"github.com/emersion/go-imap/v2"
)

// doveadm runs the real Dovecot's doveadm on the fixture's Maildir, as
// the same user would see it from a Dovecot server. When the tests run as
// root, doveadm runs as nobody (Dovecot refuses root) and the Maildir is
// handed to nobody before each run.
func doveadm(t *testing.T, f *fixture, args ...string) string {
	t.Helper()
	return doveadmInput(t, f, "", args...)
}

// doveadmInput is doveadm with stdin as the command's standard input.
func doveadmInput(t *testing.T, f *fixture, stdin string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("doveadm")
	if err != nil {
		t.Skip("doveadm is not installed: cannot compare with Dovecot")
	}
	if _, err := os.Stat("/usr/sbin/dovecot"); err != nil {
		t.Skip("Dovecot is not installed")
	}
	home := filepath.Dir(string(f.maildir))
	conf := filepath.Join(home, "dovecot.conf")
	if _, err := os.Stat(conf); err != nil {
		c := fmt.Sprintf("mail_location = maildir:%s\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\n", f.maildir)
		if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		// Let nobody through the directories above the Maildir.
		for d := home; d != "/" && d != "."; d = filepath.Dir(d) {
			if info, err := os.Stat(d); err == nil && info.Mode().Perm()&0o005 != 0o005 {
				os.Chmod(d, info.Mode().Perm()|0o005)
			}
			if d == filepath.Dir(string(f.root)) {
				break
			}
		}
		err := filepath.WalkDir(string(f.maildir), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, append([]string{"-c", conf}, args...)...)
	cmd.Env = []string{"USER=alice", "HOME=" + home, "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "Error") {
		t.Fatalf("doveadm %q: %v\n%s", args, err, stderr.Bytes())
	}
	return string(out)
}

// TestDovecotSeesTheSameMailbox: what imapd stores (UIDs, UIDVALIDITY,
// flags, keywords, folders with UTF-8 names, subscriptions) is what
// Dovecot reads from the same Maildir, and Dovecot's flag changes reach an
// imapd session.
func TestDovecotSeesTheSameMailbox(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	appendMsg(t, c, "INBOX", crlf("Subject: one\n\nfirst\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}})
	appendMsg(t, c, "INBOX", crlf("Subject: two\n\nsecond\n"), nil)
	if err := c.Create("Projekte/Ärger", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Projekte/Ärger").Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{UIDValidity: true, UIDNext: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}

	fetch := doveadm(t, f, "-f", "tab", "fetch", "uid flags", "mailbox", "INBOX", "all")
	want := "uid\tflags\n1\t\\Flagged $Label1\n2\t\n"
	if fetch != want {
		t.Errorf("doveadm fetch uid flags =\n%q\nwant\n%q", fetch, want)
	}
	status := doveadm(t, f, "-f", "tab", "mailbox", "status", "uidvalidity uidnext", "INBOX")
	if wantStatus := fmt.Sprintf("mailbox\tuidnext\tuidvalidity\nINBOX\t%d\t%d\n", st.UIDNext, st.UIDValidity); status != wantStatus {
		t.Errorf("doveadm mailbox status = %q, want %q", status, wantStatus)
	}
	list := doveadm(t, f, "mailbox", "list")
	if !slices.Contains(strings.Split(list, "\n"), "Projekte/Ärger") {
		t.Errorf("doveadm mailbox list = %q, want Projekte/Ärger in it", list)
	}
	subs := doveadm(t, f, "mailbox", "list", "-s")
	if strings.TrimSpace(subs) != "Projekte/Ärger" {
		t.Errorf("doveadm mailbox list -s = %q", subs)
	}

	ev := newEvents()
	watcher := f.login(ev.handler())
	selectBox(t, watcher, "INBOX")
	doveadm(t, f, "flags", "add", `\Seen $Done`, "mailbox", "INBOX", "uid", "2")
	if err := watcher.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "FETCH FLAGS of Dovecot's change", func(e *events) bool { return e.flags[2] == `$Done \Seen` })
}

// TestIMAPdServesDovecotsMailbox: a Maildir that Dovecot wrote (messages
// saved, flagged and expunged by doveadm, so Dovecot chose the UIDs, the
// UIDVALIDITY and the keyword letters) is served by imapd with the same
// UIDs, UIDVALIDITY, UIDNEXT and flags: a user moving from Dovecot
// downloads nothing again.
func TestIMAPdServesDovecotsMailbox(t *testing.T) {
	f := newFixture(t)
	for _, subject := range []string{"one", "two", "three", "four"} {
		doveadmInput(t, f, "Subject: "+subject+"\n\nbody of "+subject+"\n", "save", "-m", "INBOX")
	}
	doveadm(t, f, "flags", "add", `\Flagged $Work`, "mailbox", "INBOX", "uid", "2")
	doveadm(t, f, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "4")
	doveadm(t, f, "expunge", "mailbox", "INBOX", "uid", "1")
	want := doveadm(t, f, "-f", "tab", "fetch", "uid flags", "mailbox", "INBOX", "all")
	status := doveadm(t, f, "-f", "tab", "mailbox", "status", "uidvalidity uidnext", "INBOX")

	c := f.login()
	sel := selectBox(t, c, "INBOX")
	if wantStatus := fmt.Sprintf("mailbox\tuidnext\tuidvalidity\nINBOX\t%d\t%d\n", sel.UIDNext, sel.UIDValidity); status != wantStatus {
		t.Errorf("imapd SELECT gives UIDNEXT %d UIDVALIDITY %d; Dovecot says %q", sel.UIDNext, sel.UIDValidity, status)
	}
	msgs := fetchAll(t, c, imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true})
	var b strings.Builder
	b.WriteString("uid\tflags\n")
	for _, m := range msgs {
		var flags []string
		for _, fl := range m.Flags {
			if fl != `\Recent` {
				flags = append(flags, string(fl))
			}
		}
		fmt.Fprintf(&b, "%d\t%s\n", m.UID, strings.Join(flags, " "))
	}
	if got := b.String(); !sameFlagLines(got, want) {
		t.Errorf("imapd FETCH UID FLAGS =\n%q\nDovecot's =\n%q", got, want)
	}
}

// sameFlagLines compares "uid<TAB>flags" listings with the flags of each
// line in any order. \Recent is left out: it belongs to a session, and
// doveadm's session sees every message as recent.
func sameFlagLines(a, b string) bool {
	norm := func(s string) string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			uid, flags, _ := strings.Cut(line, "\t")
			f := slices.DeleteFunc(strings.Fields(flags), func(fl string) bool { return fl == `\Recent` })
			slices.Sort(f)
			out = append(out, uid+"\t"+strings.Join(f, " "))
		}
		return strings.Join(out, "\n")
	}
	return norm(a) == norm(b)
}
