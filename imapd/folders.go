package imapd

import (
	"runtime"
	"sync"
	"weak"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// folders shares the UID list (uidlist.Mailbox) and the cache
// (imapcache.Cache) of each folder among the sessions of a process. A
// Mailbox remembers its last Sync and a Cache its loaded file, both
// checked against the disk with a few stat calls, so a folder that one
// session already read costs the next SELECT, STATUS or FETCH no listing
// and no re-reading, and one State serves every session viewing it. Both
// are safe for concurrent use. The table holds them weakly: a folder no
// session uses any more is left to the garbage collector.
type folders struct {
	mu     sync.Mutex
	boxes  map[folderKey]weak.Pointer[uidlist.Mailbox]
	caches map[string]weak.Pointer[imapcache.Cache]
}

type folderKey struct{ dir, root string }

// box returns the shared Mailbox of the folder d of the Maildir++ root
// root.
func (f *folders) box(d maildir.Dir, root maildir.Dir) *uidlist.Mailbox {
	k := folderKey{string(d), string(root)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.boxes[k].Value(); b != nil {
		return b
	}
	if f.boxes == nil {
		f.boxes = map[folderKey]weak.Pointer[uidlist.Mailbox]{}
	}
	b := uidlist.Open(string(d), &uidlist.Options{Root: string(root)})
	wp := weak.Make(b)
	f.boxes[k] = wp
	runtime.AddCleanup(b, func(k folderKey) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.boxes[k] == wp {
			delete(f.boxes, k)
		}
	}, k)
	return b
}

// cache returns the shared Cache of the folder d, brought up to date with
// the file if another process replaced it.
func (f *folders) cache(d maildir.Dir) *imapcache.Cache {
	k := string(d)
	f.mu.Lock()
	c := f.caches[k].Value()
	if c == nil {
		if f.caches == nil {
			f.caches = map[string]weak.Pointer[imapcache.Cache]{}
		}
		c = imapcache.Open(k)
		wp := weak.Make(c)
		f.caches[k] = wp
		runtime.AddCleanup(c, func(k string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.caches[k] == wp {
				delete(f.caches, k)
			}
		}, k)
	}
	f.mu.Unlock()
	c.Refresh()
	return c
}
