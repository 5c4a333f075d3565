package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/postkit/postkit/safefile"
	"golang.org/x/sys/unix"
)

// EntryLock is the exclusive lock on one entry, an flock(2) on its queue
// file. Enqueue holds it while it writes the entry, the queue runner for a
// whole delivery attempt, sendq rm and hold for their change. The kernel
// drops it when the holder exits, however it exits. An EntryLock is for one
// goroutine.
type EntryLock struct {
	s  *Spool
	id string
	f  *os.File
}

// Lock takes entry id's lock, waiting up to wait for another holder (zero:
// try once). It returns ErrBusy when the wait ran out and ErrNotFound when
// the entry does not exist or was removed while Lock waited.
func (s *Spool) Lock(id string, wait time.Duration) (*EntryLock, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q is not a queue id", ErrNotFound, id)
	}
	f, err := s.openEntry(id, "lock")
	if err != nil {
		return nil, err
	}
	if err := flock(f, wait); err != nil {
		f.Close()
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, id)
		}
		return nil, storageErr(err, "lock %s", id)
	}
	// Whoever held the lock may have removed the entry.
	linked, err := stillLinked(f)
	if err != nil {
		f.Close()
		return nil, storageErr(err, "lock %s", id)
	}
	if !linked {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return &EntryLock{s: s, id: id, f: f}, nil
}

// ID returns the ID of the locked entry.
func (l *EntryLock) ID() string { return l.id }

// Load reads the locked entry's envelope.
func (l *EntryLock) Load() (*Envelope, error) { return l.s.load(l.id, l.f) }

// OpenMessage opens the locked entry's message for reading. Closing it does
// not release the lock.
func (l *EntryLock) OpenMessage() (*Message, error) { return l.s.OpenMessage(l.id) }

// Update replaces the locked entry's envelope atomically (as
// safefile.WriteFile does, the new file env/ID owned by the spool's owner): a
// crash leaves the old envelope or the new one, never a mix.
func (l *EntryLock) Update(env *Envelope) error {
	if env.ID != l.id {
		return fmt.Errorf("%w: update of %s with the envelope of %q", ErrInvalid, l.id, env.ID)
	}
	data, err := MarshalEnvelope(env)
	if err != nil {
		return err
	}
	// Removal happens only under the lock we hold, so this check cannot go
	// stale before the rename below.
	if linked, err := stillLinked(l.f); err != nil || !linked {
		if err != nil {
			return storageErr(err, "update %s", l.id)
		}
		return fmt.Errorf("%w: %s", ErrNotFound, l.id)
	}
	if err := l.s.writeFile(l.s.envPath(l.id), data); err != nil {
		return storageErr(err, "update %s", l.id)
	}
	return nil
}

// Remove removes the locked entry: the queue file first (the entry is gone
// at that moment), then env/ID if the entry was ever updated, after making
// the first removal durable. A crash in between leaves an envelope without
// an entry, which readers ignore and Clean removes.
func (l *EntryLock) Remove() error {
	// Updates happen only under the lock we hold: this cannot go stale.
	updated := exists(l.s.envPath(l.id))
	err := os.Remove(l.s.queuePath(l.id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, l.id)
	}
	if err != nil {
		return storageErr(err, "remove %s", l.id)
	}
	if !updated {
		// Nothing was ever recorded about the entry, so every recipient
		// was in the attempt that finished it: a machine crash that
		// undoes this unlink delivers that attempt again, the duplicate
		// of the delivery in flight that a crash can always cause. (A
		// killed process cannot undo it.) Postfix and qmail do not fsync
		// removals either; an fsync here would be one flush of the disk
		// per delivered message.
		return nil
	}
	// Durable before env/ID goes: a crash must not bring back the queue
	// file without the envelope that records which recipients are done.
	if err := safefile.SyncDir(l.s.queueDir); err != nil {
		return storageErr(err, "remove %s", l.id)
	}
	if err := unix.Unlink(l.s.envPath(l.id)); err != nil && !errors.Is(err, unix.ENOENT) {
		return storageErr(&os.PathError{Op: "unlink", Path: l.s.envPath(l.id), Err: err}, "remove envelope %s", l.id)
	}
	return nil
}

// Unlock releases the lock.
func (l *EntryLock) Unlock() error { return l.f.Close() }

// flock takes an exclusive flock on f, retrying for up to wait; it returns
// ErrBusy when the wait runs out. Polling with LOCK_NB rather than blocking
// keeps the wait bounded.
func flock(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		if !time.Now().Before(deadline) {
			return ErrBusy
		}
		time.Sleep(pause)
		pause = min(pause*2, 50*time.Millisecond)
	}
}
