package resolve

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/control"
)

// racyWindow is how recently a file may have been changed, before the last
// load, for the Cache to read it again anyway. File times come from a coarse
// clock: a file rewritten in place twice within one of its ticks, to the
// same size, keeps its inode, size and times, so a stamp taken in that tick
// proves nothing. Git's index treats "racily clean" entries the same way.
const racyWindow = time.Second

// Cache hands long-running programs (smtpd, the queue runner) the Resolver
// of one root, and loads etc/users, etc/aliases and etc/domains again only
// when one of them may have changed: another inode, size, modification or
// change time (mkuser replaces files by rename, so each of its changes gives
// a new inode), or a file changed less than racyWindow before the last load.
// Loading parses every user and alias, which for a large users file costs
// far more than the three stat(2) calls per use that the check takes; a
// Cache answers as Load would. Resolvers are read-only and safe to share.
type Cache struct {
	Root control.Root

	mu       sync.Mutex
	r        *Resolver
	stamps   [3]fileStamp
	loadedAt time.Time
}

// cacheFiles are the files a Resolver is made from, in the order of
// Cache.stamps.
var cacheFiles = [3]string{"users", "aliases", "domains"}

// fileStamp identifies a version of a file; the zero value is a missing
// file.
type fileStamp struct {
	ino, size    uint64
	mtime, ctime syscall.Timespec
	unknown      bool // stat failed: never trusted
}

// Load returns the Resolver for the files as they are now, as Load does.
func (c *Cache) Load() (*Resolver, error) {
	var now [3]fileStamp
	for i, name := range cacheFiles {
		now[i] = stampOf(c.Root.Etc(name))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r != nil && now == c.stamps && c.settled(now) {
		return c.r, nil
	}
	// The stamps are taken before the files are read: a change while
	// they are read makes the next Load read them again.
	r, err := Load(c.Root)
	if err != nil {
		c.r = nil
		return nil, err
	}
	c.r, c.stamps, c.loadedAt = r, now, time.Now()
	return r, nil
}

// settled reports whether every file's stamp proves it unchanged since the
// last load.
func (c *Cache) settled(stamps [3]fileStamp) bool {
	limit := c.loadedAt.Add(-racyWindow)
	for _, s := range stamps {
		if s.unknown {
			return false
		}
		for _, t := range []syscall.Timespec{s.mtime, s.ctime} {
			if !time.Unix(t.Unix()).Before(limit) {
				return false
			}
		}
	}
	return true
}

// stampOf returns path's stamp; a file that cannot be stat'ed for another
// reason than not existing is unknown, so that Load reads it and reports
// the error.
func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}
	}
	if err != nil {
		return fileStamp{unknown: true}
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{unknown: true}
	}
	return fileStamp{ino: st.Ino, size: uint64(st.Size), mtime: st.Mtim, ctime: st.Ctim}
}
