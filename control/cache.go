package control

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// RacyWindow is how recently a file may have been changed, before it was
// last read, for a cache to read it again anyway. File times come from a
// coarse clock: a file rewritten in place twice within one of its ticks, to
// the same size, keeps its inode, size and times, so a stamp taken in that
// tick proves nothing. Git's index treats such "racily clean" entries the
// same way.
const RacyWindow = time.Second

// Stamp identifies a version of a file: its inode, size, modification and
// change times. The zero value is a missing file. Stamps are comparable
// with ==; equal stamps prove a file unchanged only when Settled.
type Stamp struct {
	ino, size    uint64
	mtime, ctime syscall.Timespec
	unknown      bool // stat failed: never trusted
}

// StampOf returns the stamp of the file at path, with one stat(2). A file
// that cannot be stat'ed for another reason than not existing has an
// unknown stamp, never Settled, so that a cache reads it and reports the
// error.
func StampOf(path string) Stamp {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Stamp{}
	}
	if err != nil {
		return Stamp{unknown: true}
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return Stamp{unknown: true}
	}
	return Stamp{ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim}
}

// Settled reports whether s, taken before a read of its file that started
// at loadedAt, proves the file unchanged since that read whenever a later
// stamp equals s: s is known, and the file's modification and change times
// are older than loadedAt - RacyWindow. A missing file (times zero) is
// always settled.
func (s Stamp) Settled(loadedAt time.Time) bool {
	if s.unknown {
		return false
	}
	limit := loadedAt.Add(-RacyWindow)
	return time.Unix(s.mtime.Unix()).Before(limit) && time.Unix(s.ctime.Unix()).Before(limit)
}

// Cache answers Lines, String, Int and Size as Root does (the same values,
// errors and defaults) for long-running programs such as smtpd, which would
// otherwise read the same control files at every session: it reads a file
// again only when its stamp (one stat(2)) differs from the one taken before
// the last read, or that stamp was not Settled. A read that fails is not
// kept, so an error is reported again at the next call, as Root would.
//
// A Cache is safe for concurrent use; its zero value (with Root set) is
// ready, and it must not be copied after first use. The slices Lines
// returns are shared by every caller and must not be modified.
type Cache struct {
	Root Root

	mu    sync.Mutex
	files map[string]*cachedFile
}

// cachedFile is the last successful read of one control file; it is never
// changed once stored, only replaced.
type cachedFile struct {
	stamp    Stamp // taken before the read
	loadedAt time.Time
	lines    []string
}

// Lines returns what Root.Lines returns for name. The slice is shared:
// callers must not modify it.
func (c *Cache) Lines(name string) ([]string, error) {
	c.mu.Lock()
	f := c.files[name]
	c.mu.Unlock()
	path := c.Root.Etc(name)
	// The time and the stamp are taken before the read: a change during
	// or after the read gives another stamp, or falls within RacyWindow
	// of loadedAt, and either way the next call reads the file again.
	loadedAt := time.Now()
	stamp := StampOf(path)
	if f != nil && f.stamp == stamp && stamp.Settled(f.loadedAt) {
		return f.lines, nil
	}
	lines, err := c.Root.Lines(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.files == nil {
		c.files = make(map[string]*cachedFile)
	}
	c.files[name] = &cachedFile{stamp: stamp, loadedAt: loadedAt, lines: lines}
	c.mu.Unlock()
	return lines, nil
}

// String returns what Root.String returns for name and def.
func (c *Cache) String(name, def string) (string, error) {
	lines, err := c.Lines(name)
	return firstLine(lines, err, def)
}

// Int returns what Root.Int returns for name and def.
func (c *Cache) Int(name string, def int64) (int64, error) {
	s, err := c.String(name, "")
	return wholeNumber(c.Root, name, s, err, def)
}

// Size returns what Root.Size returns for name and def.
func (c *Cache) Size(name string, def int64) (int64, error) {
	s, err := c.String(name, "")
	return byteCount(c.Root, name, s, err, def)
}
