package safefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "etc", "aliases")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	appendLine := func(line string) func([]byte) ([]byte, error) {
		return func(old []byte) ([]byte, error) { return append(old, line...), nil }
	}
	if err := Update(p, 0o640, time.Second, appendLine("a\n")); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o640 {
		t.Errorf("new file mode %v, want 0640 despite umask 077", info.Mode().Perm())
	}
	os.Chmod(p, 0o604)
	if err := Update(p, 0o640, time.Second, appendLine("b\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "a\nb\n" {
		t.Errorf("contents %q, want a, b", got)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o604 {
		t.Errorf("rewritten mode %v, want the old 0604 kept", info.Mode().Perm())
	}
	before, _ := os.Stat(p)
	if err := Update(p, 0o640, time.Second, func(old []byte) ([]byte, error) { return old, nil }); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) {
		t.Error("an unchanged result replaced the file")
	}
	boom := errors.New("boom")
	if err := Update(p, 0o640, time.Second, func([]byte) ([]byte, error) { return []byte("x"), boom }); err != boom {
		t.Errorf("Update with failing change = %v, want the change's error unchanged", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "a\nb\n" {
		t.Errorf("contents after failed change %q, want unchanged", got)
	}
	// Concurrent updates never lose each other's changes.
	done := make(chan error)
	for i := range 10 {
		go func() { done <- Update(p, 0o640, 10*time.Second, appendLine(string(rune('0'+i))+"\n")) }()
	}
	for range 10 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(p); strings.Count(string(got), "\n") != 12 {
		t.Errorf("after 10 concurrent updates the file has %d lines, want 12", strings.Count(string(got), "\n"))
	}
}

// withCreateMode runs f once with O_TMPFILE allowed (when the file system
// has it) and once with files created by name only, as on file systems
// without it.
func withCreateMode(t *testing.T, f func(t *testing.T)) {
	t.Run("unnamed", f)
	t.Run("by-name", func(t *testing.T) {
		old := noTmpfile.Load()
		noTmpfile.Store(true)
		defer noTmpfile.Store(old)
		f(t)
	})
}

func TestCreateNew(t *testing.T) {
	withCreateMode(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "msg")
		f, err := CreateNew(p, 0o600)
		if err != nil {
			t.Fatalf("CreateNew(%s) = %v", p, err)
		}
		if f.Name() != p {
			t.Errorf("Name() = %q, want %q", f.Name(), p)
		}
		// The name is there from the start, before anything is written.
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("new file not visible: %v", err)
		}
		if info.Mode().Perm() != 0o600 || !info.Mode().IsRegular() {
			t.Errorf("mode = %v, want -rw-------", info.Mode())
		}
		if _, err := f.WriteString("hello\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(p); string(got) != "hello\n" {
			t.Errorf("contents = %q, %v; want hello", got, err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Nlink != 1 {
			t.Errorf("links = %d, %v; want 1", st.Nlink, err)
		}
	})
}

func TestCreateNewRefusesExisting(t *testing.T) {
	withCreateMode(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "msg")
		if err := os.WriteFile(p, []byte("first"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := CreateNew(p, 0o600)
		if !errors.Is(err, os.ErrExist) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("CreateNew(existing) = %v, want an error matching fs.ErrExist", err)
		}
		if got, _ := os.ReadFile(p); string(got) != "first" {
			t.Errorf("existing file now %q, want it untouched", got)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("directory has %d entries, want 1", len(entries))
		}
	})
}

func TestCreateNewMissingDirectory(t *testing.T) {
	withCreateMode(t, func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "gone", "msg")
		f, err := CreateNew(p, 0o600)
		if !errors.Is(err, os.ErrNotExist) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("CreateNew(%s) = %v, want an error matching fs.ErrNotExist", p, err)
		}
	})
}

func TestCreateTempNames(t *testing.T) {
	withCreateMode(t, func(t *testing.T) {
		dir := t.TempDir()
		a, err := CreateTemp(dir, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := CreateTemp(dir, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for _, f := range []*os.File{a, b} {
			if filepath.Dir(f.Name()) != dir || !strings.HasPrefix(filepath.Base(f.Name()), TempPrefix) {
				t.Errorf("CreateTemp name %q, want %s/%s...", f.Name(), dir, TempPrefix)
			}
		}
		if a.Name() == b.Name() {
			t.Errorf("two CreateTemp calls gave the same name %q", a.Name())
		}
	})
}
