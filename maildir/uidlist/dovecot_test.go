package uidlist

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/maildir"
)

// dovecot runs the real Dovecot's doveadm on a Maildir, the oracle these
// tests compare the package with.
type dovecot struct {
	t       *testing.T
	doveadm string
	conf    string
	home    string
	maildir string // home/Maildir, the Maildir++ root
	asUser  *syscall.Credential
	opts    []string // -o settings for the next commands
}

// nobody is the user doveadm runs as when the tests run as root: Dovecot
// refuses mail access as root.
const nobody = 65534

func newDovecot(t *testing.T) *dovecot {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/dovecot"); err != nil {
		t.Skip("Dovecot is not installed (/usr/sbin/dovecot): cannot compare with it")
	}
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Skip("doveadm is not installed: cannot compare with Dovecot")
	}
	// Not t.TempDir: the directory must be reachable by the unprivileged
	// user doveadm runs as.
	dir, err := os.MkdirTemp("", "uidlist-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &dovecot{t: t, doveadm: doveadm, conf: filepath.Join(dir, "dovecot.conf"), home: filepath.Join(dir, "home")}
	d.maildir = filepath.Join(d.home, "Maildir")
	if err := maildir.Create(d.maildir); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("mail_location = maildir:%s\nnamespace inbox {\n  inbox = yes\n  separator = /\n}\n", d.maildir)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		d.asUser = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	return d
}

// run runs doveadm for the user whose home holds the Maildir and returns its
// output. Files this process created are handed to that user first.
func (d *dovecot) run(args ...string) string {
	d.t.Helper()
	if d.asUser != nil {
		err := filepath.WalkDir(d.home, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			d.t.Fatal(err)
		}
	}
	cmd := exec.Command(d.doveadm, slices.Concat([]string{"-c", d.conf}, d.opts, args)...)
	cmd.Env = []string{"USER=demo", "HOME=" + d.home, "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.asUser}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "Error") {
		d.t.Fatalf("doveadm %q: %v\n%s", args, err, stderr.Bytes())
	}
	return string(out)
}

// table runs doveadm with the tab formatter and returns its rows.
func (d *dovecot) table(args ...string) []map[string]string {
	d.t.Helper()
	out := d.run(append([]string{"-f", "tab"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil
	}
	head := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for i, v := range strings.Split(line, "\t") {
			if i < len(head) {
				row[head[i]] = v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// uids returns Dovecot's UIDs of a mailbox's messages, by GUID (which
// Dovecot takes from the file name up to ':' in a Maildir), as "UID GUID"
// lines in UID order.
func (d *dovecot) uids(mailbox string) []string {
	d.t.Helper()
	var out []string
	for _, row := range d.table("fetch", "uid guid", "mailbox", mailbox, "all") {
		out = append(out, row["uid"]+" "+row["guid"])
	}
	return out
}

func (d *dovecot) status(mailbox string) map[string]string {
	d.t.Helper()
	rows := d.table("mailbox", "status", "uidvalidity uidnext guid messages", mailbox)
	if len(rows) != 1 {
		d.t.Fatalf("doveadm mailbox status %s: %v", mailbox, rows)
	}
	return rows[0]
}

// ours returns our UIDs in the same form as dovecot.uids.
func ours(s *State) []string {
	var out []string
	for _, e := range s.Entries {
		out = append(out, fmt.Sprintf("%d %s", e.UID, e.GUID))
	}
	return out
}

// sameStatus checks that Dovecot reports the folder as Sync did.
func sameStatus(t *testing.T, d *dovecot, mailbox string, s *State) {
	t.Helper()
	st := d.status(mailbox)
	want := map[string]string{
		"uidvalidity": strconv.FormatUint(uint64(s.UIDValidity), 10),
		"uidnext":     strconv.FormatUint(uint64(s.NextUID), 10),
		"guid":        s.GUID,
		"messages":    strconv.Itoa(len(s.Entries)),
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("Dovecot's %s %s = %q, ours %q", mailbox, k, st[k], v)
		}
	}
}

func sameUIDs(t *testing.T, dovecotUIDs, ourUIDs []string) {
	t.Helper()
	if !slices.Equal(dovecotUIDs, ourUIDs) {
		t.Errorf("UIDs differ:\nDovecot:\n%s\nours:\n%s", strings.Join(dovecotUIDs, "\n"), strings.Join(ourUIDs, "\n"))
	}
}

// someMessages puts messages into a Maildir whose names, in readdir order,
// in time order and in Dovecot's order all differ.
func someMessages(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{
		"new/1700000005.M20P1Q1R00.mx,S=17,W=18",
		"new/1700000005.M3P1Q2R00.mx,S=17,W=18",
		"cur/1700000005.M10P1Q3R00.mx,S=17,W=18:2,S",
		"new/0900000000.M1P2.zzz",
		"cur/1700000004.M999999P1.old:2,FS",
		"new/abc",
		"cur/1700000006.M1P1.x,S=17:2,",
	} {
		sub, name, _ := strings.Cut(f, "/")
		put(t, dir, sub, name)
	}
	// Times opposite to the names' order, so that sorting by mtime would
	// show.
	entries, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	for i, p := range entries {
		ts := time.Now().Add(-time.Duration(i) * time.Minute)
		os.Chtimes(p, ts, ts)
	}
}

func TestDovecotAssignsWeRead(t *testing.T) {
	d := newDovecot(t)
	someMessages(t, d.maildir)
	dovecotUIDs := d.uids("INBOX")
	if len(dovecotUIDs) != 7 {
		t.Fatalf("Dovecot sees %q", dovecotUIDs)
	}
	before, err := os.ReadFile(filepath.Join(d.maildir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	s := mustSync(t, Open(d.maildir, nil))
	sameUIDs(t, dovecotUIDs, ours(s))
	sameStatus(t, d, "INBOX", s)
	if after, _ := os.ReadFile(filepath.Join(d.maildir, FileName)); !bytes.Equal(before, after) {
		t.Errorf("Sync rewrote Dovecot's up-to-date uidlist:\n%s\nto\n%s", before, after)
	}

	// Dovecot adds a message (appending to the uidlist); we follow.
	saveMessage(t, d, "INBOX")
	s = mustSync(t, Open(d.maildir, nil))
	sameUIDs(t, d.uids("INBOX"), ours(s))
	if len(s.Entries) != 8 {
		t.Errorf("after doveadm save: %q", ours(s))
	}
}

func saveMessage(t *testing.T, d *dovecot, mailbox string) {
	t.Helper()
	cmd := exec.Command(d.doveadm, "-c", d.conf, "save", "-m", mailbox)
	cmd.Env = []string{"USER=demo", "HOME=" + d.home, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.asUser}
	cmd.Stdin = strings.NewReader("Subject: saved by Dovecot\n\nhello\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("doveadm save: %v\n%s", err, out)
	}
}

func TestWeAssignDovecotReads(t *testing.T) {
	d := newDovecot(t)
	someMessages(t, d.maildir)
	m := Open(d.maildir, nil)
	s := mustSync(t, m)
	sameUIDs(t, d.uids("INBOX"), ours(s))
	sameStatus(t, d, "INBOX", s)

	// With Dovecot's index in place: flags change, a file moves to cur/,
	// the message with the highest UID is expunged, two arrive, and the
	// uidlist is appended to.
	rename(t, d.maildir, "new/abc", "cur/abc:2,RS")
	rename(t, d.maildir, "cur/1700000004.M999999P1.old:2,FS", "cur/1700000004.M999999P1.old:2,F")
	highest := s.Entries[len(s.Entries)-1]
	if err := os.Remove(filepath.Join(d.maildir, highest.Filename)); err != nil {
		t.Fatal(err)
	}
	put(t, d.maildir, "new", "1800000001.M2P1.new,S=17,W=18")
	put(t, d.maildir, "new", "1800000001.M1P1.new,S=17,W=18")
	s = mustSync(t, m)
	if s.NextUID != 10 {
		t.Errorf("NextUID = %d, want 10 (8 and 9 for the new ones)", s.NextUID)
	}
	sameUIDs(t, d.uids("INBOX"), ours(s))
	sameStatus(t, d, "INBOX", s)

	// Many expunges: the uidlist is rewritten without them.
	for _, e := range s.Entries[:5] {
		os.Remove(filepath.Join(d.maildir, e.Filename))
	}
	s = mustSync(t, m)
	if l := readList(t, d.maildir); len(l.Records) != len(s.Entries) {
		t.Errorf("uidlist not compressed: %d records for %d messages", len(l.Records), len(s.Entries))
	}
	sameUIDs(t, d.uids("INBOX"), ours(s))
	sameStatus(t, d, "INBOX", s)
}

func TestDovecotRespectsOurLock(t *testing.T) {
	d := newDovecot(t)
	put(t, d.maildir, "new", "1700000001.M1P1.a")
	m := Open(d.maildir, nil)
	sameUIDs(t, d.uids("INBOX"), ours(mustSync(t, m)))
	put(t, d.maildir, "new", "1700000002.M1P1.b")
	lock, err := m.uidlistLock()
	if err != nil {
		t.Fatal(err)
	}
	// Dovecot waits for our lock (a live process of this host) and, after
	// its lock timeout (cut from 2 minutes to 1 s), goes on without giving
	// the new file a UID.
	d.opts = []string{"-o", "mail_max_lock_timeout=1s"}
	locked := d.uids("INBOX")
	d.opts = nil
	if err := lock.release(); err != nil {
		t.Fatalf("Dovecot overrode our lock: %v", err)
	}
	if want := []string{"1 1700000001.M1P1.a"}; !slices.Equal(locked, want) {
		t.Errorf("Dovecot while we held the lock: %q, want %q", locked, want)
	}
	s := mustSync(t, m)
	sameUIDs(t, d.uids("INBOX"), ours(s))
}

func TestDovecotUIDValidityShared(t *testing.T) {
	d := newDovecot(t)
	if err := maildir.Create(d.maildir, "Sent"); err != nil {
		t.Fatal(err)
	}
	inbox := mustSync(t, Open(d.maildir, nil))
	sent := mustSync(t, Open(filepath.Join(d.maildir, ".Sent"), nil))
	d.run("mailbox", "create", "Drafts")
	drafts := d.status("Drafts")["uidvalidity"]
	if want := strconv.FormatUint(uint64(sent.UIDValidity)+1, 10); sent.UIDValidity != inbox.UIDValidity+1 || drafts != want {
		t.Errorf("UIDVALIDITY INBOX %d, Sent %d, Drafts (Dovecot) %s, want consecutive", inbox.UIDValidity, sent.UIDValidity, drafts)
	}
	if err := maildir.Create(d.maildir, "Trash"); err != nil {
		t.Fatal(err)
	}
	trash := mustSync(t, Open(filepath.Join(d.maildir, ".Trash"), nil))
	if strconv.FormatUint(uint64(trash.UIDValidity)-1, 10) != drafts {
		t.Errorf("Trash UIDVALIDITY %d does not follow Dovecot's %s", trash.UIDValidity, drafts)
	}
	sameStatus(t, d, "Trash", trash)
	sameStatus(t, d, "Sent", sent)
}

func TestDovecotKeywords(t *testing.T) {
	d := newDovecot(t)
	put(t, d.maildir, "cur", "1700000001.M1P1.a:2,S")
	put(t, d.maildir, "cur", "1700000002.M1P1.b:2,")
	d.run("flags", "add", "$Label1 Work", "mailbox", "INBOX", "uid", "1")
	m := Open(d.maildir, nil)
	k, err := m.Keywords()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]byte{"$Label1": 'a', "work": 'b'} {
		if c, ok := k.Letter(name); !ok || c != want {
			t.Errorf("Letter(%q) = %q, %v, want %q", name, c, ok, want)
		}
	}
	s := mustSync(t, m)
	if got := s.Entries[0].Name(); got != "1700000001.M1P1.a:2,Sab" {
		t.Errorf("Dovecot's file name %q, want flags Sab", got)
	}

	// Our keyword, set by renaming the file, reaches Dovecot.
	k, err = m.AddKeywords("Work", "Private")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := k.Letter("Private")
	if c != 'c' {
		t.Errorf("Letter(Private) = %q, want 'c'", c)
	}
	e := s.Entries[1]
	if _, err := maildir.Dir(d.maildir).SetFlags(e.Name(), "S"+string(c)); err != nil {
		t.Fatal(err)
	}
	rows := d.table("fetch", "uid flags", "mailbox", "INBOX", "uid", "2")
	if len(rows) != 1 || !slices.Contains(strings.Fields(rows[0]["flags"]), "Private") || !slices.Contains(strings.Fields(rows[0]["flags"]), `\Seen`) {
		t.Errorf("Dovecot's flags of UID 2: %v, want \\Seen Private", rows)
	}
	// And Dovecot's next keyword takes the next letter.
	d.run("flags", "add", "Later", "mailbox", "INBOX", "uid", "2")
	k, _ = m.Keywords()
	if c, _ := k.Letter("Later"); c != 'd' {
		t.Errorf("Dovecot gave Later %q, want 'd' after our 'c'", c)
	}
}

func TestDovecotSubscriptions(t *testing.T) {
	d := newDovecot(t)
	if err := maildir.Create(d.maildir, "Sent", "a/b", "Entwürfe"); err != nil {
		t.Fatal(err)
	}
	d.run("mailbox", "subscribe", "Sent", "a/b", "Entwürfe", "INBOX")
	s, err := ReadSubscriptions(d.maildir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Sent", "a/b", "Entwürfe", "INBOX"}; s.Version != 2 || !slices.Equal(s.Names, want) {
		t.Errorf("Dovecot's subscriptions read as %#v, want version 2 %q", s, want)
	}

	if _, err := Subscribe(d.maildir, "Sent", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := maildir.Create(d.maildir, "Archiv/2026"); err != nil {
		t.Fatal(err)
	}
	if _, err := Subscribe(d.maildir, "Archiv/2026", true, nil); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(d.run("mailbox", "list", "-s"))
	slices.Sort(got)
	if want := []string{"Archiv/2026", "Entwürfe", "INBOX", "a/b"}; !slices.Equal(got, want) {
		t.Errorf("Dovecot lists subscriptions %q, want %q", got, want)
	}
}
