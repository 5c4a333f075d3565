package imapd

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
)

const (
	// idleRecheck is how often IDLE looks at the folder even without an
	// inotify event (a file system that sends none, such as NFS).
	idleRecheck = 30 * time.Second
	// idleNoInotify is how often it looks when inotify is not available.
	idleNoInotify = time.Second
)

// Idle reports changes to the selected folder while the client waits
// (RFC 2177, RFC 9051 §6.3.13). inotify on the folder's new/ and cur/
// wakes it when any process delivers, renames or removes a file; after a
// short pause that lets a burst of changes settle it updates the client,
// so that changes reach it within a second.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.sel == nil {
		<-stop
		return nil
	}
	changed := make(chan struct{}, 1)
	recheck := idleRecheck
	if n, err := getNotifier(); err != nil {
		recheck = idleNoInotify
	} else if cancel, err := n.watch(changed, s.sel.dir.New(), s.sel.dir.Cur()); err != nil {
		s.logError("idle "+s.sel.name, err)
		recheck = idleNoInotify
	} else {
		defer cancel()
	}
	if err := s.update(w, true); err != nil {
		return err
	}
	releaseMemory(&idleRelease)
	ticker := time.NewTicker(recheck)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-changed:
			select {
			case <-stop:
				return nil
			case <-time.After(settle):
			}
		case <-ticker.C:
		}
		if s.sel == nil {
			<-stop
			return nil
		}
		if err := s.update(w, true); err != nil {
			return err
		}
	}
}

// releaseInterval is how often at most each kind of moment (entering
// IDLE, logging in) gives memory back.
const releaseInterval = 10 * time.Second

// A releaseLimiter lets releaseMemory run at most once per
// releaseInterval. Logins and IDLE have one each, so that in inetd mode,
// where a process serves one connection, the IDLE that follows a login
// still gives back what the SELECT before it left.
type releaseLimiter struct {
	mu   sync.Mutex
	last time.Time
}

var (
	idleRelease  releaseLimiter
	loginRelease releaseLimiter
)

// releaseMemory returns the memory that earlier commands left behind to
// the operating system, unless l let it run within the last
// releaseInterval. A session entering IDLE may wait for half an hour, and
// an idle process allocates nothing that would make the garbage collector
// run: without this, the garbage of the SELECT before (the folder's
// listing, several times its view) stays resident all that time, which
// matters most in inetd mode, with a process per connection. A login (the
// users file, bcrypt) calls it too.
func releaseMemory(l *releaseLimiter) {
	l.mu.Lock()
	if !l.last.IsZero() && time.Since(l.last) < releaseInterval {
		l.mu.Unlock()
		return
	}
	l.last = time.Now()
	l.mu.Unlock()
	debug.FreeOSMemory()
}
