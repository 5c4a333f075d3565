package pop3

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/postkit/postkit/maildir"
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
	files []string // current name in cur/ of each message
	msgs  []Message
}

// OpenMaildir locks the Maildir at path, creating it if it does not exist
// yet, moves new messages to cur/, and makes the listing. It returns ErrInUse
// when another session holds the lock. Problems that do not stop the session
// (the size cache cannot be written) go to logger, if not nil.
func OpenMaildir(path string, logger *log.Logger) (*Maildrop, error) {
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
	if err := m.list(logger); err != nil {
		lock.Unlock()
		return nil, err
	}
	return m, nil
}

// entry is a message file found in cur/ with what sorts it.
type entry struct {
	name      string
	sec, usec int64
}

// list moves new/ to cur/ and builds the listing.
func (m *Maildrop) list(logger *log.Logger) error {
	news, err := os.ReadDir(m.dir.New())
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	for _, e := range news {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		// As Dovecot does, a message a reader has seen goes to cur/
		// with ":2," added. An IMAP session may move it first.
		if _, err := m.dir.MoveToCur(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pop3: %w", err)
		}
	}
	curs, err := os.ReadDir(m.dir.Cur())
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	var entries []entry
	for _, e := range curs {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		sec, usec, ok := deliveryTime(e.Name())
		if !ok {
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			sec, usec = info.ModTime().Unix(), int64(info.ModTime().Nanosecond()/1000)
		}
		entries = append(entries, entry{name: e.Name(), sec: sec, usec: usec})
	}
	// The listing is in delivery order (RFC 1939 leaves the order to the
	// server; oldest first is what clients expect).
	slices.SortFunc(entries, func(a, b entry) int {
		if a.sec != b.sec {
			return cmpInt(a.sec, b.sec)
		}
		if a.usec != b.usec {
			return cmpInt(a.usec, b.usec)
		}
		return strings.Compare(a.name, b.name)
	})

	cachePath := filepath.Join(string(m.dir), SizeCacheFile)
	cache, err := readSizeCache(cachePath)
	if err != nil && logger != nil {
		logger.Printf("pop3: warning maildir=%s error=%s", quote(string(m.dir)), quote(err.Error()))
	}
	used := map[string]cachedSize{}
	changed := false
	seen := map[string]bool{}
	for _, e := range entries {
		key, _, _ := strings.Cut(e.name, ":")
		vsize := maildir.ParseName(e.name).VSize
		if vsize < 0 {
			var c cachedSize
			var ok bool
			c, ok, err = m.cachedVSize(e.name, cache[key])
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return err
			}
			changed = changed || !ok
			used[key] = c
			vsize = c.vsize
		}
		uid := UID(e.name)
		if seen[uid] {
			// Two files with the same name before ':' (a Maildir copied
			// together by hand): RFC 1939 §7 wants unique values, so the
			// second one is named by its whole file name, which has a ':'
			// and so cannot be anyone's key.
			sum := sha256.Sum256([]byte(e.name))
			uid = "%%" + hex.EncodeToString(sum[:])
		}
		seen[uid] = true
		m.files = append(m.files, e.name)
		m.msgs = append(m.msgs, Message{UID: uid, Size: vsize})
	}
	if changed || len(used) != len(cache) {
		if err := writeSizeCache(cachePath, used); err != nil && logger != nil {
			logger.Printf("pop3: warning maildir=%s error=%s", quote(string(m.dir)), quote(err.Error()))
		}
	}
	return nil
}

// cachedVSize returns the size with CRLF line endings of the file name in
// cur/, from the cache entry c if it is for a file of the same size, else by
// reading the file. ok reports that c was used.
func (m *Maildrop) cachedVSize(name string, c cachedSize) (cachedSize, bool, error) {
	f, err := os.Open(filepath.Join(m.dir.Cur(), name))
	if err != nil {
		return c, false, fmt.Errorf("pop3: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return c, false, fmt.Errorf("pop3: %w", err)
	}
	if c.size == info.Size() && c.vsize >= c.size {
		return c, true, nil
	}
	vsize, err := maildir.VirtualSize(f)
	if err != nil {
		return c, false, fmt.Errorf("pop3: counting size of %s: %w", name, err)
	}
	return cachedSize{vsize: vsize, size: info.Size()}, false, nil
}

// deliveryTime reads the seconds and microseconds from a name of the form
// SECONDS.M<usec>... (Dovecot's and postkit's); usec is 0 for the older
// SECONDS.PID.HOST form.
func deliveryTime(name string) (sec, usec int64, ok bool) {
	s, rest, found := strings.Cut(name, ".")
	if !found {
		return 0, 0, false
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return 0, 0, false
	}
	if rest, found := strings.CutPrefix(rest, "M"); found {
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(rest)
		}
		usec, _ = strconv.ParseInt(rest[:end], 10, 64)
	}
	return sec, usec, true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Messages returns the listing fixed at login.
func (m *Maildrop) Messages() []Message { return m.msgs }

// Open returns message i with CRLF line endings (maildir.NewCRLFReader).
func (m *Maildrop) Open(i int) (io.ReadCloser, error) {
	var f *os.File
	err := m.withFile(i, func(path string) error {
		var err error
		f, err = os.Open(path)
		return err
	})
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{maildir.NewCRLFReader(f), f}, nil
}

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
