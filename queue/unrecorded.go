package queue

import (
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/postkit/postkit/spool"
)

// unrecorded is an entry whose envelope the runner could not write (full
// or read-only file system, I/O error): the outcomes it holds are in this
// process's memory only. The runner delivers nothing more of the entry
// until they are written, so that nobody gets the message again because
// the envelope on disk still says pending.
type unrecorded struct {
	env   *spool.Envelope // the envelope as it should be on disk
	retry time.Time       // when to try writing it again
	delay time.Duration   // the wait before retry; it doubles with each failure
}

// recordRetryMin and recordRetryMax bound the wait between two tries to
// write an envelope (never more than RetryMin and RetryMax): short, since
// nothing of the entry is delivered meanwhile, yet not every scan.
const (
	recordRetryMin = time.Second
	recordRetryMax = time.Minute
)

// remember keeps env, which could not be written, until the next try; last
// is the wait before the try that just failed, 0 after an attempt's
// failure.
func (r *Runner) remember(env *spool.Envelope, last time.Duration) {
	delay := min(recordRetryMin, r.cfg.RetryMin)
	if last > 0 {
		delay = min(2*last, recordRetryMax, r.cfg.RetryMax)
	}
	r.mu.Lock()
	r.unrecorded[env.ID] = &unrecorded{env: env, retry: time.Now().Add(delay), delay: delay}
	r.mu.Unlock()
	r.cfg.Logf("id=%s event=unrecorded retry_in=%s", env.ID, delay)
}

// takeUnrecorded returns what the runner keeps of entry id, if anything,
// and forgets it: the caller writes it or remembers it again.
func (r *Runner) takeUnrecorded(id string) *unrecorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.unrecorded[id]
	delete(r.unrecorded, id)
	return u
}

// unrecordedRetries returns when each entry kept in memory is to be written
// again, and forgets those that are not among ids (the spool's entries):
// removed meanwhile, by `sendq rm`.
func (r *Runner) unrecordedRetries(ids []string) map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unrecorded) == 0 {
		return nil
	}
	exists := make(map[string]bool, len(ids))
	for _, id := range ids {
		exists[id] = true
	}
	retries := make(map[string]time.Time, len(r.unrecorded))
	for id, u := range r.unrecorded {
		if !exists[id] {
			delete(r.unrecorded, id)
			continue
		}
		retries[id] = u.retry
	}
	return retries
}

// recordKept writes what the runner kept of a's entry, whose envelope on
// disk is disk, and reports whether that worked. The envelope on disk may
// have been held or released since (`sendq hold`, under the entry's lock as
// this is); everything else in it is the runner's to write.
func (a *attempt) recordKept(u *unrecorded, disk *spool.Envelope) bool {
	u.env.Hold = disk.Hold
	a.env = u.env
	if a.env.Pending() {
		a.update()
	} else {
		a.remove()
	}
	if a.unsaved {
		return false
	}
	a.r.cfg.Logf("id=%s event=recorded", a.env.ID)
	return true
}

// recordAll tries once more, as the runner stops, to write what it keeps
// in memory. What stays unwritten is lost with the process: the next
// runner delivers those recipients again, as after a crash between a
// delivery and its record.
func (r *Runner) recordAll() {
	r.mu.Lock()
	kept := maps.Clone(r.unrecorded)
	r.mu.Unlock()
	for id, u := range kept {
		r.takeUnrecorded(id)
		l, err := r.spool.Lock(id, 0)
		if err != nil {
			if !errors.Is(err, spool.ErrNotFound) {
				r.cfg.Logf("id=%s event=lock error=%q", id, err)
			}
			continue
		}
		disk, err := l.Load()
		if err != nil {
			r.cfg.Logf("id=%s event=load error=%q", id, err)
		}
		if err == nil && !(&attempt{r: r, l: l}).recordKept(u, disk) {
			r.cfg.Logf("id=%s event=unrecorded status=lost outcomes=%d", id, lostOutcomes(u.env, disk))
		}
		l.Unlock()
	}
}

// lostOutcomes counts the recipients that kept has an outcome for and disk
// has not: those the next runner tries again.
func lostOutcomes(kept, disk *spool.Envelope) int {
	done := map[string]bool{}
	for _, rc := range disk.Recipients {
		if rc.State != spool.Pending {
			done[strings.ToLower(rc.Address)] = true
		}
	}
	n := 0
	for _, rc := range kept.Recipients {
		if rc.State != spool.Pending && !done[strings.ToLower(rc.Address)] {
			n++
		}
	}
	return n
}
