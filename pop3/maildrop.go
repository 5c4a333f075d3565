package pop3

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/safefile"
)

// LockFile is the name of the lock file in a Maildir root that a POP3
// session holds with flock(2) from login to the end of the session
// (RFC 1939 §8). The kernel releases it when the process ends, even by
// kill -9, so no stale lock is ever left.
const LockFile = "pop3.lock"

// A Maildrop is a Maildir opened for one POP3 session. It implements Mailbox.
type Maildrop struct {
	dir   maildir.Dir
	lock  *safefile.Lock
	files []string // name in cur/ of each message, as last seen (see withFile)
	msgs  []Message
}

// OpenMaildir locks the Maildir at path, creating it if it does not exist
// yet, makes the listing from its dovecot-uidlist (package uidlist, which
// gives new messages their UIDs), and moves the listed messages in new/ to
// cur/. It returns ErrInUse when another session holds the lock. Problems
// that do not stop the session (the size cache cannot be written) go to
// logger, if not nil. Maildirs.Open does the same faster for mailboxes
// opened before.
func OpenMaildir(path string, logger *log.Logger) (*Maildrop, error) {
	return openMaildir(path, uidlist.Open(path, nil), logger)
}

// openMaildir is OpenMaildir with uids the Maildir's UID list.
func openMaildir(path string, uids *uidlist.Mailbox, logger *log.Logger) (*Maildrop, error) {
	if _, err := os.Stat(filepath.Join(path, "cur")); errors.Is(err, fs.ErrNotExist) {
		// A user who never got mail logs in: an empty mailbox, not an error.
		if err := maildir.Create(path); err != nil {
			return nil, fmt.Errorf("pop3: %w", err)
		}
	}
	lock, err := safefile.LockFile(filepath.Join(path, LockFile), 0)
	if errors.Is(err, safefile.ErrLockTimeout) {
		return nil, ErrInUse
	}
	if err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	m := &Maildrop{dir: maildir.Dir(path), lock: lock}
	if err := m.list(uids, logger); err != nil {
		lock.Unlock()
		return nil, err
	}
	return m, nil
}

// list brings the UID list up to date, builds the listing from it and moves
// the listed messages from new/ to cur/.
func (m *Maildrop) list(uids *uidlist.Mailbox, logger *log.Logger) error {
	// The UID list first: what it finds is the session's listing, so a
	// message delivered afterwards waits in new/ for the next login.
	state, err := uids.Sync()
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	// UID order, except for the POP3 order a migrated mailbox may record
	// (Dovecot's pop3 sorts by MAIL_SORT_POP3_ORDER, ties by UID).
	entries := slices.Clone(state.Entries)
	slices.SortStableFunc(entries, func(a, b uidlist.Entry) int {
		return cmp.Compare(pop3Order(a), pop3Order(b))
	})
	m.files = make([]string, 0, len(entries))
	m.msgs = make([]Message, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.InNew() {
			// As Dovecot does, a message a reader has seen goes to cur/
			// with ":2," added. An IMAP session may move it first; its
			// name up to ':' finds it then (withFile).
			cur, err := m.dir.MoveToCur(name)
			switch {
			case err == nil:
				name = cur
			case errors.Is(err, fs.ErrNotExist):
				name = e.Base
			default:
				return fmt.Errorf("pop3: %w", err)
			}
		}
		m.files = append(m.files, name)
		m.msgs = append(m.msgs, Message{UID: entryUIDL(e, state.UIDValidity), Size: e.VSize})
	}
	return m.countSizes(logger)
}

// countSizes fills in the sizes that neither the file names nor the UID list
// record, from the size cache or by reading the files, and drops messages
// removed meanwhile.
func (m *Maildrop) countSizes(logger *log.Logger) error {
	cachePath := filepath.Join(string(m.dir), SizeCacheFile)
	cache, err := readSizeCache(cachePath)
	if err != nil && logger != nil {
		logger.Printf("warning maildir=%s error=%s", quote(string(m.dir)), quote(err.Error()))
	}
	used := map[string]cachedSize{}
	changed := false
	kept := 0
	for i := range m.msgs {
		if m.msgs[i].Size < 0 {
			key := uidlist.BaseName(m.files[i])
			var c cachedSize
			var ok bool
			err := m.withFile(i, func(path string) error {
				var err error
				c, ok, err = cachedVSize(path, cache[key])
				return err
			})
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotMessage) {
				continue // removed meanwhile, or a directory
			}
			if err != nil {
				return err
			}
			changed = changed || !ok
			used[key] = c
			m.msgs[i].Size = c.vsize
		}
		m.files[kept], m.msgs[kept] = m.files[i], m.msgs[i]
		kept++
	}
	m.files, m.msgs = m.files[:kept], m.msgs[:kept]
	if changed || len(used) != len(cache) {
		if err := writeSizeCache(cachePath, used); err != nil && logger != nil {
			logger.Printf("warning maildir=%s error=%s", quote(string(m.dir)), quote(err.Error()))
		}
	}
	return nil
}

// errNotMessage is returned for an entry of cur/ that is not a regular file.
var errNotMessage = errors.New("pop3: not a message file")

// cachedVSize returns the size with CRLF line endings of the file at path,
// from the cache entry c if it is for a file of the same size, else by
// reading the file. ok reports that c was used.
func cachedVSize(path string, c cachedSize) (cachedSize, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return c, false, fmt.Errorf("pop3: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return c, false, fmt.Errorf("pop3: %w", err)
	}
	if !info.Mode().IsRegular() {
		return c, false, errNotMessage
	}
	if c.size == info.Size() && c.vsize >= c.size {
		return c, true, nil
	}
	vsize, err := maildir.VirtualSize(f)
	if err != nil {
		return c, false, fmt.Errorf("pop3: counting size of %s: %w", filepath.Base(path), err)
	}
	return cachedSize{vsize: vsize, size: info.Size()}, false, nil
}

// Messages returns the listing fixed at login.
func (m *Maildrop) Messages() []Message { return m.msgs }

// Open returns the file of message i, as stored (LF line endings).
func (m *Maildrop) Open(i int) (io.ReadCloser, error) {
	var f *messageFile
	err := m.withFile(i, func(path string) error {
		var err error
		f, err = openMessageFile(path)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// messageFile is a message file opened for one RETR or TOP, read with plain
// read(2) calls. An os.File would first try to register the regular file
// with the network poller, and fail: four fcntl and one epoll_ctl calls for
// each message sent.
type messageFile struct{ fd int }

func openMessageFile(path string) (*messageFile, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pop3: %w", &fs.PathError{Op: "open", Path: path, Err: err})
		}
		return &messageFile{fd: fd}, nil
	}
}

func (f *messageFile) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *messageFile) Close() error { return unix.Close(f.fd) }

// MarkSeen adds the S flag (renaming the file in cur/), so that IMAP
// clients on the same mailbox show the message as read.
func (m *Maildrop) MarkSeen(i int) error {
	err := m.withFile(i, func(string) error {
		n := maildir.ParseName(m.files[i])
		if n.HasFlag(maildir.FlagSeen) {
			return nil
		}
		newName, err := m.dir.SetFlags(m.files[i], n.Flags+string(maildir.FlagSeen))
		if err != nil {
			return err
		}
		m.files[i] = newName
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed by another program: nothing to mark
	}
	return err
}

// Expunge removes the messages and fsyncs cur/. Messages that another
// program removed meanwhile are skipped.
func (m *Maildrop) Expunge(indices []int) error {
	var errs []error
	for _, i := range indices {
		err := m.withFile(i, os.Remove)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pop3: %w", err))
		}
	}
	if err := safefile.SyncDir(m.dir.Cur()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withFile calls fn with the path of message i. When the file is gone,
// another program (an IMAP session) may have renamed it to change its flags:
// the file is looked up again by its name up to ':' and fn retried once.
func (m *Maildrop) withFile(i int, fn func(path string) error) error {
	err := fn(filepath.Join(m.dir.Cur(), m.files[i]))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	key, _, _ := strings.Cut(m.files[i], ":")
	entries, rerr := os.ReadDir(m.dir.Cur())
	if rerr != nil {
		return fmt.Errorf("pop3: %w", rerr)
	}
	for _, e := range entries {
		if k, _, _ := strings.Cut(e.Name(), ":"); k == key && e.Name() != m.files[i] {
			m.files[i] = e.Name()
			return fn(filepath.Join(m.dir.Cur(), e.Name()))
		}
	}
	return err
}

// Close releases the lock.
func (m *Maildrop) Close() error { return m.lock.Unlock() }
