// Package queue is sendq's queue runner: the one long-running process of
// postkit. It watches the spool (package spool), delivers each entry's
// pending recipients, local ones into their Maildir (package lda) and remote
// ones over SMTP (package remote), records every outcome in the envelope,
// retries with exponential backoff, sends delivery status notifications
// (package dsn) and removes entries once every recipient is done.
//
// # Scheduling
//
// The runner scans the spool when spool.Watch reports a change and when the
// earliest deferred entry falls due; before each scan it imports what local
// users dropped into the spool's maildrop/ (spool.Pickup). Each due entry
// gets a goroutine that holds the entry's lock for the whole attempt (so
// `sendq hold` and `rm` wait for it). The attempt resolves its pending recipients (aliases are
// expanded into the envelope first, so that a recipient delivered through
// an alias is never delivered again), groups the remote ones by destination
// (a domain, or the host a route names) and delivers the groups in
// parallel: one SMTP transaction per group. A group waits for a slot of its
// destination (Config.PerDestination) and then for a global slot
// (Config.Concurrency), so a slow destination fills only its own slots.
// A destination that could not be reached at all is remembered as down for
// a while (RetryMin, at most 5 minutes), and its other mail is deferred at
// once instead of waiting for the same timeouts again. At most
// MaxActivePerSlot × Concurrency entries are in progress at a time.
//
// # Crash safety
//
// The envelope is rewritten (spool's atomic Update) after every group's
// result, before anything else happens; the result after which no
// recipient is pending is recorded by removing the entry instead, which
// saves writing an envelope only to delete it. Notifications are enqueued
// before the update or removal that records the outcome they report. So a
// kill at any moment loses nothing: a recipient whose delivery was in
// flight is still pending in the envelope and is delivered again later,
// and a notification may at worst be sent twice.
//
// Between a delivery and its record there is an fsync, and up to
// Concurrency deliveries are under way: a kill used to leave several
// recipients who had the message pending. So the moment a delivery has
// succeeded (lda returned, or the server answered 250 for the recipient),
// before its outcome is recorded, the runner appends a line to its delivery
// journal, spool/journal/ (journal.go), with one write(2) and no fsync: a
// killed process cannot lose a completed write(2), only a machine crash can,
// and that costs only the in-flight deliveries a crash may always repeat.
// A new runner reads the journals earlier runners left, and a pending
// recipient found there is recorded as delivered (logged event=journal)
// instead of being delivered again. A local delivery also journals an
// intent, the path of its file, before the file appears in the Maildir: a
// recipient with only intents counts as delivered if one of those files is
// there (in cur/ too, moved by a mail client). So what a kill can still
// repeat is a remote delivery that had not returned yet (the server may
// have taken the message), and a local one only if the user deleted its
// file before the next runner started. A journal file goes once none of
// the entries it mentions is left in the spool.
//
// # When a notification cannot be enqueued
//
// Notifications are entries of the same spool, so a full spool can refuse
// them (logged as event=dsn status=failed). A failed recipient whose bounce
// was not enqueued is not recorded as failed: it stays pending (logged as
// status=deferred, its last error saying why), so the next attempt reaches
// the same outcome and tries the bounce again; the sender is never left
// without word. Its retries follow the usual backoff, also after the queue
// lifetime, when an entry is otherwise never deferred. A delay warning that
// was not enqueued is not recorded either (delay-notified stays false) and
// is tried again at the next attempt. A success report that cannot be
// enqueued is logged and dropped: delivering again to report it would be
// worse than the missing report.
//
// An entry whose outcomes the runner keeps in memory (below) is tried when
// its retry in memory falls due: `sendq flush` does not hurry it, since
// the envelope on disk is already due and flush leaves it unchanged.
//
// # When the envelope cannot be written
//
// A full or read-only file system, or an I/O error, can make the update
// after a delivery fail. The envelope on disk then still says pending for a
// recipient who has the message, and the entry is due: tried again, it
// would be delivered again at every scan. Instead the runner keeps the
// envelope as it should be in memory, per entry, for the life of the
// process (unrecorded.go): the attempt starts no more deliveries (those in
// flight finish and their outcomes are kept too), and nothing more of the
// entry is delivered until its envelope is written. The runner tries to
// write it after min(1s, RetryMin), then after waits that double up to
// min(1m, RetryMax), not at every scan; the hold flag comes from the
// envelope on disk (`sendq hold`), the rest from memory. Once it is
// written the memory is dropped and the entry goes on as usual: at once if
// deliveries were left out, else at its next attempt. The last outcome is
// recorded by removing the entry, which works on a full file system too;
// a removal that fails is recorded with an update if possible and tried
// again the same way. An entry removed meanwhile (`sendq rm`) is forgotten.
// When the runner stops it tries once more to write what it keeps (and
// logs event=unrecorded status=lost with the number of outcomes if it
// cannot). What it could not write is lost with the process: the next
// runner delivers those recipients again, as after a crash between a
// delivery and its record: a duplicate, never a loss.
package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/routes"
	"github.com/postkit/postkit/spool"
)

// Config is the runner's settings; sendq fills it from flags and control
// files.
type Config struct {
	Root     control.Root
	Hostname string
	// RetryMin is the delay before the first retry, RetryMax the longest
	// delay between two; delays double in between, with ±10% jitter.
	RetryMin, RetryMax time.Duration
	// Lifetime is how long an entry may stay: a temporary failure after
	// it is final and bounces.
	Lifetime time.Duration
	// DelayWarning is the age after which senders who asked for delay
	// notifications get one; 0 sends none.
	DelayWarning time.Duration
	// Concurrency and PerDestination limit deliveries in parallel.
	Concurrency, PerDestination int
	Remote                      *remote.Client
	Routes                      *routes.Table
	// Logf writes one log line (key=value pairs).
	Logf func(format string, args ...any)
	// Outcome, if set, is told each recipient's outcome as it is logged,
	// with the log line's status (delivered, deferred or bounced), for
	// sendq stats (package queuestats). It is called on the delivery
	// path and must be quick.
	Outcome func(rcpt, status string)
}

// Defaults of Config's fields, documented in sendq(8).
const (
	DefaultRetryMin       = 5 * time.Minute
	DefaultRetryMax       = 4 * time.Hour
	DefaultLifetime       = 5 * 24 * time.Hour
	DefaultDelayWarning   = 4 * time.Hour
	DefaultConcurrency    = 20
	DefaultPerDestination = 5
	// MaxActivePerSlot × Concurrency entries may be in progress at once
	// (each holds an open file for its lock).
	MaxActivePerSlot = 10
	// cleanEvery is how often spool.Clean removes leftovers of crashed
	// enqueuers; cleanAge is how old they must be.
	cleanEvery = time.Hour
	cleanAge   = time.Hour
	// minScanGap is the least time between two scans of the spool.
	minScanGap = 50 * time.Millisecond
	// maxDownFor caps how long a destination is remembered as down.
	maxDownFor = 5 * time.Minute
)

// Runner runs the queue of one spool.
type Runner struct {
	cfg    Config
	spool  *spool.Spool
	global chan struct{}

	mu     sync.Mutex
	dests  map[string]*destination
	active map[string]bool
	// unrecorded holds, by entry ID, what could not be written into the
	// spool (see unrecorded).
	unrecorded map[string]*unrecorded
	wg         sync.WaitGroup

	// updateEntry and removeEntry write into the spool what an attempt
	// records; tests replace them to make the writes fail.
	updateEntry func(*spool.EntryLock, *spool.Envelope) error
	removeEntry func(*spool.EntryLock) error
	// enqueueNotice enqueues a delivery status notification; tests
	// replace it to make the enqueueing fail.
	enqueueNotice func(*spool.Envelope, io.Reader) (string, error)

	// users reads etc/users, etc/aliases and etc/domains again only when
	// they change, not at every attempt.
	users resolve.Cache

	// journal is the delivery journal (journal.go), opened by Run;
	// journalRotate is its file size limit, which tests lower.
	journal       *journal
	journalRotate int64
}

// destination is the state shared by the deliveries to one destination.
type destination struct {
	slots     chan struct{}
	refs      int
	downUntil time.Time
	downWhy   remote.Result
}

// New returns a Runner for sp. Zero fields of cfg get their defaults.
func New(cfg Config, sp *spool.Spool) *Runner {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PerDestination <= 0 {
		cfg.PerDestination = DefaultPerDestination
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Outcome == nil {
		cfg.Outcome = func(string, string) {}
	}
	return &Runner{
		cfg:    cfg,
		users:  resolve.Cache{Root: cfg.Root},
		spool:  sp,
		global: make(chan struct{}, cfg.Concurrency),
		dests:  map[string]*destination{},
		active: map[string]bool{},

		unrecorded:    map[string]*unrecorded{},
		journalRotate: journalRotate,
		updateEntry:   (*spool.EntryLock).Update,
		removeEntry:   (*spool.EntryLock).Remove,
		enqueueNotice: func(env *spool.Envelope, msg io.Reader) (string, error) {
			return sp.Enqueue(env, msg)
		},
	}
}

// Run takes the spool's runner lock and runs the queue until ctx is done,
// then waits for the attempts in progress: their deliveries are cut short,
// and what they achieved is recorded. It fails with spool.ErrRunnerActive
// when another runner holds the lock.
func (r *Runner) Run(ctx context.Context) error {
	lock, err := r.spool.LockRunner()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// Logged once the lock is ours: a runner that logged its start is the
	// one running (tests and supervisors wait for this line).
	r.cfg.Logf("event=start root=%s hostname=%s concurrency=%d per_destination=%d",
		maillog.Quote(string(r.cfg.Root)), maillog.Quote(r.cfg.Hostname), r.cfg.Concurrency, r.cfg.PerDestination)
	if n, err := r.spool.Clean(cleanAge); err != nil {
		r.cfg.Logf("event=clean error=%q", err)
	} else if n > 0 {
		r.cfg.Logf("event=clean removed=%d", n)
	}
	lastClean := time.Now()
	// Before the first attempt: what earlier runners delivered and did
	// not record. Closed after every attempt has finished and recorded
	// (the defers below run first).
	live, err := r.spool.IDs()
	if err != nil {
		r.cfg.Logf("event=journal error=%q", err)
		live = nil
	}
	r.journal = openJournal(r.spool, r.cfg.Logf, live, r.journalRotate)
	defer r.journal.close()
	var lastScan time.Time
	wake, err := r.spool.Watch(ctx)
	if err != nil {
		return err
	}
	// finished wakes the loop when an attempt ends, so that an entry
	// left over by the active limit is started.
	finished := make(chan struct{}, 1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer r.recordAll()
	defer r.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-wake:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("queue: the spool watch ended (spool directory removed?)")
			}
		case <-timer.C:
		case <-finished:
		}
		if time.Since(lastClean) > cleanEvery {
			if _, err := r.spool.Clean(cleanAge); err != nil {
				r.cfg.Logf("event=clean error=%q", err)
			}
			lastClean = time.Now()
		}
		// Every envelope update wakes the watch, our own included: under
		// load, scan at most every minScanGap rather than once per update.
		if wait := minScanGap - time.Since(lastScan); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		lastScan = time.Now()
		// Drops from local users (sendmail) become entries first, so
		// this scan sees them.
		if _, err := r.spool.Pickup(r.cfg.Logf); err != nil {
			r.cfg.Logf("event=pickup error=%q", err)
		}
		next := r.scan(ctx, finished)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(next), 0))
	}
}

// scan starts an attempt for every due entry that is not in progress, as
// far as the active limit allows, and returns when the next one falls due.
// It takes entries in queue ID (arrival) order and reads the envelopes of
// entries not in progress only until the limit is reached: every finished
// attempt triggers a scan, and reading the whole of a large queue each time
// was most of the runner's work. What it did not read waits for the scan
// that the next finished attempt triggers.
func (r *Runner) scan(ctx context.Context, finished chan<- struct{}) time.Time {
	now := time.Now()
	next := now.Add(cleanEvery)
	ids, err := r.spool.IDs()
	if err != nil {
		r.cfg.Logf("event=scan error=%q", err)
		return next
	}
	r.journal.prune(ids)
	retries := r.unrecordedRetries(ids)
	limit := MaxActivePerSlot * r.cfg.Concurrency
	r.mu.Lock()
	room := limit - len(r.active)
	active := maps.Clone(r.active)
	r.mu.Unlock()
	var due []string
	var errs []error
	for _, id := range ids {
		if len(due) >= room {
			// A finishing attempt triggers the next scan.
			break
		}
		if active[id] {
			continue
		}
		// An entry whose outcomes are in memory only is due when its
		// envelope is to be written again, whatever the one on disk says.
		if retry, ok := retries[id]; ok {
			switch {
			case !retry.After(now):
				due = append(due, id)
			case retry.Before(next):
				next = retry
			}
			continue
		}
		env, err := r.spool.Load(id)
		switch {
		case errors.Is(err, spool.ErrNotFound): // removed since IDs
			continue
		case err != nil:
			// Damaged entries are reported and skipped; the rest go on.
			errs = append(errs, err)
			continue
		}
		if env.Hold {
			continue
		}
		if env.NextAttempt.After(now) {
			if env.NextAttempt.Before(next) {
				next = env.NextAttempt
			}
			continue
		}
		due = append(due, id)
	}
	if err := errors.Join(errs...); err != nil {
		r.cfg.Logf("event=scan error=%q", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range due {
		// The attempt checks under the entry's lock that it is still
		// due: the envelope read here may be outdated already.
		r.active[id] = true
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.attempt(ctx, id)
			r.mu.Lock()
			delete(r.active, id)
			r.mu.Unlock()
			select {
			case finished <- struct{}{}:
			default:
			}
		}()
	}
	return next
}

// acquire waits for a slot of destination key and a global slot; release
// gives both back. It returns nil if ctx ends first.
func (r *Runner) acquire(ctx context.Context, key string) *destination {
	r.mu.Lock()
	d := r.dests[key]
	if d == nil {
		d = &destination{slots: make(chan struct{}, r.cfg.PerDestination)}
		r.dests[key] = d
	}
	d.refs++
	r.mu.Unlock()
	select {
	case d.slots <- struct{}{}:
		select {
		case r.global <- struct{}{}:
			return d
		case <-ctx.Done():
			<-d.slots
		}
	case <-ctx.Done():
	}
	r.unref(key, d)
	return nil
}

func (r *Runner) release(key string, d *destination) {
	<-r.global
	<-d.slots
	r.unref(key, d)
}

func (r *Runner) unref(key string, d *destination) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.refs--
	if d.refs == 0 && time.Now().After(d.downUntil) {
		delete(r.dests, key)
	}
}

// down returns why destination d is known to be down, if it is.
func (r *Runner) down(d *destination) (remote.Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Now().Before(d.downUntil) {
		return d.downWhy, true
	}
	return remote.Result{}, false
}

func (r *Runner) markDown(d *destination, why remote.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.downUntil = time.Now().Add(min(r.cfg.RetryMin, maxDownFor))
	why.Reply = fmt.Sprintf("%s (destination down; not retried before %s)", why.Reply, d.downUntil.UTC().Format(time.TimeOnly))
	d.downWhy = why
}
