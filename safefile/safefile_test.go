package safefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "users")
	if err := WriteFile(p, []byte("one\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "two\n" {
		t.Fatalf("ReadFile = %q, %v; want two", got, err)
	}
	if info, _ := os.Stat(p); info.Mode().Perm()&^0o640 != 0 {
		t.Errorf("mode = %v, want at most 0640", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteFailureLeavesOldContents(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "aliases")
	if err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("half of the new"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want the fill error", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("contents after failed Write = %q, want old", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory has %d entries after failed Write, want 1", len(entries))
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, TempPrefix+"old")
	young := filepath.Join(dir, TempPrefix+"young")
	keep := filepath.Join(dir, "envelope")
	for _, p := range []string{old, young, keep} {
		os.WriteFile(p, nil, 0o600)
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(keep, past, past)
	n, err := RemoveStale(dir, 10*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("RemoveStale = %d, %v; want 1", n, err)
	}
	for p, want := range map[string]bool{old: false, young: true, keep: true} {
		_, err := os.Stat(p)
		if (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

func TestLockExcludesAndTimesOut(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users.lock")
	l, err := LockFile(p, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description: a second open in the
	// same process conflicts just as another process would.
	_, err = LockFile(p, 30*time.Millisecond)
	if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "users.lock") {
		t.Fatalf("second LockFile = %v, want ErrLockTimeout naming the file", err)
	}
	l.Unlock()
	l2, err := LockFile(p, 0)
	if err != nil {
		t.Fatalf("LockFile after Unlock = %v", err)
	}
	l2.Unlock()
}
