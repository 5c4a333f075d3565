package queue

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/spool"
)

// failingNotices makes a Runner's notification enqueueing fail with
// ENOSPC while failing is set, as on a full spool, and counts the
// notifications it lets through.
type failingNotices struct {
	failing  atomic.Bool
	enqueued atomic.Int32
}

func failNotices(r *Runner) *failingNotices {
	f := &failingNotices{}
	f.failing.Store(true)
	enqueue := r.enqueueNotice
	r.enqueueNotice = func(env *spool.Envelope, msg io.Reader) (string, error) {
		if f.failing.Load() {
			return "", fmt.Errorf("spool: enqueue: %w", syscall.ENOSPC)
		}
		id, err := enqueue(env, msg)
		if err == nil {
			f.enqueued.Add(1)
		}
		return id, err
	}
	return f
}

// TestBounceRetriedUntilEnqueued: a bounce that cannot be enqueued leaves
// its recipient pending, so that the attempt and the bounce are made again;
// once enqueueing works the sender gets the bounce, and no envelope records
// the recipient as failed before that.
func TestBounceRetriedUntilEnqueued(t *testing.T) {
	e := newEnv(t, "")
	r := New(e.cfg, e.spool)
	notices := failNotices(r)
	var early atomic.Int32 // failures recorded before the bounce was enqueued
	update, remove := r.updateEntry, r.removeEntry
	r.updateEntry = func(l *spool.EntryLock, env *spool.Envelope) error {
		for _, rc := range env.Recipients {
			if rc.State == spool.Failed && notices.enqueued.Load() == 0 {
				early.Add(1)
			}
		}
		return update(l, env)
	}
	r.removeEntry = func(l *spool.EntryLock) error {
		if notices.enqueued.Load() == 0 {
			early.Add(1)
		}
		return remove(l)
	}
	e.run(t, r)
	entry := e.enqueue(t, "alice@example.org", msg, "nobody@example.org")
	waitFor(t, "three failed bounces", 10*time.Second, func() bool {
		return e.log.count("event=dsn action=failed status=failed") >= 3
	})
	got, err := e.spool.Load(entry.ID)
	if err != nil || got.Recipients[0].State != spool.Pending {
		t.Fatalf("entry while bounces fail: %+v, %v; want nobody@example.org pending", got, err)
	}
	if n := len(e.mailbox(t, "alice")); n != 0 {
		t.Fatalf("alice got %d messages while bounces fail", n)
	}

	notices.failing.Store(false)
	waitFor(t, "the bounce to reach alice", 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	bounce := e.mailbox(t, "alice")[0]
	for _, want := range []string{"Final-Recipient: rfc822; nobody@example.org", "Action: failed", "Status: 5.1.1"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if n := early.Load(); n != 0 {
		t.Errorf("%d envelope writes recorded the failure before its bounce was enqueued\n%s", n, e.log)
	}
	if n := e.log.count("rcpt=nobody@example.org status=bounced"); n != 1 {
		t.Errorf("log has %d bounced lines for nobody, want 1 (the others deferred):\n%s", n, e.log)
	}
	if n := e.log.count("rcpt=nobody@example.org status=deferred"); n < 3 {
		t.Errorf("log has %d deferred lines for nobody, want 3 or more:\n%s", n, e.log)
	}
}

// TestExpiredEntryWithFailingBounceBacksOff: an entry past its lifetime
// whose bounce cannot be enqueued stays, and is tried again with the usual
// backoff, not at every scan.
func TestExpiredEntryWithFailingBounceBacksOff(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.cfg.Lifetime = 300 * time.Millisecond
	e.cfg.RetryMin, e.cfg.RetryMax = 200*time.Millisecond, 10*time.Second
	r := New(e.cfg, e.spool)
	failNotices(r)
	e.run(t, r)
	entry := e.enqueue(t, "alice@example.org", msg, "bob@far.example")
	const failedBounce = "event=dsn action=failed status=failed"
	waitFor(t, "a failed expiry bounce", 10*time.Second, func() bool { return e.log.count(failedBounce) >= 1 })
	before := e.log.count(failedBounce)
	// Backing off from 200ms × 2^(attempts-1), at least 800ms by now,
	// the runner tries again once or twice in this window; due at every
	// scan, it would try every 50ms (minScanGap): some 20 times.
	time.Sleep(time.Second)
	if n := e.log.count(failedBounce) - before; n > 5 {
		t.Errorf("%d attempts within a second after the lifetime, want a backoff\n%s", n, e.log)
	}
	got, err := e.spool.Load(entry.ID)
	if err != nil || got.Recipients[0].State != spool.Pending {
		t.Errorf("expired entry: %+v, %v; want bob@far.example pending until the bounce is enqueued", got, err)
	}
}

// TestDelayWarningRetriedUntilEnqueued: DelayNotified is set only once the
// delay warning is enqueued; a warning that failed is tried again.
func TestDelayWarningRetriedUntilEnqueued(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.cfg.DelayWarning = 200 * time.Millisecond
	e.cfg.RetryMax = 100 * time.Millisecond
	r := New(e.cfg, e.spool)
	notices := failNotices(r)
	e.run(t, r)
	entry := e.enqueue(t, "alice@example.org", msg, "bob@far.example")
	waitFor(t, "two failed delay warnings", 10*time.Second, func() bool {
		return e.log.count("event=dsn action=delayed status=failed") >= 2
	})
	got, err := e.spool.Load(entry.ID)
	if err != nil || got.DelayNotified {
		t.Fatalf("envelope while warnings fail: %+v, %v; want DelayNotified false", got, err)
	}

	notices.failing.Store(false)
	waitFor(t, "the delay warning to reach alice", 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "DelayNotified in the envelope", 5*time.Second, func() bool {
		got, err := e.spool.Load(entry.ID)
		return err == nil && got.DelayNotified
	})
	if w := e.mailbox(t, "alice")[0]; !strings.Contains(w, "Action: delayed") {
		t.Errorf("warning:\n%s\nwant Action: delayed", w)
	}
}
