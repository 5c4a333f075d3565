package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/spool"
)

// failingWrites makes a Runner's envelope updates (and, with removes, its
// removals) fail with ENOSPC while failing is set, as on a full spool,
// and keeps the recipients of every envelope it lets through.
type failingWrites struct {
	failing atomic.Bool
	mu      sync.Mutex
	written [][]spool.Recipient
}

func failWrites(r *Runner, removes bool) *failingWrites {
	f := &failingWrites{}
	f.failing.Store(true)
	update, remove := r.updateEntry, r.removeEntry
	r.updateEntry = func(l *spool.EntryLock, env *spool.Envelope) error {
		if f.failing.Load() {
			return fmt.Errorf("spool: update %s: %w", l.ID(), syscall.ENOSPC)
		}
		f.mu.Lock()
		f.written = append(f.written, append([]spool.Recipient(nil), env.Recipients...))
		f.mu.Unlock()
		return update(l, env)
	}
	r.removeEntry = func(l *spool.EntryLock) error {
		if removes && f.failing.Load() {
			return fmt.Errorf("spool: remove %s: %w", l.ID(), syscall.EIO)
		}
		return remove(l)
	}
	return f
}

func (f *failingWrites) firstWritten() []spool.Recipient {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.written) == 0 {
		return nil
	}
	return f.written[0]
}

// run runs r until the returned function (or the end of the test) stops it.
func (e *env) run(t *testing.T, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestUpdateFailureDoesNotRedeliver: with envelope updates failing (the
// removal works, as it does on a full file system), the recipient
// delivered first is never delivered again, and the other waits; the
// runner tries to write the envelope again and again meanwhile, and once
// it can, the envelope it writes shows the first delivered and the other
// pending, and the other gets the message too.
func TestUpdateFailureDoesNotRedeliver(t *testing.T) {
	e := newEnv(t, "")
	// One local delivery at a time: the second starts after the first's
	// update failed.
	e.cfg.PerDestination = 1
	r := New(e.cfg, e.spool)
	writes := failWrites(r, false)
	e.run(t, r)
	e.enqueue(t, "x@far.example", msg, "alice@example.org", "carol@example.org")
	waitFor(t, "three failed updates", 10*time.Second, func() bool { return e.log.count("event=update error=") >= 3 })
	alice, carol := len(e.mailbox(t, "alice")), len(e.mailbox(t, "carol"))
	if alice+carol != 1 {
		t.Errorf("while updates fail: alice has %d copies and carol %d, want one delivery in all\n%s", alice, carol, e.log)
	}
	first, second := "alice@example.org", "carol@example.org"
	if carol == 1 {
		first, second = second, first
	}

	writes.failing.Store(false)
	waitFor(t, "the entry's removal", 10*time.Second, e.empty)
	if alice, carol := len(e.mailbox(t, "alice")), len(e.mailbox(t, "carol")); alice != 1 || carol != 1 {
		t.Errorf("alice has %d copies and carol %d, want 1 each\n%s", alice, carol, e.log)
	}
	states := map[string]spool.RecipientState{}
	for _, rc := range writes.firstWritten() {
		states[rc.Address] = rc.State
	}
	if states[first] != spool.Delivered || states[second] != spool.Pending {
		t.Errorf("first envelope written: %v, want %s delivered and %s pending", writes.firstWritten(), first, second)
	}
	if n := e.log.count("event=recorded"); n != 1 {
		t.Errorf("log has %d event=recorded lines, want 1:\n%s", n, e.log)
	}
}

// TestWriteFailureSeveralDestinations: with every write into the spool
// failing (updates and removals, as on a read-only file system), a message
// for a local user and for two remote destinations, one of them with two
// recipients, reaches each recipient once at most while the writes fail,
// and exactly once in the end.
func TestWriteFailureSeveralDestinations(t *testing.T) {
	far := smtptest.Start(t, smtptest.Options{})
	near := smtptest.Start(t, smtptest.Options{})
	e := newEnv(t, "", "far.example "+far.Addr, "near.example "+near.Addr)
	r := New(e.cfg, e.spool)
	writes := failWrites(r, true)
	e.run(t, r)
	e.enqueue(t, "x@other.example", msg, "alice@example.org", "bob@far.example", "dave@far.example", "erin@near.example")
	waitFor(t, "three failed writes", 10*time.Second, func() bool { return e.log.count("event=unrecorded retry_in=") >= 3 })
	copies := func() map[string]int {
		n := map[string]int{"alice@example.org": len(e.mailbox(t, "alice"))}
		for _, srv := range []*smtptest.Server{far, near} {
			for _, m := range srv.Messages() {
				for _, to := range m.To {
					n[to]++
				}
			}
		}
		return n
	}
	for rcpt, n := range copies() {
		if n > 1 {
			t.Errorf("while writes fail: %s has %d copies, want 1 at most\n%s", rcpt, n, e.log)
		}
	}

	writes.failing.Store(false)
	waitFor(t, "the entry's removal", 10*time.Second, e.empty)
	got := copies()
	for _, rcpt := range []string{"alice@example.org", "bob@far.example", "dave@far.example", "erin@near.example"} {
		if got[rcpt] != 1 {
			t.Errorf("%s has %d copies, want 1\n%s", rcpt, got[rcpt], e.log)
		}
	}
}

// TestUnrecordedWrittenAtStop: a runner that stops while it keeps outcomes
// it could not write tries to write them once more, so that the next
// runner does not deliver again.
func TestUnrecordedWrittenAtStop(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.PerDestination = 1
	// The next try to write would be a second away (recordRetryMin): the
	// stop comes first.
	e.cfg.RetryMin, e.cfg.RetryMax = time.Hour, time.Hour
	r := New(e.cfg, e.spool)
	writes := failWrites(r, false)
	stop := e.run(t, r)
	entry := e.enqueue(t, "x@far.example", msg, "alice@example.org", "carol@example.org")
	waitFor(t, "a failed update", 10*time.Second, func() bool { return e.log.count("event=unrecorded retry_in=") >= 1 })
	writes.failing.Store(false)
	stop()
	got, err := e.spool.Load(entry.ID)
	if err != nil {
		t.Fatal(err)
	}
	delivered := 0
	for _, rc := range got.Recipients {
		if rc.State == spool.Delivered {
			delivered++
		}
	}
	if delivered != 1 || e.log.count("event=recorded") != 1 {
		t.Errorf("envelope after the stop: %+v, want one recipient delivered\n%s", got.Recipients, e.log)
	}
	if n := len(e.mailbox(t, "alice")) + len(e.mailbox(t, "carol")); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	if strings.Contains(e.log.String(), "status=lost") {
		t.Errorf("log reports lost outcomes:\n%s", e.log)
	}
}
