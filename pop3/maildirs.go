package pop3

import (
	"container/list"
	"log"
	"sync"

	"github.com/postkit/postkit/maildir/uidlist"
)

// DefaultRemembered is how many Maildirs a Maildirs value remembers when its
// Remember field is zero.
const DefaultRemembered = 100

// Maildirs opens Maildirs for sessions and remembers the UID lists of the
// last ones opened (uidlist.Mailbox keeps its last Sync), so that a login to
// a mailbox in which nothing changed since the last session costs three
// stat calls instead of reading dovecot-uidlist and listing new/ and cur/:
// POP3 clients mostly log in to find nothing new. Whether anything changed
// is uidlist's check (the uidlist file's identity, the directories' mtimes),
// not a guess. The zero value is ready to use, and it is safe for
// concurrent use.
type Maildirs struct {
	// Remember is how many Maildirs' UID lists are kept, least recently
	// opened dropped first; DefaultRemembered if zero. Each costs memory
	// in proportion to its messages (about 300 bytes each).
	Remember int

	mu    sync.Mutex
	lists map[string]*list.Element // path -> element holding *uidlist.Mailbox
	order list.List                // most recently opened first
}

// Open is OpenMaildir with the Maildir's remembered UID list.
func (ms *Maildirs) Open(path string, logger *log.Logger) (*Maildrop, error) {
	return openMaildir(path, ms.uidList(path), logger)
}

// uidList returns the remembered uidlist.Mailbox of the Maildir at path, or
// a new one, remembered from now on.
func (ms *Maildirs) uidList(path string) *uidlist.Mailbox {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if e, ok := ms.lists[path]; ok {
		ms.order.MoveToFront(e)
		return e.Value.(*uidlist.Mailbox)
	}
	if ms.lists == nil {
		ms.lists = map[string]*list.Element{}
	}
	m := uidlist.Open(path, nil)
	ms.lists[path] = ms.order.PushFront(m)
	limit := ms.Remember
	if limit <= 0 {
		limit = DefaultRemembered
	}
	for ms.order.Len() > limit {
		oldest := ms.order.Back()
		delete(ms.lists, ms.order.Remove(oldest).(*uidlist.Mailbox).Dir())
	}
	return m
}
