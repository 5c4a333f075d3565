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

// EntryLock is the exclusive lock on one entry, an flock(2) on its message
// file. Enqueue holds it while it writes the entry, the queue runner for a
// whole delivery attempt, sendq rm and hold for their change, Clean before it
// removes an orphan. The kernel drops it when the holder exits, however it
// exits. An EntryLock is for one goroutine.
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
	f, err := os.Open(s.msgPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		if exists(s.envPath(id)) {
			return nil, fmt.Errorf("spool: entry %s: %w: envelope without message file (Clean removes it)", id, ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, storageErr(err, "lock %s", id)
	}
	if err := flock(f, wait); err != nil {
		f.Close()
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("%w: %s", ErrBusy, id)
		}
		return nil, storageErr(err, "lock %s", id)
	}
	// Whoever held the lock may have removed the entry, or it may be an
	// orphan whose writer failed or crashed.
	linked, err := stillLinked(f)
	if err != nil {
		f.Close()
		return nil, storageErr(err, "lock %s", id)
	}
	if !linked || !exists(s.envPath(id)) {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return &EntryLock{s: s, id: id, f: f}, nil
}

// ID returns the ID of the locked entry.
func (l *EntryLock) ID() string { return l.id }

// Load reads the locked entry's envelope.
func (l *EntryLock) Load() (*Envelope, error) { return l.s.Load(l.id) }

// OpenMessage opens the locked entry's message for reading. Closing it does
// not release the lock.
func (l *EntryLock) OpenMessage() (*os.File, error) { return l.s.OpenMessage(l.id) }

// Update replaces the locked entry's envelope atomically (as
// safefile.WriteFile does, the new file owned by the spool's owner): a crash
// leaves the old envelope or the new one, never a mix.
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
	if !exists(l.s.envPath(l.id)) {
		return fmt.Errorf("%w: %s", ErrNotFound, l.id)
	}
	if err := l.s.writeFile(l.s.envPath(l.id), data); err != nil {
		return storageErr(err, "update %s", l.id)
	}
	return nil
}

// Remove removes the locked entry: the envelope first (the entry is gone at
// that moment), then the message. A crash in between leaves an orphaned
// message file, which Clean removes.
func (l *EntryLock) Remove() error {
	err := os.Remove(l.s.envPath(l.id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, l.id)
	}
	if err != nil {
		return storageErr(err, "remove %s", l.id)
	}
	// Make the removal durable before the message goes: a crash must not
	// bring back an envelope whose message is already gone.
	if err := safefile.SyncDir(l.s.envDir); err != nil {
		return storageErr(err, "remove %s", l.id)
	}
	// No fsync of msg/ after this: if a crash undoes the unlink, the
	// message is an orphan that Clean removes.
	if err := os.Remove(l.s.msgPath(l.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storageErr(err, "remove message %s", l.id)
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
