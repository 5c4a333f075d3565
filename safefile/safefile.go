// Package safefile writes files so that a reader, or a crash, never sees half of
// one, and takes the advisory locks that writers of shared files agree on.
//
// Every writer in postkit that replaces a file other processes read (the users
// file, the aliases file, spool envelopes, Maildir++ control files) goes
// through WriteFile: the data goes to a temporary name in the same directory
// (created exclusively, by CreateNew), is fsynced, renamed over the target
// and the directory is fsynced. rename(2) is atomic on POSIX file systems,
// so readers see either the old or the new contents, and after WriteFile
// returns the new contents survive a crash.
//
// Temporary names start with ".tmp." so that directory scanners can skip them
// and cleaners can remove leftovers (see RemoveStale).
package safefile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file WriteFile creates.
const TempPrefix = ".tmp."

// WriteFile atomically replaces path with data, creating it with perm if it
// does not exist. The file and its directory are fsynced before it returns.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for contents produced by a function: fill writes the new
// contents to w; when it returns an error nothing is replaced.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := CreateTemp(dir, perm)
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safefile: fsync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safefile: close %s: %w", name, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("safefile: %w", err)
	}
	ok = true
	return SyncDir(dir)
}

// CreateTemp creates a new file with a unique temporary name in dir, opened
// for writing and created exclusively (CreateNew), so two writers never
// share a temporary file.
func CreateTemp(dir string, perm os.FileMode) (*os.File, error) {
	var b [8]byte
	for range 10 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("safefile: random name: %w", err)
		}
		name := filepath.Join(dir, TempPrefix+hex.EncodeToString(b[:]))
		f, err := CreateNew(name, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("safefile: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("safefile: no free temporary name in %s", dir)
}

// CreateNew creates the file path, which must not exist (the error then
// matches fs.ErrExist), and opens it for writing: what os.OpenFile does
// with O_WRONLY|O_CREATE|O_EXCL, but made the way a file that is about to
// be written, fsynced and renamed is made fastest. The inode is created
// unnamed with O_TMPFILE (open(2)), without the directory's lock, and then
// linked under path, which fails if path exists. Creating it by name holds
// the directory's lock through the inode allocation, which on ext4 without
// a journal scans past every recently freed inode: the concurrent writers
// of one directory (smtpd's sessions enqueuing into queue/, sendq's
// deliveries into one Maildir) then wait for each other. On file systems
// without O_TMPFILE, or without /proc (linkat(2) needs /proc/self/fd to
// name an open file), the file is created by name.
func CreateNew(path string, perm os.FileMode) (*os.File, error) {
	if !noTmpfile.Load() {
		f, err := createUnnamed(path, perm)
		if !errors.Is(err, errNoTmpfile) {
			return f, err
		}
		noTmpfile.Store(true)
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// noTmpfile is set once O_TMPFILE or linking through /proc failed: the
// process then creates files by name only.
var noTmpfile atomic.Bool

var errNoTmpfile = errors.New("safefile: O_TMPFILE unusable")

// createUnnamed is CreateNew with O_TMPFILE, or errNoTmpfile when the file
// system or the process cannot do that.
func createUnnamed(path string, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Open(filepath.Dir(path), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL):
		// EISDIR: a kernel older than 3.11, which takes O_TMPFILE for
		// O_DIRECTORY; EOPNOTSUPP: a file system without it.
		return nil, errNoTmpfile
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) && !exists(filepath.Dir(path)) {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EXDEV) {
			// No /proc, or one that names another mount.
			return nil, errNoTmpfile
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// RemoveStale removes temporary files that WriteFile left in dir when a
// writer crashed, if they are older than age. Young ones may belong to a
// writer that is still running.
func RemoveStale(dir string, age time.Duration) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("safefile: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

// ErrLockTimeout is returned by Lock when another process held the lock for
// longer than the timeout.
var ErrLockTimeout = errors.New("safefile: lock timeout")

// A Lock is an exclusive flock(2) on a lock file. The kernel drops it when the
// process exits, however it exits, so a crash never leaves a stale lock.
type Lock struct {
	f *os.File
}

// LockFile takes an exclusive lock on path, creating the file if needed, and
// waits up to timeout for another holder to let go. A zero timeout tries once.
func LockFile(path string, timeout time.Duration) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("safefile: %w", err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("safefile: flock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s", ErrLockTimeout, path)
		}
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	return l.f.Close()
}

// Update changes the shared file at path under its lock: it takes an flock
// on path+".lock" (waiting up to lockTimeout), reads the file afresh (a
// missing file reads as empty), calls change with the contents, and
// atomically replaces the file with the result. An error from change is
// returned unchanged and nothing is written; an unchanged result writes
// nothing. A replaced file keeps its mode and, where the process may, its
// owner and group (so an admin's chgrp survives); a new one gets perm,
// whatever the umask.
func Update(path string, perm os.FileMode, lockTimeout time.Duration, change func(old []byte) ([]byte, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("safefile: %w", err)
	}
	lock, err := LockFile(path+".lock", lockTimeout)
	if err != nil {
		return err
	}
	defer lock.Unlock()

	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("safefile: %w", err)
	}
	existed := err == nil
	data, err := change(old)
	if err != nil {
		return err
	}
	if existed && bytes.Equal(old, data) {
		return nil
	}
	mode, uid, gid := perm, -1, -1
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	return Write(path, mode, func(w io.Writer) error {
		// CreateTemp's mode is reduced by the umask (mkuser runs with 077):
		// set the intended one explicitly.
		f := w.(*os.File)
		if err := f.Chmod(mode); err != nil {
			return err
		}
		if uid >= 0 {
			// Best effort: only root may give a file away, and a non-root
			// admin editing their own file keeps owning it.
			_ = f.Chown(uid, gid)
		}
		_, err := w.Write(data)
		return err
	})
}
