package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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

// maxEnvelope is the longest envelope a queue file may start with: far
// more than the recipient limits of smtpd and sendmail let in, and a bound
// on what a reader of a damaged file reads before it gives up.
const maxEnvelope = 4 << 20

// Spool is one queue directory. Its methods are safe for concurrent use by
// several goroutines and processes (see the package documentation for who may
// write what).
type Spool struct {
	dir, queueDir, envDir, dropDir string
	owner                          fileOwner
	// pickupMu serialises Pickup; dropsLeft are drops it could not
	// remove, never to be looked at again by this process.
	pickupMu  sync.Mutex
	dropsLeft map[string]bool
	// LockWait is how long Update and Remove wait for an entry's lock before
	// returning ErrBusy; Open sets DefaultLockWait.
	LockWait time.Duration
}

// Open opens the spool in dir, creating what is missing of its layout:
// dir (mode 0711), dir/queue and dir/env (mode 0700), dir/maildrop (mode
// 1733). Directories it creates inside an existing dir belong to dir's
// owner, also when Open runs as root (see the package documentation).
func Open(dir string) (*Spool, error) {
	s := &Spool{
		dir:      dir,
		queueDir: filepath.Join(dir, "queue"),
		envDir:   filepath.Join(dir, "env"),
		dropDir:  filepath.Join(dir, MaildropDir),
		LockWait: DefaultLockWait,
	}
	created := false
	for _, d := range []string{dir, s.queueDir, s.envDir, s.dropDir} {
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

func (s *Spool) queuePath(id string) string { return filepath.Join(s.queueDir, id) }
func (s *Spool) envPath(id string) string   { return filepath.Join(s.envDir, id) }

// writeBufs are Enqueue's write buffers: one queue file is usually written
// with one write(2), and a busy smtpd does not allocate a buffer per message.
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Enqueue stores a message and its envelope. It sets env.ID, env.Arrival and
// env.NextAttempt (to the arrival time: due at once) and returns the ID once
// the queue file and its directory are fsynced. On error nothing is visible:
// a StorageError is temporary; an error wrapping ErrInvalid means env was
// unusable; an error from msg is returned wrapped. Enqueue never waits for
// the queue runner, which need not be running.
func (s *Spool) Enqueue(env *Envelope, msg io.Reader) (string, error) {
	now := time.Now().UTC().Round(0)
	id, err := newID(now)
	if err != nil {
		return "", err
	}
	return s.enqueue(env, msg, id, now, true)
}

// errIDTaken is wrapped by the error of enqueueAs when its ID is taken.
var errIDTaken = fmt.Errorf("queue id is taken: %w", fs.ErrExist)

// enqueueAs is Enqueue with an ID the caller chose: Pickup gives a drop's
// entry the queue ID the drop's name starts with. It never renumbers: if
// queue/ID or env/ID exists, it removes its temporary and fails with an
// error wrapping errIDTaken (and so fs.ErrExist). It never touches the
// existing files: the rename that commits never replaces anything.
func (s *Spool) enqueueAs(id string, env *Envelope, msg io.Reader) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("spool: %w: %q is not a queue id", ErrInvalid, id)
	}
	return s.enqueue(env, msg, id, time.Now().UTC().Round(0), false)
}

// enqueue is Enqueue and enqueueAs: it writes the entry under id, arriving
// at now. With renumber, a taken id is replaced by a fresh one; without,
// the ID being taken is an error.
func (s *Spool) enqueue(env *Envelope, msg io.Reader, id string, now time.Time, renumber bool) (string, error) {
	e := *env
	e.Arrival, e.NextAttempt = now, now
	e.ID = id
	// MarshalEnvelope checks the envelope before anything is written.
	head, err := MarshalEnvelope(&e)
	if err != nil {
		return "", err
	}

	f, err := s.createTemp()
	if err != nil {
		return "", err
	}
	name := f.Name() // where the file is: removed again unless committed
	committed := false
	defer func() {
		if !committed {
			os.Remove(name)
		}
		f.Close() // releases the lock
	}()

	w := writeBufs.Get().(*bufio.Writer)
	w.Reset(f)
	w.Write(head)
	w.WriteByte('\n')
	r := &trackingReader{r: msg}
	_, err = w.ReadFrom(r)
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	writeBufs.Put(w)
	if err != nil {
		if r.err != nil {
			return "", fmt.Errorf("spool: reading message: %w", r.err)
		}
		return "", storageErr(err, "write entry %s", id)
	}
	if err := f.Sync(); err != nil {
		return "", storageErr(err, "fsync entry %s", id)
	}
	// The rename is the commit point: readers see queue/ID whole or not
	// at all. It never replaces an existing entry; on a clash of IDs (two
	// messages in one millisecond drawing the same 32 random bits), or with
	// a leftover envelope of a removed entry under the same ID, the file
	// gets a new ID, written in place, unless the caller chose the ID.
	for tries := 0; ; tries++ {
		if !exists(s.envPath(id)) {
			err = safefile.RenameNoReplace(name, s.queuePath(id))
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) {
				return "", storageErr(err, "commit entry %s", id)
			}
		}
		if !renumber {
			return "", fmt.Errorf("spool: commit entry %s: %w", id, errIDTaken)
		}
		if tries == 10 {
			return "", storageErr(errors.New("no free queue id after 10 tries"), "commit entry")
		}
		if id, err = s.renumber(f, head, id, now); err != nil {
			return "", err
		}
	}
	name = s.queuePath(id)
	if err := safefile.SyncDir(s.queueDir); err != nil {
		return "", storageErr(err, "enqueue %s", id)
	}
	committed = true
	env.ID, env.Arrival, env.NextAttempt = id, e.Arrival, e.NextAttempt
	return id, nil
}

// createTemp creates and locks a temporary queue file, owned by the spool's
// owner. The lock tells Clean that a live writer owns the file; the link
// count check catches a Clean that removed it between create and flock.
func (s *Spool) createTemp() (*os.File, error) {
	for range 10 {
		f, err := safefile.CreateTemp(s.queueDir, 0o600)
		if err != nil {
			return nil, storageErr(err, "create entry")
		}
		if err := s.owner.own(f); err != nil {
			os.Remove(f.Name())
			f.Close()
			return nil, storageErr(err, "create entry")
		}
		if err := flock(f, DefaultLockWait); err != nil {
			os.Remove(f.Name())
			f.Close()
			return nil, storageErr(err, "lock new entry")
		}
		if linked, err := stillLinked(f); err != nil || !linked {
			f.Close()
			if err != nil {
				return nil, storageErr(err, "create entry")
			}
			continue
		}
		return f, nil
	}
	return nil, storageErr(errors.New("temporary files vanish as they are created"), "create entry")
}

// renumber gives the queue file f, whose envelope head names id, a fresh ID:
// IDs have a fixed length, so the new one is written over the old in place.
func (s *Spool) renumber(f *os.File, head []byte, id string, now time.Time) (string, error) {
	fresh, err := newID(now)
	if err != nil {
		return "", err
	}
	at := bytes.Index(head, []byte("\nid "+id+"\n"))
	if at < 0 || len(fresh) != len(id) {
		return "", fmt.Errorf("spool: %w: cannot renumber entry %s", ErrInvalid, id)
	}
	if _, err := f.WriteAt([]byte(fresh), int64(at+len("\nid "))); err != nil {
		return "", storageErr(err, "renumber entry %s", id)
	}
	copy(head[at+len("\nid "):], fresh)
	if err := f.Sync(); err != nil {
		return "", storageErr(err, "fsync entry %s", fresh)
	}
	return fresh, nil
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

// Load reads the envelope of entry id: env/ID if the entry has been updated,
// else the one at the start of queue/ID. It takes no lock: envelopes are only
// ever replaced whole, so Load sees either the old or the new one.
func (s *Spool) Load(id string) (*Envelope, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a queue id", ErrNotFound, id)
	}
	return s.load(id, nil)
}

// load reads entry id's envelope: env/ID if there is one, else the head of
// the queue file. locked is the queue file when the caller holds the
// entry's lock (EntryLock), nil for an unlocked read.
func (s *Spool) load(id string, locked *os.File) (*Envelope, error) {
	data, err := os.ReadFile(s.envPath(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if locked != nil {
			return readHead(locked, id)
		}
		f, err := s.openEntry(id, "read entry")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readHead(f, id)
	case err != nil:
		return nil, storageErr(err, "read envelope %s", id)
	}
	// Remove unlinks the queue file before env/ID: an envelope without it
	// belongs to an entry that is gone (or going). Under the lock nobody
	// removes it.
	if locked == nil && !exists(s.queuePath(id)) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return parseEntryEnvelope(data, id)
}

// openEntry opens the queue file of entry id for reading; op says what for,
// in a StorageError.
func (s *Spool) openEntry(id, op string) (*os.File, error) {
	f, err := os.Open(s.queuePath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, storageErr(err, "%s %s", op, id)
	}
	return f, nil
}

// readHead parses the envelope at the start of the queue file f.
func readHead(f *os.File, id string) (*Envelope, error) {
	head, _, err := headOf(f, id)
	if err != nil {
		return nil, err
	}
	return parseEntryEnvelope(head, id)
}

// headOf reads the envelope at the start of the queue file f, up to the
// empty line after it, and returns it with the offset of the message. It
// reads with ReadAt, so f's offset stays where it was.
func headOf(f *os.File, id string) (head []byte, body int64, err error) {
	// Queue files are written by Enqueue: a line of theirs has no limit
	// of its own, only the envelope has.
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, math.MaxInt64), 4096)
	head, err = readEnvelope(br, maxEnvelope, maxEnvelope)
	switch {
	case errors.Is(err, ErrInvalid):
		return nil, 0, fmt.Errorf("spool: entry %s: %w", id, err)
	case err != nil:
		return nil, 0, storageErr(err, "read entry %s", id)
	}
	return head, int64(len(head) + 1), nil
}

// readEnvelope reads an envelope from r: its lines, up to the first empty
// one, which ends it (an envelope's lines are never empty). It returns the
// envelope without the empty line and leaves r at the first byte after
// it, the message's. Both queue files and drops start this way; for a
// drop, which comes from an untrusted user, the limits are tighter.
//
// A line longer than maxLine bytes with its newline, an envelope longer
// than maxSize bytes, or input that ends before the empty line is an error
// wrapping ErrInvalid, and readEnvelope reads no further; any other error
// is r's, for the caller to report as a StorageError.
func readEnvelope(r *bufio.Reader, maxLine, maxSize int) ([]byte, error) {
	var head []byte
	start, lineNo := 0, 1 // where the current line starts in head, and its number
	for {
		frag, err := r.ReadSlice('\n')
		n := len(head) - start + len(frag)
		if err != nil {
			n++ // the newline the line still needs
		}
		switch {
		case n > maxLine:
			return nil, fmt.Errorf("%w: envelope line %d longer than %d bytes", ErrInvalid, lineNo, maxLine)
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%w: no empty line after the envelope (truncated?)", ErrInvalid)
		case err != nil && !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		case err == nil && len(frag) == 1 && start == len(head):
			return head, nil
		case len(head)+len(frag) > maxSize:
			return nil, fmt.Errorf("%w: envelope longer than %d bytes", ErrInvalid, maxSize)
		}
		head = append(head, frag...)
		if err == nil {
			start = len(head)
			lineNo++
		}
	}
}

func parseEntryEnvelope(data []byte, id string) (*Envelope, error) {
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
	names, err := readDirNames(s.queueDir)
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

// Message is an entry's message open for reading: exactly the bytes that
// were enqueued, the part of the queue file after the envelope. Size is its
// length.
type Message struct {
	*io.SectionReader
	f *os.File
}

// Close closes the queue file.
func (m *Message) Close() error { return m.f.Close() }

// OpenMessage opens entry id's message for reading.
func (s *Spool) OpenMessage(id string) (*Message, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a queue id", ErrNotFound, id)
	}
	f, err := s.openEntry(id, "open message")
	if err != nil {
		return nil, err
	}
	_, body, err := headOf(f, id)
	if err == nil {
		var info os.FileInfo
		if info, err = f.Stat(); err == nil {
			return &Message{SectionReader: io.NewSectionReader(f, body, info.Size()-body), f: f}, nil
		}
		err = storageErr(err, "open message %s", id)
	}
	f.Close()
	return nil, err
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
// temporary queue files (an Enqueue that never reached its commit point)
// and envelopes, drops that were never completed (maildrop/.tmp.*, and
// refused drops Pickup could not remove), and envelopes in env/ whose entry
// is gone (a Remove that crashed half way). A temporary queue file whose
// writer is still running is never removed, whatever age says: the writer
// holds its lock. It returns how many files it removed.
func (s *Spool) Clean(age time.Duration) (int, error) {
	n := 0
	for _, d := range []string{s.envDir, s.dropDir} {
		k, err := safefile.RemoveStale(d, age)
		n += k
		if err != nil && !(d == s.dropDir && errors.Is(err, fs.ErrNotExist)) {
			return n, storageErr(err, "clean")
		}
	}
	removed := false
	names, err := readDirNames(s.queueDir)
	if err != nil {
		return n, storageErr(err, "clean")
	}
	for _, name := range names {
		if strings.HasPrefix(name, safefile.TempPrefix) && s.removeTemp(name, age) {
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
		for _, d := range []string{s.queueDir, s.envDir} {
			if err := safefile.SyncDir(d); err != nil {
				return n, storageErr(err, "clean")
			}
		}
	}
	return n, nil
}

// removeTemp removes the temporary queue file name if it is older than age
// and nobody holds its lock: a live Enqueue holds it until it has renamed
// the file to its entry's name.
func (s *Spool) removeTemp(name string, age time.Duration) bool {
	p := filepath.Join(s.queueDir, name)
	f, err := os.Open(p)
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
	if linked, err := stillLinked(f); err != nil || !linked {
		return false
	}
	return os.Remove(p) == nil
}

// removeGhost removes env/id if its entry is gone. Updates happen only
// while queue/ID exists and its lock is held, and Remove unlinks the queue
// file first: an envelope without a queue file is what a Remove that
// crashed in between leaves.
func (s *Spool) removeGhost(id string, age time.Duration) bool {
	if exists(s.queuePath(id)) {
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
