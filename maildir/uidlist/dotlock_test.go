package uidlist

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// writeLock leaves a dotlock with content, its mtime age in the past.
func writeLock(t *testing.T, dir, content string, age time.Duration) string {
	t.Helper()
	p := filepath.Join(dir, FileName+".lock")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestLockContent(t *testing.T) {
	dir := newMaildir(t)
	l, err := Open(dir, nil).uidlistLock()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(os.Getpid()) + ":" + hostname(); string(data) != want {
		t.Errorf("lock content = %q, want %q", data, want)
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock not removed: %v", err)
	}
}

func TestStaleLockOverride(t *testing.T) {
	tests := []struct {
		name    string
		content func(t *testing.T) string
		age     time.Duration
		opt     Options
	}{
		{
			name:    "process on this host is gone",
			content: func(t *testing.T) string { return strconv.Itoa(deadPID(t)) + ":" + hostname() },
			age:     10 * time.Second,
			opt:     Options{LockTimeout: 5 * time.Second},
		},
		{
			name:    "our own PID but not ours",
			content: func(*testing.T) string { return strconv.Itoa(os.Getpid()) + ":" + hostname() },
			age:     10 * time.Second,
			opt:     Options{LockTimeout: 5 * time.Second},
		},
		{
			name:    "other host, unchanged past the stale timeout",
			content: func(*testing.T) string { return "1:elsewhere.example" },
			opt:     Options{LockTimeout: 10 * time.Second, StaleTimeout: time.Second},
		},
		{
			name:    "empty lock, unchanged past the stale timeout",
			content: func(*testing.T) string { return "" },
			opt:     Options{LockTimeout: 10 * time.Second, StaleTimeout: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newMaildir(t)
			put(t, dir, "new", "1700000001.M1P1.h")
			writeLock(t, dir, tt.content(t), tt.age)
			s, err := Open(dir, &tt.opt).Sync()
			if err != nil {
				t.Fatalf("Sync with a stale lock: %v", err)
			}
			checkFiles(t, s, "1 new/1700000001.M1P1.h")
		})
	}
}

func TestLiveLockWaits(t *testing.T) {
	tests := []struct {
		name    string
		content string
		age     time.Duration
	}{
		// PID 1 always exists; Dovecot never overrides a live local holder.
		{"live process on this host", "1:" + hostname(), time.Hour},
		// Too young to be looked at, and far from stale.
		{"fresh lock of another host", "1:elsewhere.example", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newMaildir(t)
			put(t, dir, "new", "1700000001.M1P1.h")
			p := writeLock(t, dir, tt.content, tt.age)
			_, err := Open(dir, &Options{LockTimeout: 300 * time.Millisecond}).Sync()
			if !errors.Is(err, ErrLockTimeout) {
				t.Errorf("Sync = %v, want ErrLockTimeout", err)
			}
			if data, err := os.ReadFile(p); err != nil || string(data) != tt.content {
				t.Errorf("lock now %q, %v, want it untouched", data, err)
			}
		})
	}
}

func TestLockHeldByGoroutine(t *testing.T) {
	dir := newMaildir(t)
	put(t, dir, "new", "1700000001.M1P1.h")
	held, err := Open(dir, nil).uidlistLock()
	if err != nil {
		t.Fatal(err)
	}
	// Make it look old enough for its PID (ours) to be checked.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, FileName+".lock"), old, old)
	_, err = Open(dir, &Options{LockTimeout: 300 * time.Millisecond}).Sync()
	if !errors.Is(err, ErrLockTimeout) {
		t.Errorf("Sync while another goroutine holds the lock = %v, want ErrLockTimeout", err)
	}
	if err := held.release(); err != nil {
		t.Fatalf("release: %v (the lock was overridden)", err)
	}
	s, err := Open(dir, nil).Sync()
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, s, "1 new/1700000001.M1P1.h")
}

func TestOverriddenLockIsReported(t *testing.T) {
	dir := newMaildir(t)
	l, err := Open(dir, nil).uidlistLock()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, FileName+".lock")
	os.Remove(p)
	writeLock(t, dir, "1:elsewhere.example", 0)
	if err := l.release(); err == nil {
		t.Errorf("release of an overridden lock succeeded")
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("release removed the other holder's lock: %v", err)
	}
}
