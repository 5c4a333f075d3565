package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/safefile"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrNotFound: no entry has that ID (never had, or it was removed).
	ErrNotFound = errors.New("spool: no such entry")
	// ErrBusy: another process held the entry's lock for longer than the
	// caller would wait, typically the queue runner delivering it.
	ErrBusy = errors.New("spool: entry is locked by another process")
	// ErrRunnerActive: LockRunner found another queue runner running.
	ErrRunnerActive = errors.New("spool: another queue runner is running")
)

// StorageError is a failure of the file system under the spool (no space,
// I/O error, permissions, a missing directory). It is temporary from the
// mail system's point of view: smtpd answers 451 4.3.0, sendmail exits 75,
// and the sender tries again later. Err is the OS error.
type StorageError struct {
	Op  string // what the spool was doing, with the queue ID if there is one
	Err error
}

func (e *StorageError) Error() string { return "spool: " + e.Op + ": " + e.Err.Error() }
func (e *StorageError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is worth retrying later: a StorageError or
// ErrBusy. Invalid envelopes, unknown IDs and the caller's own reader errors
// are not.
func IsTemporary(err error) bool {
	var se *StorageError
	return errors.As(err, &se) || errors.Is(err, ErrBusy)
}

func storageErr(err error, format string, args ...any) error {
	return &StorageError{Op: fmt.Sprintf(format, args...), Err: err}
}

// DefaultLockWait is how long Update and Remove wait for an entry's lock.
const DefaultLockWait = 10 * time.Second

// Spool is one queue directory. Its methods are safe for concurrent use by
// several goroutines and processes (see the package documentation for who may
// do what).
type Spool struct {
	dir, envDir, msgDir, dropDir string
	owner                        fileOwner
	// pickupMu serialises Pickup; dropsLeft are drops it could not
	// remove, never to be looked at again by this process.
	pickupMu  sync.Mutex
	dropsLeft map[string]bool
	// LockWait is how long Update and Remove wait for an entry's lock before
	// returning ErrBusy; Open sets DefaultLockWait.
	LockWait time.Duration
}

// Open opens the spool in dir, creating what is missing of its layout:
// dir (mode 0711), dir/env and dir/msg (mode 0700), dir/maildrop (mode
// 1733). Directories it creates inside an existing dir belong to dir's
// owner, also when Open runs as root (see the package documentation).
func Open(dir string) (*Spool, error) {
	s := &Spool{
		dir:      dir,
		envDir:   filepath.Join(dir, "env"),
		msgDir:   filepath.Join(dir, "msg"),
		dropDir:  filepath.Join(dir, MaildropDir),
		LockWait: DefaultLockWait,
	}
	created := false
	for _, d := range []string{dir, s.envDir, s.msgDir, s.dropDir} {
		err := os.Mkdir(d, 0o700)
		if errors.Is(err, fs.ErrNotExist) && d == dir {
			err = os.MkdirAll(d, 0o700)
		}
		switch {
		case err == nil:
			created = true
			if err := s.initDir(d); err != nil {
				return nil, storageErr(err, "create layout")
			}
		case errors.Is(err, fs.ErrExist):
		default:
			return nil, storageErr(err, "create layout")
		}
		if d == dir {
			if s.owner, err = ownerOf(dir); err != nil {
				return nil, storageErr(err, "open")
			}
		}
	}
	if created {
		// Make the new directories durable before anything goes in them.
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := safefile.SyncDir(d); err != nil {
				return nil, storageErr(err, "create layout")
			}
		}
	}
	return s, nil
}

// initDir gives a directory Open has just created its owner and mode. The
// umask (077 in every postkit program) made it 0700; the spool directory
// lets every user through to maildrop/, which every user may write into.
func (s *Spool) initDir(d string) error {
	switch d {
	case s.dir:
		return os.Chmod(d, 0o711)
	case s.dropDir:
		if err := s.owner.ownDir(d); err != nil {
			return err
		}
		return os.Chmod(d, fs.ModeSticky|0o733)
	}
	return s.owner.ownDir(d)
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

func (s *Spool) envPath(id string) string { return filepath.Join(s.envDir, id) }
func (s *Spool) msgPath(id string) string { return filepath.Join(s.msgDir, id) }

// Enqueue stores a message and its envelope. It sets env.ID, env.Arrival and
// env.NextAttempt (to the arrival time: due at once) and returns the ID once
// the message file, the envelope and both directories are fsynced. On error
// nothing is visible: a StorageError is temporary; an error wrapping
// ErrInvalid means env was unusable; an error from msg is returned wrapped.
// Enqueue never waits for the queue runner, which need not be running.
func (s *Spool) Enqueue(env *Envelope, msg io.Reader) (string, error) {
	now := time.Now().UTC().Round(0)
	e := *env
	e.Arrival, e.NextAttempt = now, now
	// Check the envelope before writing anything, with a stand-in ID.
	e.ID = strings.Repeat("0", IDLen)
	if err := e.validate(); err != nil {
		return "", err
	}

	f, id, err := s.createMessage(now)
	if err != nil {
		return "", err
	}
	e.ID = id
	committed := false
	defer func() {
		if !committed {
			// Still under the lock: nobody else looks at this entry. The
			// envelope goes first, so that no crash in between leaves an
			// envelope without its message.
			os.Remove(s.envPath(id))
			os.Remove(s.msgPath(id))
		}
		f.Close() // releases the lock
	}()

	r := &trackingReader{r: msg}
	if _, err := io.Copy(f, r); err != nil {
		if r.err != nil {
			return "", fmt.Errorf("spool: reading message: %w", r.err)
		}
		return "", storageErr(err, "write message %s", id)
	}
	if err := f.Sync(); err != nil {
		return "", storageErr(err, "fsync message %s", id)
	}
	if err := safefile.SyncDir(s.msgDir); err != nil {
		return "", storageErr(err, "enqueue %s", id)
	}
	data, err := MarshalEnvelope(&e)
	if err != nil {
		return "", err
	}
	// The commit point: once the envelope is renamed into env/ the entry
	// exists. safefile fsyncs the envelope and env/ before returning.
	if err := s.writeFile(s.envPath(id), data); err != nil {
		return "", storageErr(err, "write envelope %s", id)
	}
	committed = true
	env.ID, env.Arrival, env.NextAttempt = e.ID, e.Arrival, e.NextAttempt
	return id, nil
}

// createMessage creates msg/ID for a fresh ID with O_EXCL and locks it. The
// lock tells Clean that a live writer owns the file; the link count check
// catches a Clean that removed the file between our create and our flock.
func (s *Spool) createMessage(now time.Time) (*os.File, string, error) {
	for range 10 {
		id, err := newID(now)
		if err != nil {
			return nil, "", err
		}
		p := s.msgPath(id)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", storageErr(err, "create message")
		}
		if err := s.owner.own(f); err != nil {
			os.Remove(p)
			f.Close()
			return nil, "", storageErr(err, "create message %s", id)
		}
		if err := flock(f, DefaultLockWait); err != nil {
			f.Close()
			return nil, "", storageErr(err, "lock new message %s", id)
		}
		if linked, err := stillLinked(f); err != nil || !linked {
			f.Close()
			if err != nil {
				return nil, "", storageErr(err, "create message %s", id)
			}
			continue
		}
		if _, err := os.Lstat(s.envPath(id)); !errors.Is(err, fs.ErrNotExist) {
			// An envelope whose message is gone (a damaged entry) has
			// this ID: leave it to Clean and pick another.
			os.Remove(p)
			f.Close()
			continue
		}
		return f, id, nil
	}
	return nil, "", storageErr(errors.New("no free queue id after 10 tries"), "create message")
}

// trackingReader remembers the error of the message source, so Enqueue can
// tell the caller's read errors from its own write errors.
type trackingReader struct {
	r   io.Reader
	err error
}

func (t *trackingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// Load reads the envelope of entry id. It takes no lock: envelopes are only
// ever replaced whole, so Load sees either the old or the new one.
func (s *Spool) Load(id string) (*Envelope, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a queue id", ErrNotFound, id)
	}
	data, err := os.ReadFile(s.envPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, storageErr(err, "read envelope %s", id)
	}
	env, err := ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("spool: envelope %s: %w", id, err)
	}
	if env.ID != id {
		return nil, fmt.Errorf("spool: envelope %s: %w: it names id %s", id, ErrInvalid, env.ID)
	}
	return env, nil
}

// List returns every entry's envelope in ID (arrival) order. An envelope that
// cannot be read is left out and reported in the returned error, together
// with the envelopes that could be read: one damaged entry does not stop the
// queue.
func (s *Spool) List() ([]*Envelope, error) {
	ids, err := s.IDs()
	if err != nil {
		return nil, err
	}
	var envs []*Envelope
	var errs []error
	for _, id := range ids {
		env, err := s.Load(id)
		switch {
		case errors.Is(err, ErrNotFound): // removed since ReadDir
		case err != nil:
			errs = append(errs, err)
		default:
			envs = append(envs, env)
		}
	}
	return envs, errors.Join(errs...)
}

// IDs returns the IDs of all entries in order, without reading envelopes.
func (s *Spool) IDs() ([]string, error) {
	names, err := readDirNames(s.envDir)
	if err != nil {
		return nil, storageErr(err, "list")
	}
	ids := names[:0]
	for _, n := range names {
		if ValidID(n) {
			ids = append(ids, n)
		}
	}
	return ids, nil
}

// Due returns the entries the queue runner should try at now: not held, next
// attempt not in the future, in order of next attempt then ID. An entry with
// no pending recipient left is due too, so a runner that crashed before
// sending its bounce and removing it finishes the job. Errors as for List.
func (s *Spool) Due(now time.Time) ([]*Envelope, error) {
	all, err := s.List()
	due := all[:0]
	for _, e := range all {
		if !e.Hold && !e.NextAttempt.After(now) {
			due = append(due, e)
		}
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].NextAttempt.Before(due[j].NextAttempt) })
	return due, err
}

// OpenMessage opens entry id's message for reading.
func (s *Spool) OpenMessage(id string) (*os.File, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a queue id", ErrNotFound, id)
	}
	f, err := os.Open(s.msgPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, storageErr(err, "open message %s", id)
	}
	return f, nil
}

// Update replaces the envelope of entry env.ID atomically, taking the entry's
// lock for the write (waiting up to s.LockWait). It returns ErrNotFound if the
// entry was removed, and never brings a removed entry back. For a
// read-modify-write cycle that must not lose a concurrent change (the queue
// runner's delivery attempt, sendq hold), use Lock instead.
func (s *Spool) Update(env *Envelope) error {
	l, err := s.Lock(env.ID, s.LockWait)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return l.Update(env)
}

// Remove removes entry id, taking its lock (waiting up to s.LockWait).
func (s *Spool) Remove(id string) error {
	l, err := s.Lock(id, s.LockWait)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return l.Remove()
}

// Clean removes what crashed writers left behind, if older than age:
// temporary envelope files, drops that were never completed (maildrop/.tmp.*,
// and refused drops Pickup could not remove), message files without an envelope (an Enqueue
// that never reached its commit point), and envelopes without a message
// (only possible if something outside postkit deleted files). A message file
// whose writer is still running is never removed, whatever age says: the
// writer holds its lock. It returns how many files it removed.
func (s *Spool) Clean(age time.Duration) (int, error) {
	n := 0
	for _, d := range []string{s.envDir, s.msgDir, s.dropDir} {
		k, err := safefile.RemoveStale(d, age)
		n += k
		if err != nil && !(d == s.dropDir && errors.Is(err, fs.ErrNotExist)) {
			return n, storageErr(err, "clean")
		}
	}
	removed := false
	msgs, err := readDirNames(s.msgDir)
	if err != nil {
		return n, storageErr(err, "clean")
	}
	for _, id := range msgs {
		if ValidID(id) && s.removeOrphan(id, age) {
			n++
			removed = true
		}
	}
	envs, err := readDirNames(s.envDir)
	if err != nil {
		return n, storageErr(err, "clean")
	}
	for _, id := range envs {
		if ValidID(id) && s.removeGhost(id, age) {
			n++
			removed = true
		}
	}
	if removed {
		for _, d := range []string{s.envDir, s.msgDir} {
			if err := safefile.SyncDir(d); err != nil {
				return n, storageErr(err, "clean")
			}
		}
	}
	return n, nil
}

// removeOrphan removes msg/id if it has no envelope, is older than age and
// nobody holds its lock. The envelope check is repeated under the lock:
// an Enqueue holds the lock until its envelope is committed.
func (s *Spool) removeOrphan(id string, age time.Duration) bool {
	if exists(s.envPath(id)) {
		return false
	}
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return false
	}
	defer f.Close()
	if flock(f, 0) != nil {
		return false
	}
	info, err := f.Stat()
	if err != nil || time.Since(info.ModTime()) < age {
		return false
	}
	if linked, err := stillLinked(f); err != nil || !linked || exists(s.envPath(id)) {
		return false
	}
	return os.Remove(s.msgPath(id)) == nil
}

// removeGhost removes env/id if its message file is missing. Enqueue writes
// the message before the envelope and Remove deletes the envelope before the
// message, so postkit itself never leaves an envelope without a message.
func (s *Spool) removeGhost(id string, age time.Duration) bool {
	if exists(s.msgPath(id)) {
		return false
	}
	info, err := os.Lstat(s.envPath(id))
	if err != nil || time.Since(info.ModTime()) < age {
		return false
	}
	return os.Remove(s.envPath(id)) == nil
}

// LockRunner takes the queue runner lock (the file runner.lock), which only
// one `sendq run` may hold; it fails at once with ErrRunnerActive if another
// process holds it. The kernel releases the lock when the holder exits.
func (s *Spool) LockRunner() (*safefile.Lock, error) {
	path := filepath.Join(s.dir, "runner.lock")
	// A lock file root creates must belong to the spool's owner too, or
	// the next runner, running as the owner, could not open it.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		err = s.owner.own(f)
		f.Close()
		if err != nil {
			os.Remove(path)
			return nil, storageErr(err, "runner lock")
		}
	}
	l, err := safefile.LockFile(path, 0)
	if errors.Is(err, safefile.ErrLockTimeout) {
		return nil, fmt.Errorf("%w (%s is locked)", ErrRunnerActive, filepath.Join(s.dir, "runner.lock"))
	}
	if err != nil {
		return nil, storageErr(err, "runner lock")
	}
	return l, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// stillLinked reports whether the open file f still has a name: false after
// someone unlinked it.
func stillLinked(f *os.File) (bool, error) {
	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink > 0, nil
}
