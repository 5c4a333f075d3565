package resolve

import (
	"sync"
	"time"

	"github.com/postkit/postkit/control"
)

// Cache hands long-running programs (smtpd, the queue runner) the Resolver
// of one root, and loads etc/users, etc/aliases and etc/domains again only
// when one of them may have changed: another control.Stamp (inode, size,
// modification or change time; mkuser replaces files by rename, so each of
// its changes gives a new inode), or a stamp that is not Settled (a file
// changed less than control.RacyWindow before the last load).
// Loading parses every user and alias, which for a large users file costs
// far more than the three stat(2) calls per use that the check takes; a
// Cache answers as Load would. Resolvers are read-only and safe to share.
type Cache struct {
	Root control.Root

	mu       sync.Mutex
	r        *Resolver
	stamps   [3]control.Stamp
	loadedAt time.Time
}

// cacheFiles are the files a Resolver is made from, in the order of
// Cache.stamps.
var cacheFiles = [3]string{"users", "aliases", "domains"}

// Load returns the Resolver for the files as they are now, as Load does.
func (c *Cache) Load() (*Resolver, error) {
	// The time and the stamps are taken before the files are read, as
	// control.Stamp.Settled wants: a change while they are read, or later
	// within the tick of a file's times, makes the next Load read them
	// again.
	start := time.Now()
	var now [3]control.Stamp
	for i, name := range cacheFiles {
		now[i] = control.StampOf(c.Root.Etc(name))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r != nil && now == c.stamps && c.settled(now) {
		return c.r, nil
	}
	r, err := Load(c.Root)
	if err != nil {
		c.r = nil
		return nil, err
	}
	c.r, c.stamps, c.loadedAt = r, now, start
	return r, nil
}

// settled reports whether every file's stamp proves it unchanged since the
// last load.
func (c *Cache) settled(stamps [3]control.Stamp) bool {
	for _, s := range stamps {
		if !s.Settled(c.loadedAt) {
			return false
		}
	}
	return true
}
