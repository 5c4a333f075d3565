package uidlist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/maildir"
)

// newMaildir returns a new empty Maildir++ root.
func newMaildir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := maildir.Create(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// put creates a message file sub/name ("new" or "cur") in dir.
func put(t *testing.T, dir, sub, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, sub, name), []byte("Subject: x\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, dir, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		t.Fatal(err)
	}
}

func mustSync(t *testing.T, m *Mailbox) *State {
	t.Helper()
	s, err := m.Sync()
	if err != nil {
		t.Fatalf("Sync(%s): %v", m.Dir(), err)
	}
	return s
}

// files returns the entries as "UID FILENAME" strings.
func files(s *State) []string {
	var out []string
	for _, e := range s.Entries {
		out = append(out, fmt.Sprintf("%d %s", e.UID, e.Filename))
	}
	return out
}

func checkFiles(t *testing.T, s *State, want ...string) {
	t.Helper()
	if got := files(s); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func readList(t *testing.T, dir string) *List {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%q): %v", data, err)
	}
	return l
}

func TestSyncLifecycle(t *testing.T) {
	dir := newMaildir(t)
	m := Open(dir, nil)

	s := mustSync(t, m)
	if len(s.Entries) != 0 || s.NextUID != 1 || s.UIDValidity == 0 || len(s.GUID) != 32 {
		t.Fatalf("empty folder: %+v", s)
	}
	validity := s.UIDValidity

	put(t, dir, "new", "1700000002.M2P1.host,S=17,W=18")
	put(t, dir, "new", "1700000001.M9P1.host,S=17,W=18")
	put(t, dir, "cur", "1700000001.M10P1.host:2,S")
	s = mustSync(t, m)
	checkFiles(t, s,
		"1 new/1700000001.M9P1.host,S=17,W=18",
		"2 cur/1700000001.M10P1.host:2,S",
		"3 new/1700000002.M2P1.host,S=17,W=18")
	if s.UIDValidity != validity || s.NextUID != 4 {
		t.Errorf("UIDValidity, NextUID = %d, %d, want %d, 4", s.UIDValidity, s.NextUID, validity)
	}
	if e := s.Entries[0]; e.Size != 17 || e.VSize != 18 || e.Base != "1700000001.M9P1.host,S=17,W=18" || e.GUID != e.Base || !e.InNew() {
		t.Errorf("entry = %+v", e)
	}
	if e := s.Entries[1]; e.Size != -1 || e.VSize != -1 || e.Name() != "1700000001.M10P1.host:2,S" || e.InNew() {
		t.Errorf("entry = %+v", e)
	}

	// Moving to cur/ and changing flags keeps the UIDs.
	rename(t, dir, "new/1700000001.M9P1.host,S=17,W=18", "cur/1700000001.M9P1.host,S=17,W=18:2,")
	rename(t, dir, "cur/1700000001.M10P1.host:2,S", "cur/1700000001.M10P1.host:2,FRSa")
	s = mustSync(t, m)
	checkFiles(t, s,
		"1 cur/1700000001.M9P1.host,S=17,W=18:2,",
		"2 cur/1700000001.M10P1.host:2,FRSa",
		"3 new/1700000002.M2P1.host,S=17,W=18")

	// Expunging the highest UID does not make it available again.
	if err := os.Remove(filepath.Join(dir, "new/1700000002.M2P1.host,S=17,W=18")); err != nil {
		t.Fatal(err)
	}
	s = mustSync(t, m)
	checkFiles(t, s,
		"1 cur/1700000001.M9P1.host,S=17,W=18:2,",
		"2 cur/1700000001.M10P1.host:2,FRSa")
	if s.NextUID != 4 {
		t.Errorf("NextUID = %d after expunge, want 4", s.NextUID)
	}
	l := readList(t, dir)
	if l.NextUID != 4 || len(l.Records) != 2 {
		t.Errorf("uidlist after expunging a third = %+v, want 2 records and N4", l)
	}
	put(t, dir, "new", "1600000000.M1P1.old")
	s = mustSync(t, m)
	checkFiles(t, s,
		"1 cur/1700000001.M9P1.host,S=17,W=18:2,",
		"2 cur/1700000001.M10P1.host:2,FRSa",
		"4 new/1600000000.M1P1.old")

	// A fresh Mailbox (another process) sees the same.
	s2, err := Sync(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, s2, files(s)...)
	if s2.UIDValidity != validity || s2.GUID != s.GUID {
		t.Errorf("fresh Sync = %+v, want UIDValidity %d GUID %s", s2, validity, s.GUID)
	}
}

func TestSyncAppendsAndCompresses(t *testing.T) {
	dir := newMaildir(t)
	m := Open(dir, nil)
	for i := range 8 {
		put(t, dir, "new", fmt.Sprintf("17000000%02d.M1P1.h", i))
	}
	mustSync(t, m)
	before, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}

	// One expunge of eight: the line stays (Dovecot rewrites only when a
	// quarter is gone); a new message is appended.
	os.Remove(filepath.Join(dir, "new", "1700000000.M1P1.h"))
	put(t, dir, "new", "1700000100.M1P1.h")
	s := mustSync(t, m)
	after, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := string(before) + "9 :1700000100.M1P1.h\n"; string(after) != want {
		t.Errorf("uidlist = %q, want %q", after, want)
	}
	if len(s.Entries) != 8 || s.Entries[0].UID != 2 {
		t.Errorf("entries = %q", files(s))
	}

	// Two more gone: 3 of 9 lines, a third, so the file is rewritten.
	os.Remove(filepath.Join(dir, "new", "1700000001.M1P1.h"))
	os.Remove(filepath.Join(dir, "new", "1700000002.M1P1.h"))
	s = mustSync(t, m)
	l := readList(t, dir)
	if len(l.Records) != 6 || l.Records[0].UID != 4 || l.NextUID != 10 || len(s.Entries) != 6 {
		t.Errorf("after compress: list %+v, entries %q", l, files(s))
	}
	data, _ := os.ReadFile(filepath.Join(dir, FileName))
	if !strings.HasPrefix(string(data), fmt.Sprintf("3 V%d N10 G%s\n", l.UIDValidity, l.GUID)) {
		t.Errorf("rewritten header: %q", data)
	}
}

func TestSyncKeepsForeignFields(t *testing.T) {
	dir := newMaildir(t)
	put(t, dir, "cur", "1700000001.M1P1.h:2,S")
	put(t, dir, "cur", "1700000002.M1P1.h:2,S")
	put(t, dir, "cur", "1700000003.M1P1.h:2,S")
	list := "3 V42 N7 G0123456789abcdef0123456789abcdef P%08Xv%08Xu Zz\n" +
		"2 :gone\n3 :gone2\n4 W999 S990 Pold-uidl :1700000001.M1P1.h\n5 :1700000002.M1P1.h\n6 Gmsg-guid :1700000003.M1P1.h\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	put(t, dir, "new", "1700000004.M1P1.h")
	s := mustSync(t, Open(dir, nil))
	checkFiles(t, s,
		"4 cur/1700000001.M1P1.h:2,S",
		"5 cur/1700000002.M1P1.h:2,S",
		"6 cur/1700000003.M1P1.h:2,S",
		"7 new/1700000004.M1P1.h")
	if e := s.Entries[0]; e.Size != 990 || e.VSize != 999 {
		t.Errorf("sizes from S and W fields = %d, %d, want 990, 999", e.Size, e.VSize)
	}
	if e := s.Entries[2]; e.GUID != "msg-guid" {
		t.Errorf("GUID from the G field = %q", e.GUID)
	}
	// 2 of 5 records gone: rewritten, foreign fields kept.
	want := "3 V42 N8 G0123456789abcdef0123456789abcdef P%08Xv%08Xu Zz\n" +
		"4 W999 S990 Pold-uidl :1700000001.M1P1.h\n5 :1700000002.M1P1.h\n6 Gmsg-guid :1700000003.M1P1.h\n7 :1700000004.M1P1.h\n"
	if data, _ := os.ReadFile(filepath.Join(dir, FileName)); string(data) != want {
		t.Errorf("uidlist = %q, want %q", data, want)
	}
}

func TestSyncRepairs(t *testing.T) {
	tests := []struct {
		name string
		list string
		// keep: the old UIDs and UIDVALIDITY stay.
		keep bool
	}{
		{"torn last line", "3 V42 N5 G0123456789abcdef0123456789abcdef\n3 :1700000001.M1P1.h\n4 :17000", true},
		{"no GUID", "3 V42 N5\n3 :1700000001.M1P1.h\n", true},
		{"corrupt record", "3 V42 N5 G0123456789abcdef0123456789abcdef\n3 :1700000001.M1P1.h\nxx\n", false},
		{"corrupt header", "3 V42 Nx\n3 :1700000001.M1P1.h\n", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newMaildir(t)
			put(t, dir, "cur", "1700000001.M1P1.h:2,S")
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.list), 0o600); err != nil {
				t.Fatal(err)
			}
			s := mustSync(t, Open(dir, nil))
			if tt.keep {
				checkFiles(t, s, "3 cur/1700000001.M1P1.h:2,S")
				if s.UIDValidity != 42 || s.NextUID != 5 {
					t.Errorf("UIDValidity, NextUID = %d, %d, want 42, 5", s.UIDValidity, s.NextUID)
				}
			} else {
				checkFiles(t, s, "1 cur/1700000001.M1P1.h:2,S")
				if s.UIDValidity <= 42 {
					t.Errorf("UIDValidity = %d, want a new one above 42", s.UIDValidity)
				}
			}
			l := readList(t, dir)
			if l.GUID == "" || len(l.Records) != 1 {
				t.Errorf("repaired list = %+v", l)
			}
		})
	}
}

func TestSyncCache(t *testing.T) {
	dir := newMaildir(t)
	put(t, dir, "new", "1700000001.M1P1.h")
	m := Open(dir, nil)
	mustSync(t, m)
	old := time.Now().Add(-time.Minute)
	for _, sub := range []string{"new", "cur"} {
		if err := os.Chtimes(filepath.Join(dir, sub), old, old); err != nil {
			t.Fatal(err)
		}
	}
	s1 := mustSync(t, m)
	if s2 := mustSync(t, m); s2 != s1 {
		t.Errorf("Sync of an unchanged folder did not reuse its state")
	}
	// Any change to the directories shows.
	rename(t, dir, "new/1700000001.M1P1.h", "cur/1700000001.M1P1.h:2,S")
	checkFiles(t, mustSync(t, m), "1 cur/1700000001.M1P1.h:2,S")
	// So does a change to the uidlist alone (another process's append).
	s1 = mustSync(t, m)
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("7 :gone\n")
	f.Close()
	if s2 := mustSync(t, m); s2 == s1 || s2.NextUID != 8 {
		t.Errorf("after an append: same state %v, NextUID %d, want 8", s2 == s1, s2.NextUID)
	}
}

func TestSyncFolderUIDValidity(t *testing.T) {
	root := t.TempDir()
	if err := maildir.Create(root, "Sent", "Trash"); err != nil {
		t.Fatal(err)
	}
	inbox := mustSync(t, Open(root, nil))
	sent := mustSync(t, Open(filepath.Join(root, ".Sent"), nil))
	trash := mustSync(t, Open(filepath.Join(root, ".Trash"), nil))
	if sent.UIDValidity != inbox.UIDValidity+1 || trash.UIDValidity != inbox.UIDValidity+2 {
		t.Errorf("UIDVALIDITYs %d, %d, %d, want consecutive", inbox.UIDValidity, sent.UIDValidity, trash.UIDValidity)
	}
	if _, err := os.Stat(filepath.Join(root, ".Sent", UIDValidityFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a folder got its own %s: %v", UIDValidityFileName, err)
	}
}

func TestSyncMissingDir(t *testing.T) {
	_, err := Sync(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sync(missing) = %v, want ErrNotExist", err)
	}
}

func TestSyncSkipsDotFiles(t *testing.T) {
	dir := newMaildir(t)
	put(t, dir, "new", ".hidden")
	put(t, dir, "new", "1700000001.M1P1.h")
	put(t, dir, "cur", "1700000001.M1P1.h:2,S") // the same message twice: cur/ wins
	s := mustSync(t, Open(dir, nil))
	checkFiles(t, s, "1 cur/1700000001.M1P1.h:2,S")
}
