package uidlist

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/safefile"
)

// ErrLockTimeout is wrapped by the errors returned when another process
// held a Dovecot dotlock for longer than the lock timeout and the lock was
// not stale.
var ErrLockTimeout = errors.New("uidlist: timeout waiting for lock")

// Defaults of the lock timeouts, the same as Dovecot's except for the wait:
// Dovecot waits up to the stale timeout plus 2 s, we give up sooner and
// let the caller retry (an IMAP client would rather get NO than hang).
const (
	DefaultLockTimeout = 10 * time.Second
	// DefaultStaleTimeout is Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT,
	// also used for dovecot-keywords.
	DefaultStaleTimeout = 2 * time.Minute
	// subscriptionsStaleTimeout is Dovecot's
	// SUBSCRIPTION_FILE_CHANGE_TIMEOUT.
	subscriptionsStaleTimeout = 30 * time.Second
	// stalePIDCheck is Dovecot's STALE_PID_CHECK_SECS: a younger lock's
	// PID is not looked at, its holder most likely just created it.
	stalePIDCheck = 2
)

// heldLocks holds the inodes of the dotlocks this process holds, so that a
// lock file naming our own PID can be told apart: held by another goroutine
// (wait) or left over from an earlier process with the same PID (stale).
var heldLocks sync.Map // fileID -> struct{}

type fileID struct{ dev, ino uint64 }

// dotlockOptions configure one kind of Dovecot dotlock.
type dotlockOptions struct {
	writePID bool          // write "PID:HOST" into the lock, as for dovecot-uidlist
	timeout  time.Duration // give up after this long
	stale    time.Duration // override a lock nothing touched for this long
}

// A dotlock is Dovecot's file_dotlock: the file PATH.lock, created with
// O_EXCL, that every writer of PATH holds.
type dotlock struct {
	path, lockPath string
	f              *os.File
	id             fileID
}

// lockDotlock takes the dotlock of path, waiting for another holder and
// overriding a stale lock the way Dovecot's file_dotlock_create does.
func lockDotlock(path string, opt dotlockOptions) (*dotlock, error) {
	l := &dotlock{path: path, lockPath: path + ".lock"}
	deadline := time.Now().Add(opt.timeout)
	w := lockWatch{lockPath: l.lockPath, path: path, stale: int64(opt.stale / time.Second)}
	wait := 5 * time.Millisecond
	for {
		free, err := w.check()
		if err != nil {
			return nil, err
		}
		if free {
			ok, err := l.create(opt.writePID)
			if err != nil {
				return nil, err
			}
			if ok {
				return l, nil
			}
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w %s", ErrLockTimeout, l.lockPath)
		}
		// Jitter keeps waiters from stampeding at the same instant.
		time.Sleep(wait + rand.N(wait))
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// create tries to create the lock file; it reports false if it exists.
func (l *dotlock) create(writePID bool) (bool, error) {
	f, err := os.OpenFile(l.lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("uidlist: create lock: %w", err)
	}
	id, err := statID(f)
	if err == nil && writePID {
		_, err = f.WriteString(strconv.Itoa(os.Getpid()) + ":" + hostname())
	}
	if err != nil {
		f.Close()
		os.Remove(l.lockPath)
		return false, fmt.Errorf("uidlist: create lock: %w", err)
	}
	l.f, l.id = f, id
	heldLocks.Store(id, struct{}{})
	return true, nil
}

// release removes the lock file, unless someone overrode it meanwhile (as
// Dovecot's file_dotlock_delete, it then leaves the other holder's lock
// alone and reports the override).
func (l *dotlock) release() error {
	defer l.forget()
	if !l.stillOurs() {
		return fmt.Errorf("uidlist: our lock %s was overridden", l.lockPath)
	}
	if err := os.Remove(l.lockPath); err != nil {
		return fmt.Errorf("uidlist: remove lock: %w", err)
	}
	return nil
}

// replace makes the lock file, holding data, the new PATH: data is written
// into the lock file, which is fsynced and renamed over PATH (Dovecot's
// file_dotlock_replace). The lock is released either way. When minMtime is
// not zero the file's modification time is set to at least it.
func (l *dotlock) replace(data []byte, minMtime time.Time) error {
	defer l.forget()
	err := func() error {
		if err := l.f.Truncate(0); err != nil {
			return err
		}
		if _, err := l.f.WriteAt(data, 0); err != nil {
			return err
		}
		if !minMtime.IsZero() {
			info, err := l.f.Stat()
			if err != nil {
				return err
			}
			if info.ModTime().Before(minMtime) {
				if err := os.Chtimes(l.lockPath, minMtime, minMtime); err != nil {
					return err
				}
			}
		}
		return l.f.Sync()
	}()
	if err != nil {
		l.removeIfOurs()
		return fmt.Errorf("uidlist: write %s: %w", l.lockPath, err)
	}
	if !l.stillOurs() {
		return fmt.Errorf("uidlist: our lock %s was overridden", l.lockPath)
	}
	if err := os.Rename(l.lockPath, l.path); err != nil {
		l.removeIfOurs()
		return fmt.Errorf("uidlist: %w", err)
	}
	if err := safefile.SyncDir(filepath.Dir(l.path)); err != nil {
		return fmt.Errorf("uidlist: %w", err)
	}
	return nil
}

func (l *dotlock) stillOurs() bool {
	info, err := os.Lstat(l.lockPath)
	return err == nil && idOf(info) == l.id
}

func (l *dotlock) removeIfOurs() {
	if l.stillOurs() {
		os.Remove(l.lockPath)
	}
}

// forget closes the lock file and, only after the lock file is gone,
// forgets that this process holds it.
func (l *dotlock) forget() {
	l.f.Close()
	heldLocks.Delete(l.id)
}

// lockWatch decides when someone else's dotlock is stale, following
// Dovecot's check_lock (lib/file-dotlock.c):
//
//   - a lock whose content names a process on this host ("PID:HOST", the
//     host as gethostname(2) gives it) is stale as soon as that process is
//     gone, and never while it lives; the PID is only looked at once the
//     lock is 2 s old;
//   - any other lock is stale when neither it nor the protected file has
//     changed for the stale timeout. A change is a different inode, size,
//     ctime or mtime; the first look takes the lock's ctime (or its mtime
//     if later, but not in the future) as its last change.
//
// Overriding is removing the lock file; the waiter then sleeps 0.1-0.2 s, so
// that two waiters that both found the lock stale do not remove each
// other's new lock.
type lockWatch struct {
	lockPath, path string
	stale          int64 // seconds; 0 never overrides
	lock, file     changeInfo
	lastChange     int64
	pidRead        bool
	pid            int
}

type changeInfo struct {
	id                 fileID
	size, ctime, mtime int64
}

// update records st and moves lastChange forward if the file changed.
func (c *changeInfo) update(info fs.FileInfo, lastChange *int64, now int64) bool {
	n := changeInfo{idOf(info), info.Size(), ctimeOf(info), info.ModTime().Unix()}
	if n == *c {
		return false
	}
	change := now
	if c.ctime == 0 {
		change = n.ctime
		if n.mtime <= now && n.mtime > n.ctime {
			change = n.mtime
		}
	}
	*lastChange = max(*lastChange, change)
	*c = n
	return true
}

// check reports whether the lock is free to be taken: absent, or stale and
// now removed.
func (w *lockWatch) check() (bool, error) {
	now := time.Now().Unix()
	info, err := os.Lstat(w.lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("uidlist: %w", err)
	}
	if w.lock.update(info, &w.lastChange, now) || !w.pidRead {
		w.pidRead = w.lock.mtime < now-stalePIDCheck
		w.pid = 0
		if w.pidRead {
			w.pid = readLocalPID(w.lockPath)
		}
	} else if w.pid > 0 {
		// The PID may change even if the times do not, when locks are
		// taken and dropped quickly.
		w.pid = readLocalPID(w.lockPath)
	}
	if w.pid > 0 {
		if processExists(w.pid, w.lock.id) {
			return false, nil
		}
		// Its holder is gone: override it, unless it was just replaced.
		info, err := os.Lstat(w.lockPath)
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("uidlist: %w", err)
		}
		if w.lock.update(info, &w.lastChange, now) {
			return false, nil
		}
		return w.override()
	}
	if w.stale == 0 {
		return false, nil
	}
	if now > w.lastChange+w.stale {
		// Possibly stale: the holder may still be busy writing the file
		// it protects.
		if info, err := os.Stat(w.path); err == nil {
			w.file.update(info, &w.lastChange, now)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("uidlist: %w", err)
		}
	}
	if now > w.lastChange+w.stale {
		return w.override()
	}
	return false, nil
}

func (w *lockWatch) override() (bool, error) {
	if err := os.Remove(w.lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("uidlist: override stale lock: %w", err)
	}
	time.Sleep(100*time.Millisecond + rand.N(100*time.Millisecond))
	*w = lockWatch{lockPath: w.lockPath, path: w.path, stale: w.stale}
	return true, nil
}

// readLocalPID returns the PID in a lock file that names this host, or 0.
func readLocalPID(lockPath string) int {
	f, err := os.Open(lockPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 511)
	n, _ := f.Read(buf)
	s := strings.TrimSuffix(string(buf[:n]), "\n")
	pid, host, ok := strings.Cut(s, ":")
	if !ok || host != hostname() {
		return 0
	}
	v, err := strconv.Atoi(pid)
	if err != nil || v <= 0 || strings.Trim(pid, "0123456789") != "" {
		return 0
	}
	return v
}

// processExists reports whether the process pid holds the lock id. Our own
// PID holds it only if a goroutine of ours does.
func processExists(pid int, id fileID) bool {
	if pid == os.Getpid() {
		_, ok := heldLocks.Load(id)
		return ok
	}
	err := unix.Kill(pid, 0)
	return !errors.Is(err, unix.ESRCH)
}

var hostname = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

func statID(f *os.File) (fileID, error) {
	info, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	return idOf(info), nil
}

func idOf(info fs.FileInfo) fileID {
	st := info.Sys().(*syscall.Stat_t)
	return fileID{uint64(st.Dev), st.Ino}
}
