package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/spool"
)

const journalID = "0PQ3K7T2M1A4B5C6"

func TestJournalLineRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    journalEntry
		line string
	}{
		{"local", journalEntry{id: journalID, addr: "bob@example.org", relay: "local"}, journalID + " bob@example.org local no\n"},
		{"remote with dsn", journalEntry{id: journalID, addr: "bob@far.example", relay: "mx.far.example[192.0.2.1]", dsn: true}, journalID + " bob@far.example mx.far.example[192.0.2.1] yes\n"},
		{"quoted local part", journalEntry{id: journalID, addr: `"bob smith"@example.org`, relay: "local"}, journalID + ` "\"bob smith\"@example.org" local no` + "\n"},
		{"utf-8", journalEntry{id: journalID, addr: "jörg@exämple.org", relay: "local"}, journalID + ` "jörg@exämple.org" local no` + "\n"},
		{"empty relay", journalEntry{id: journalID, addr: "a@b", relay: ""}, journalID + ` a@b "" no` + "\n"},
		{"backslash", journalEntry{id: journalID, addr: `a\b@c`, relay: "local"}, journalID + ` "a\\b@c" local no` + "\n"},
		{"relay named intent", journalEntry{id: journalID, addr: "a@b", relay: "intent"}, journalID + " a@b intent no\n"},
		{"intent", journalEntry{id: journalID, addr: "bob@example.org", intent: "/var/lib/postkit/mail/example.org/bob/new/1.M2P3Q4R5.mx,S=10,W=11"},
			journalID + ` bob@example.org intent "/var/lib/postkit/mail/example.org/bob/new/1.M2P3Q4R5.mx,S=10,W=11"` + "\n"},
		{"intent into cur with odd characters", journalEntry{id: journalID, addr: `"bob smith"@example.org`, intent: "/m/Ärger \"x\"/.a b/cur/1.M2P3Q4R5.mx\\057y,S=1,W=1:2,FS"},
			journalID + ` "\"bob smith\"@example.org" intent "/m/Ärger \"x\"/.a b/cur/1.M2P3Q4R5.mx\\057y,S=1,W=1:2,FS"` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := string(appendJournalLine(nil, tt.e))
			if line != tt.line {
				t.Errorf("appendJournalLine(%+v) = %q, want %q", tt.e, line, tt.line)
			}
			got, err := parseJournalLine(strings.TrimSuffix(line, "\n"))
			if err != nil || got != tt.e {
				t.Errorf("parseJournalLine(%q) = %+v, %v, want %+v", line, got, err, tt.e)
			}
		})
	}
}

func TestParseJournalLineRefuses(t *testing.T) {
	for _, line := range []string{
		"",
		journalID,
		"0pq3k7t2m1a4b5c6 bob@example.org local no", // lower case: not a queue ID
		journalID + " bob@example.org local",
		journalID + " bob@example.org local maybe",
		journalID + " bob@example.org local no ",
		journalID + ` "" local no`,
		journalID + ` "bob@example.org local no`,
		journalID + ` "bob"x local no`,
		journalID + "  bob@example.org local no",
		journalID + " bob\x00@example.org local no",
		journalID + ` bob@example.org intent "relative/new/1.x"`,
		journalID + ` bob@example.org intent ""`,
		journalID + ` bob@example.org intent "/new/1.x" no`,
		journalID + ` bob@example.org intent "/new/1.x`,
		journalID + ` bob@example.org intent "/new/\x00"`,
		journalID + " bob@example.org intent /new/1.x",
		journalID + ` bob@example.org "intent" "/new/1.x"`,
	} {
		if e, err := parseJournalLine(line); err == nil {
			t.Errorf("parseJournalLine(%q) = %+v, want an error", line, e)
		}
	}
}

func TestReadJournal(t *testing.T) {
	good := journalID + " bob@example.org local no\n"
	tests := []struct {
		name      string
		data      string
		lines     int
		bad       int
		wantAddrs string
	}{
		{"empty", "", 0, 0, ""},
		{"two lines", good + strings.Replace(good, "bob", "carol", 1), 2, 0, "bob@example.org carol@example.org"},
		{"torn last line skipped", good + journalID + " carol@exam", 1, 0, "bob@example.org"},
		{"bad line skipped", "garbage\n" + good, 1, 1, "bob@example.org"},
		{"overlong line skipped", strings.Repeat("x", 3*maxJournalLine) + "\n" + good, 1, 1, "bob@example.org"},
		{"zeros from a machine crash", good + "\x00\x00\x00\x00\n" + good, 2, 1, "bob@example.org bob@example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			bad, err := readJournal(strings.NewReader(tt.data), func(e journalEntry) { addrs = append(addrs, e.addr) })
			if err != nil || bad != tt.bad || len(addrs) != tt.lines || strings.Join(addrs, " ") != tt.wantAddrs {
				t.Errorf("readJournal(%.40q) = %v (bad %d), %v, want %d lines %q (bad %d)", tt.data, addrs, bad, err, tt.lines, tt.wantAddrs, tt.bad)
			}
		})
	}
}

// FuzzJournal: whatever a journal file holds, reading it never panics,
// every line it accepts is written back the same way and reads back the
// same, and it accepts no more lines than the data has LFs.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(journalID + " bob@example.org local no\n"))
	f.Add([]byte(journalID + ` "\"bob smith\"@example.org" "mx[192.0.2.1]" yes` + "\n" + journalID + " torn"))
	f.Add([]byte(journalID + ` "jörg@exämple.org" "" no` + "\n\n\x00\n"))
	f.Add([]byte(journalID + ` bob@example.org intent "/m/example.org/bob/new/1.M2P3Q4R5.mx,S=10,W=11"` + "\n" + journalID + " bob@example.org intent no\n"))
	f.Add([]byte(journalID + ` "a b@c" intent "/m/.x y/cur/1.M2P3Q4R5.mx\\057,S=1,W=1:2,S"` + "\n" + journalID + ` a@b intent "rel"` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var es []journalEntry
		if _, err := readJournal(bytes.NewReader(data), func(e journalEntry) { es = append(es, e) }); err != nil {
			t.Fatalf("readJournal: %v", err)
		}
		if len(es) > bytes.Count(data, []byte("\n")) {
			t.Fatalf("%d entries from %d lines", len(es), bytes.Count(data, []byte("\n")))
		}
		for _, e := range es {
			line := appendJournalLine(nil, e)
			got, err := parseJournalLine(string(line[:len(line)-1]))
			if err != nil || got != e {
				t.Fatalf("entry %+v written as %q reads back as %+v, %v", e, line, got, err)
			}
			if bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("entry %+v written as %q: not one line", e, line)
			}
		}
	})
}

func (e *env) journalDir() string { return filepath.Join(e.spool.Dir(), spool.JournalDir) }

func (e *env) journalFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(e.journalDir())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, ent := range entries {
		names = append(names, ent.Name())
	}
	return names
}

func (e *env) writeJournal(t *testing.T, name string, lines ...journalEntry) {
	t.Helper()
	if err := os.MkdirAll(e.journalDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, l := range lines {
		b = appendJournalLine(b, l)
	}
	if err := os.WriteFile(filepath.Join(e.journalDir(), name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJournalAfterKill: a runner that delivers and cannot record (every
// write into the spool fails, also at its stop: as if it were killed
// between its deliveries and their records) leaves the deliveries in its
// journal, and the next runner records them as delivered instead of
// delivering again.
func TestJournalAfterKill(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.PerDestination = 3
	e.cfg.RetryMin, e.cfg.RetryMax = time.Hour, time.Hour
	r := New(e.cfg, e.spool)
	failWrites(r, true)
	stop := e.run(t, r)
	rcpts := []string{"alice@example.org", "carol@example.org"}
	entry := e.enqueue(t, "x@far.example", msg, rcpts...)
	waitFor(t, "a failed record", 10*time.Second, func() bool { return e.log.count("event=unrecorded retry_in=") >= 1 })
	stop()
	if e.log.count("event=unrecorded status=lost") != 1 {
		t.Fatalf("the first runner did not lose its outcomes:\n%s", e.log)
	}
	first := len(e.mailbox(t, "alice")) + len(e.mailbox(t, "carol"))
	if first == 0 {
		t.Fatalf("the first runner delivered nothing:\n%s", e.log)
	}
	if files := e.journalFiles(t); len(files) != 1 {
		t.Fatalf("journal files after the first runner: %v, want its one file (its entry is still queued)", files)
	}
	disk, err := e.spool.Load(entry.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range disk.Recipients {
		if rc.State != spool.Pending {
			t.Fatalf("envelope on disk records %s as %s: the simulated kill did not lose the record", rc.Address, rc.State)
		}
	}

	log1 := e.log
	e.log = &logBuf{}
	e.cfg.Logf = e.log.Logf
	e.start(t)
	waitFor(t, "the entry's removal", 10*time.Second, e.empty)
	for _, box := range []string{"alice", "carol"} {
		if n := len(e.mailbox(t, box)); n != 1 {
			t.Errorf("%s has %d copies, want 1\nfirst runner:\n%s\nsecond runner:\n%s", box, n, log1, e.log)
		}
	}
	if n := e.log.count("event=journal status=delivered-before"); n != first {
		t.Errorf("second runner took %d deliveries from the journal, want %d (the first runner's)\n%s", n, first, e.log)
	}
	if n := e.log.count("status=delivered relay=local"); n != len(rcpts) {
		t.Errorf("second runner logged %d deliveries, want %d\n%s", n, len(rcpts), e.log)
	}
}

// TestJournalWrittenByHand: a journal line an earlier runner left makes
// its recipient delivered without a delivery, with the usual outcome line
// and success report; the other recipient is delivered.
func TestJournalWrittenByHand(t *testing.T) {
	e := newEnv(t, "")
	entry := e.enqueue(t, "alice@example.org", msg, "carol@example.org NOTIFY=SUCCESS", "alice@example.org")
	e.writeJournal(t, "20260101T000000.000000000Z.P1.0",
		journalEntry{id: entry.ID, addr: "carol@example.org", relay: "local"},
		journalEntry{id: entry.ID, addr: "nobody@example.org", relay: "local"})
	e.start(t)
	waitFor(t, "the entry's removal", 5*time.Second, e.empty)
	if n := len(e.mailbox(t, "carol")); n != 0 {
		t.Errorf("carol, journaled as delivered, got %d copies\n%s", n, e.log)
	}
	// alice's INBOX: her copy and carol's success report.
	waitFor(t, "the success report", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 2 })
	reports := 0
	for _, m := range e.mailbox(t, "alice") {
		if strings.Contains(m, "Action: delivered") && strings.Contains(m, "carol@example.org") {
			reports++
		}
	}
	if reports != 1 {
		t.Errorf("alice got %d success reports for carol, want 1", reports)
	}
	for _, want := range []string{
		"rcpt=carol@example.org event=journal status=delivered-before relay=local file=20260101T000000.000000000Z.P1.0",
		"rcpt=carol@example.org status=delivered relay=local code=2.0.0 reply=\"delivered by an earlier queue runner",
		"id=" + entry.ID + " rcpt=alice@example.org status=delivered relay=local",
	} {
		if e.log.count(want) != 1 {
			t.Errorf("log lacks %q:\n%s", want, e.log)
		}
	}
	if e.log.count("rcpt=alice@example.org event=journal") != 0 {
		t.Errorf("alice was taken from the journal:\n%s", e.log)
	}
}

// TestJournalRemoval: an earlier runner's journal file goes once none of
// the entries it mentions is left in the spool, never earlier; so do the
// runner's rotated files, and its own file when it stops.
func TestJournalRemoval(t *testing.T) {
	e := newEnv(t, "")
	held := e.enqueue(t, "x@far.example", msg, "alice@example.org")
	held.Hold = true
	if err := e.spool.Update(held); err != nil {
		t.Fatal(err)
	}
	const gone = "0PQ3K7T2M1A4B5C6"
	// keep mentions the held entry (and a gone one), old only gone ones.
	e.writeJournal(t, "keep", journalEntry{id: gone, addr: "a@example.org", relay: "local"}, journalEntry{id: held.ID, addr: "carol@example.org", relay: "local"})
	e.writeJournal(t, "old", journalEntry{id: gone, addr: "a@example.org", relay: "local"})

	r := New(e.cfg, e.spool)
	r.journalRotate = 1 // every write fills a file
	stop := e.run(t, r)
	waitFor(t, "the start", 5*time.Second, func() bool { return e.log.count("event=journal files=2") == 1 })
	e.enqueue(t, "x@far.example", msg, "carol@example.org")
	e.enqueue(t, "x@far.example", msg, "carol@example.org")
	waitFor(t, "two deliveries", 5*time.Second, func() bool { return e.log.count("event=removed") == 2 })
	// The removals woke the runner: its scans remove its rotated files,
	// whose entries are gone, and keep the one for the held entry.
	waitFor(t, "the rotated files' removal", 5*time.Second, func() bool {
		files := e.journalFiles(t)
		return len(files) == 1 && files[0] == "keep"
	})
	if err := e.spool.Remove(held.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal of the held entry's journal", 5*time.Second, func() bool { return len(e.journalFiles(t)) == 0 })
	stop()

	// A runner that stops removes its own file once its entries are gone.
	stop = e.run(t, New(e.cfg, e.spool))
	e.enqueue(t, "x@far.example", msg, "carol@example.org")
	waitFor(t, "a delivery", 5*time.Second, func() bool { return e.log.count("event=removed") == 3 })
	if files := e.journalFiles(t); len(files) != 1 {
		t.Fatalf("journal files of a running runner: %v, want its one", files)
	}
	stop()
	if files := e.journalFiles(t); len(files) != 0 {
		t.Errorf("journal files after a clean stop: %v, want none", files)
	}
}

// TestJournalIntent simulates runners killed after a local delivery's link
// and before its delivered line: only intents in their journal. A
// recipient whose intent's file exists (where it was stored, or moved to
// cur/ by a mail client) is recorded as delivered; one whose file does not
// exist (killed before the link) is delivered.
func TestJournalIntent(t *testing.T) {
	e := newEnv(t, "")
	inbox := func(user, sub string) string { return filepath.Join(e.root.MailDir(), "example.org", user, sub) }
	for _, user := range []string{"alice", "carol"} {
		if err := maildir.Create(filepath.Join(e.root.MailDir(), "example.org", user)); err != nil {
			t.Fatal(err)
		}
	}
	store := func(path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first := e.enqueue(t, "x@far.example", msg, "alice@example.org", "carol@example.org")
	moved := e.enqueue(t, "x@far.example", msg, "alice@example.org")
	stored := filepath.Join(inbox("alice", "new"), "1700000000.M1P1Q1R1.mx.example.org,S=45,W=49")
	store(stored)
	// A mail client moved the second one to cur/ and marked it seen.
	movedFrom := filepath.Join(inbox("alice", "new"), "1700000001.M1P1Q2R2.mx\\057x.example.org,S=45,W=49")
	store(filepath.Join(inbox("alice", "cur"), filepath.Base(movedFrom)+":2,S"))
	// An intent whose file was never linked: a cur/ file of another name
	// must not count.
	store(filepath.Join(inbox("carol", "cur"), "1700000002.M1P1Q3R3.mx.example.org,S=45,W=49:2,S"))
	e.writeJournal(t, "20260101T000000.000000000Z.P1.0",
		journalEntry{id: first.ID, addr: "alice@example.org", intent: stored},
		journalEntry{id: first.ID, addr: "carol@example.org", intent: filepath.Join(inbox("carol", "new"), "1700000002.M1P1Q3R3.mx.example.org,S=45,W=46")},
		journalEntry{id: moved.ID, addr: "alice@example.org", intent: filepath.Join(inbox("alice", "new"), "1700000000.M9P9Q9R9.mx.example.org,S=45,W=49")})
	e.writeJournal(t, "20260101T000001.000000000Z.P2.0",
		journalEntry{id: moved.ID, addr: "alice@example.org", intent: movedFrom})
	e.start(t)
	waitFor(t, "the entries' removal", 5*time.Second, e.empty)

	if got := list(t, inbox("alice", "new")); len(got) != 1 || got[0] != filepath.Base(stored) {
		t.Errorf("alice's new/ holds %q, want only the file of the intent %s\n%s", got, filepath.Base(stored), e.log)
	}
	if got := list(t, inbox("alice", "cur")); len(got) != 1 {
		t.Errorf("alice's cur/ holds %q, want only the moved message\n%s", got, e.log)
	}
	if got := list(t, inbox("carol", "new")); len(got) != 1 {
		t.Errorf("carol's new/ holds %q, want the one delivery of the runner\n%s", got, e.log)
	}
	for _, want := range []string{
		"id=" + first.ID + " rcpt=alice@example.org event=journal status=delivered-before relay=local file=20260101T000000.000000000Z.P1.0 path=\"" + stored + `"`,
		"id=" + moved.ID + " rcpt=alice@example.org event=journal status=delivered-before relay=local file=20260101T000000.000000000Z.P1.0 path=\"" + inbox("alice", "cur"),
		"id=" + first.ID + " rcpt=carol@example.org event=journal status=not-stored intents=1",
		"id=" + first.ID + " rcpt=alice@example.org status=delivered relay=local code=2.0.0 reply=\"delivered to " + stored + " by an earlier queue runner",
		"id=" + first.ID + " rcpt=carol@example.org status=delivered relay=local code=2.0.0 reply=\"delivered to " + inbox("carol", "new"),
		"event=journal files=2 entries=2 deliveries=0 intents=4",
	} {
		if e.log.count(want) != 1 {
			t.Errorf("log lacks %q:\n%s", want, e.log)
		}
	}
}

// TestJournalIntentFailureDefers: a local delivery whose intent cannot be
// journaled is not made (it would be visible and not journaled) but
// deferred, and made once the journal can be written again.
func TestJournalIntentFailureDefers(t *testing.T) {
	e := newEnv(t, "")
	// A file where the journal directory should be: creating a journal
	// file fails with ENOTDIR, also for root.
	if err := os.WriteFile(e.journalDir(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.enqueue(t, "x@far.example", msg, "alice@example.org")
	waitFor(t, "a deferral", 5*time.Second, func() bool {
		return e.log.count("rcpt=alice@example.org status=deferred relay=local code=4.2.0 reply=\"lda: delivering to alice@example.org: maildir: deliver: before link: queue: journal: ") >= 1
	})
	if n := len(e.mailbox(t, "alice")); n != 0 {
		t.Fatalf("alice has %d messages although the intent was not journaled\n%s", n, e.log)
	}
	if tmp := list(t, filepath.Join(e.root.MailDir(), "example.org", "alice", "tmp")); len(tmp) != 0 {
		t.Errorf("alice's tmp/ holds %q after the refused delivery", tmp)
	}
	if err := os.Remove(e.journalDir()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery", 10*time.Second, e.empty)
	if n := len(e.mailbox(t, "alice")); n != 1 {
		t.Errorf("alice has %d messages, want 1\n%s", n, e.log)
	}
	if e.log.count("event=journal status=failing") != 1 {
		t.Errorf("the journal failure was not logged once:\n%s", e.log)
	}
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ent := range entries {
		names = append(names, ent.Name())
	}
	return names
}
