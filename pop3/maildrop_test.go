package pop3

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postkit/postkit/maildir"
)

func openFixture(t *testing.T, dir string) *Maildrop {
	t.Helper()
	m, err := OpenMaildir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestOpenMaildirListing(t *testing.T) {
	dir := newMaildir(t)
	m := openFixture(t, dir)
	want := []Message{
		{"000000016553f100", 39},
		{"000000026553f100", 28},
		{"000000036553f100", 32},
		{"000000046553f100", 22},
	}
	if got := m.Messages(); !slices.Equal(got, want) {
		t.Errorf("Messages() = %v, want %v", got, want)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "new")); len(entries) != 0 {
		t.Errorf("new/ still has %d entries after OpenMaildir", len(entries))
	}
	wantFiles := []string{"1700000001.M1P100.test,S=34,W=39:2,", "1700000002.M2P100.test:2,",
		"1700000003.M3P100.test,S=31,W=32:2,S", "1700000004.M4P100.test,S=19,W=22:2,"}
	if !slices.Equal(m.files, wantFiles) {
		t.Errorf("files = %q, want %q", m.files, wantFiles)
	}
}

// uidls returns the UIDLs of a listing.
func uidls(m *Maildrop) []string {
	var out []string
	for _, msg := range m.Messages() {
		out = append(out, msg.UID)
	}
	return out
}

// reopen opens the Maildir for one more session and returns its UIDLs.
func reopen(t *testing.T, dir string) []string {
	t.Helper()
	m, err := OpenMaildir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	return uidls(m)
}

func TestOpenMaildirOrder(t *testing.T) {
	dir := newMaildir(t)
	// Same second, microseconds that sort wrongly as text, names without a
	// time: UIDs are given in Dovecot's order (uidlist.CompareNames), and
	// the listing is in UID order.
	for _, n := range []string{"1700000005.M99P1.x:2,", "1700000005.M100P1.x:2,", "1700000005.M100P1.w:2,", "courier-style:2,", "1600000000.123_4.host:2,"} {
		if err := os.WriteFile(filepath.Join(dir, "cur", n), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Dot files and directories are not messages.
	os.WriteFile(filepath.Join(dir, "cur", ".hidden"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "cur", "subdir"), 0o700)
	m := openFixture(t, dir)
	want := []string{"courier-style:2,", "1600000000.123_4.host:2,",
		"1700000001.M1P100.test,S=34,W=39:2,", "1700000002.M2P100.test:2,",
		"1700000003.M3P100.test,S=31,W=32:2,S", "1700000004.M4P100.test,S=19,W=22:2,",
		"1700000005.M99P1.x:2,", "1700000005.M100P1.w:2,", "1700000005.M100P1.x:2,"}
	if !slices.Equal(m.files, want) {
		t.Errorf("listing order\n got %q\nwant %q", m.files, want)
	}
	// UID 2 went to "subdir", which Dovecot counts as a message too.
	var wantUIDLs []string
	for _, uid := range []uint32{1, 3, 4, 5, 6, 7, 8, 9, 10} {
		wantUIDLs = append(wantUIDLs, UIDL(uid, fixtureValidity))
	}
	if got := uidls(m); !slices.Equal(got, wantUIDLs) {
		t.Errorf("UIDLs\n got %q\nwant %q", got, wantUIDLs)
	}
}

// TestUIDLStable: a message keeps its UIDL across sessions, when another
// program changes its flags, when other messages are removed, and a new
// message never gets the UIDL of a removed one.
func TestUIDLStable(t *testing.T) {
	dir := newMaildir(t)
	first := reopen(t, dir)
	if again := reopen(t, dir); !slices.Equal(again, first) {
		t.Errorf("second session: UIDLs %q, want %q", again, first)
	}

	// An IMAP client flags messages 1 and 2, renaming their files.
	cur := filepath.Join(dir, "cur")
	for from, to := range map[string]string{
		"1700000001.M1P100.test,S=34,W=39:2,": "1700000001.M1P100.test,S=34,W=39:2,FS",
		"1700000002.M2P100.test:2,":           "1700000002.M2P100.test:2,Ta",
	} {
		if err := os.Rename(filepath.Join(cur, from), filepath.Join(cur, to)); err != nil {
			t.Fatal(err)
		}
	}
	if got := reopen(t, dir); !slices.Equal(got, first) {
		t.Errorf("after flag changes: UIDLs %q, want %q", got, first)
	}

	// Messages 1 and 4 (the last) are removed, one by a POP3 session, one
	// by another program; a new message arrives.
	m := openFixture(t, dir)
	if err := m.Expunge([]int{0}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := os.Remove(filepath.Join(cur, "1700000004.M4P100.test,S=19,W=22:2,")); err != nil {
		t.Fatal(err)
	}
	d, err := maildir.Dir(dir).Deliver(strings.NewReader("Subject: five\n\n"), maildir.DeliverOptions{Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{first[1], first[2], UIDL(5, fixtureValidity)}
	if got := reopen(t, dir); !slices.Equal(got, want) {
		t.Errorf("after removals and delivery of %s: UIDLs %q, want %q", d.Name, got, want)
	}
}

// TestUIDLFromDovecotUIDList: a Maildir whose dovecot-uidlist another server
// wrote keeps its UIDs, the UIDLs saved in P fields of a migrated mailbox,
// and their POP3 order (O fields; the others follow in UID order).
func TestUIDLFromDovecotUIDList(t *testing.T) {
	dir := newMaildir(t)
	list := "3 V1234 N20 G0123456789abcdef0123456789abcdef\n" +
		"10 :1700000003.M3P100.test,S=31,W=32\n" +
		"12 P O2 :1700000002.M2P100.test\n" +
		"15 W22 POLD-UIDL-1 O1 :1700000004.M4P100.test,S=19,W=22\n" +
		"17 :1700000001.M1P100.test,S=34,W=39\n" +
		"18 :gone.file\n"
	if err := os.WriteFile(filepath.Join(dir, "dovecot-uidlist"), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{"OLD-UIDL-1", "1700000002.M2P100.test", "0000000a000004d2", "00000011000004d2"}
	if got := reopen(t, dir); !slices.Equal(got, want) {
		t.Errorf("UIDLs %q, want %q", got, want)
	}
}

func TestOpenMaildirLock(t *testing.T) {
	dir := newMaildir(t)
	m := openFixture(t, dir)
	if _, err := OpenMaildir(dir, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second OpenMaildir = %v, want ErrInUse", err)
	}
	m.Close()
	m2, err := OpenMaildir(dir, nil)
	if err != nil {
		t.Fatalf("OpenMaildir after Close = %v", err)
	}
	m2.Close()
}

func TestOpenMaildirCreatesMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example.org", "carol")
	m := openFixture(t, dir)
	if n := len(m.Messages()); n != 0 {
		t.Errorf("new Maildir has %d messages", n)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("%s/ not created: %v", sub, err)
		}
	}
}

func TestSizeCache(t *testing.T) {
	dir := newMaildir(t)
	cache := filepath.Join(dir, SizeCacheFile)
	m := openFixture(t, dir)
	m.Close()
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	// Only message 2 lacks W=: one entry, with its on-disk size 24.
	if want := "postkit-pop3-sizes 1\n28 24 1700000002.M2P100.test\n"; string(data) != want {
		t.Fatalf("size cache = %q, want %q", data, want)
	}

	// The cache is believed while the file has the recorded size...
	os.WriteFile(cache, []byte("postkit-pop3-sizes 1\n1000 24 1700000002.M2P100.test\nbogus line\n"), 0o600)
	m = openFixture(t, dir)
	if got := m.Messages()[1].Size; got != 1000 {
		t.Errorf("size with cache entry = %d, want the cached 1000", got)
	}
	m.Close()

	// ...and recounted when the size differs; stale entries are dropped.
	os.WriteFile(cache, []byte("postkit-pop3-sizes 1\n1000 23 1700000002.M2P100.test\n5 5 gone\n"), 0o600)
	m = openFixture(t, dir)
	if got := m.Messages()[1].Size; got != 28 {
		t.Errorf("size with stale cache entry = %d, want 28", got)
	}
	m.Close()
	data, _ = os.ReadFile(cache)
	if want := "postkit-pop3-sizes 1\n28 24 1700000002.M2P100.test\n"; string(data) != want {
		t.Errorf("size cache after recount = %q, want %q", data, want)
	}

	// A foreign file is ignored and replaced.
	os.WriteFile(cache, []byte("something else\n1000 24 1700000002.M2P100.test\n"), 0o600)
	m = openFixture(t, dir)
	if got := m.Messages()[1].Size; got != 28 {
		t.Errorf("size with foreign cache file = %d, want 28", got)
	}
}

// TestDuplicateBaseListedOnce: two files with the same name up to ':' (a
// Maildir copied together by hand) are one message to the UID list, so
// they never share a UIDL; the listing shows one of them.
func TestDuplicateBaseListedOnce(t *testing.T) {
	dir := newMaildir(t)
	os.WriteFile(filepath.Join(dir, "cur", "1700000001.M1P100.test,S=34,W=39:2,F"), []byte("Subject: one\n\nline 1\n.dotted\nlast\n"), 0o600)
	m := openFixture(t, dir)
	want := []string{"000000016553f100", "000000026553f100", "000000036553f100", "000000046553f100"}
	if got := uidls(m); !slices.Equal(got, want) {
		t.Errorf("UIDLs %q, want %q", got, want)
	}
}

func TestMaildropOpenReturnsFile(t *testing.T) {
	m := openFixture(t, newMaildir(t))
	rc, err := m.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	if want := "Subject: one\n\nline 1\n.dotted\nlast\n"; string(data) != want {
		t.Errorf("Open(0) = %q, want %q", data, want)
	}
}

func TestMarkSeenKeepsFlags(t *testing.T) {
	dir := newMaildir(t)
	m := openFixture(t, dir)
	cur := filepath.Join(dir, "cur")
	// Meanwhile another program flags message 1 and adds a keyword.
	if err := os.Rename(filepath.Join(cur, "1700000001.M1P100.test,S=34,W=39:2,"), filepath.Join(cur, "1700000001.M1P100.test,S=34,W=39:2,Fa")); err != nil {
		t.Fatal(err)
	}
	if err := m.MarkSeen(0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cur, "1700000001.M1P100.test,S=34,W=39:2,FSa")); err != nil {
		t.Errorf("MarkSeen did not give FSa: %v", err)
	}
	// Already seen: nothing to do.
	if err := m.MarkSeen(2); err != nil {
		t.Fatal(err)
	}
	// Removed meanwhile: not an error.
	os.Remove(filepath.Join(cur, "1700000002.M2P100.test:2,"))
	if err := m.MarkSeen(1); err != nil {
		t.Errorf("MarkSeen(removed) = %v, want nil", err)
	}
	if err := m.Expunge([]int{1, 0}); err != nil {
		t.Errorf("Expunge = %v", err)
	}
	if names := curNames(t, dir); len(names) != 2 {
		t.Errorf("cur/ after Expunge = %q, want 2 files", names)
	}
}

func FuzzSizeCache(f *testing.F) {
	f.Add([]byte("postkit-pop3-sizes 1\n28 24 1700000002.M2P100.test\n"))
	f.Add([]byte("postkit-pop3-sizes 1\n1 2 a b c\n-1 2 x\n1 2\n\n9999999999999999999999 1 y\n"))
	f.Add([]byte("something else\n1 1 x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cache := parseSizeCache(data)
		for key, c := range cache {
			if key == "" || c.vsize < 0 || c.size < 0 {
				t.Fatalf("parseSizeCache(%q) gave entry %q %v", data, key, c)
			}
		}
		// What is written reads back the same, for keys without newline
		// (the scanner splits lines at '\n' only, so none come out of it).
		again := parseSizeCache(marshalSizeCache(cache))
		if len(again) != len(cache) {
			t.Fatalf("round trip of %v gave %v", cache, again)
		}
		for key, c := range cache {
			if again[key] != c {
				t.Fatalf("round trip of %q: %v, want %v", key, again[key], c)
			}
		}
	})
}
