package sendq

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/postkit/postkit/spool"
)

// ExplainPermission adds to an error that wraps fs.ErrPermission who may
// use the queue commands, for the message a user sees; other errors are
// returned as they are. The spool's queue and envelopes are its owner's
// alone (postkit-spool(5)).
func ExplainPermission(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (only root and the spool's owner may read or change the queue)", err)
	}
	return err
}

// List writes the queue the way mailq(1) does, one entry per paragraph:
//
//	0PQ3K7T2M1A4B5C6  age=2h13m  size=1234  from=<alice@example.org>  next=4m  held
//	  pending    bob@far.example  attempts=3  error="451 4.7.1 greylisted"
//	  delivered  carol@example.org
//
// Entries that cannot be read are reported on w and in the error.
func List(w io.Writer, sp *spool.Spool) error {
	envs, listErr := sp.List()
	if len(envs) == 0 && errors.Is(listErr, fs.ErrPermission) {
		// Not "0 entries": the queue could not be looked at at all.
		return listErr
	}
	if len(envs) == 0 && listErr == nil {
		_, err := fmt.Fprintln(w, "Mail queue is empty")
		return err
	}
	now := time.Now()
	var total int64
	for _, env := range envs {
		size := messageSize(sp, env.ID)
		total += max(size, 0)
		line := fmt.Sprintf("%s  age=%s  size=%d  from=<%s>", env.ID, age(now.Sub(env.Arrival)), size, env.From)
		if env.Pending() && env.NextAttempt.After(now) {
			line += "  next=" + age(env.NextAttempt.Sub(now))
		}
		if env.Hold {
			line += "  held"
		}
		fmt.Fprintln(w, line)
		for _, r := range env.Recipients {
			line := fmt.Sprintf("  %-9s  %s  attempts=%d", r.State, r.Address, r.Attempts)
			if r.LastError != "" {
				line += "  error=" + strconv.Quote(r.LastError)
			}
			fmt.Fprintln(w, line)
		}
	}
	_, err := fmt.Fprintf(w, "-- %d entries, %d bytes\n", len(envs), total)
	if listErr != nil {
		fmt.Fprintf(w, "-- unreadable entries: %v\n", listErr)
		return listErr
	}
	return err
}

// messageSize is the size of an entry's message on disk, -1 if unknown.
func messageSize(sp *spool.Spool, id string) int64 {
	m, err := sp.OpenMessage(id)
	if err != nil {
		return -1
	}
	defer m.Close()
	return m.Size()
}

// age formats a duration for people: 45s, 12m, 3h05m, 2d04h.
func age(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// Show writes entry id: its envelope file, then its message.
func Show(w io.Writer, sp *spool.Spool, id string) error {
	env, err := sp.Load(id)
	if err != nil {
		return err
	}
	data, err := spool.MarshalEnvelope(env)
	if err != nil {
		return err
	}
	f, err := sp.OpenMessage(id)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := w.Write(data); err != nil {
		return err
	}
	fmt.Fprintln(w, "--- message ---")
	_, err = io.Copy(w, f)
	return err
}

// Flush makes entry id, or every entry when id is empty, due now: the
// envelope update wakes a running queue runner (spool.Watch), and a runner
// started later finds them due. Held entries stay held, and entries the
// runner is delivering right now are left to it. It returns how many
// entries it rescheduled.
func Flush(sp *spool.Spool, id string) (int, error) {
	ids := []string{id}
	if id == "" {
		var err error
		if ids, err = sp.IDs(); err != nil {
			return 0, err
		}
	}
	// Entries being delivered right now need no flush: do not wait.
	wait := sp.LockWait
	if len(ids) > 1 || id == "" {
		wait = 0
	}
	n := 0
	var errs []error
	for _, id := range ids {
		changed, err := change(sp, id, wait, func(env *spool.Envelope) bool {
			now := time.Now().UTC()
			if env.Hold || !env.NextAttempt.After(now) {
				return false
			}
			env.NextAttempt = now
			return true
		})
		switch {
		case changed:
			n++
		case err == nil, wait == 0 && (errors.Is(err, spool.ErrNotFound) || errors.Is(err, spool.ErrBusy)):
		default:
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Hold keeps the queue runner away from entry id (hold true) or lets it at
// the entry again. It waits for a delivery attempt in progress to end
// (up to spool.DefaultLockWait).
func Hold(sp *spool.Spool, id string, hold bool) error {
	_, err := change(sp, id, sp.LockWait, func(env *spool.Envelope) bool {
		if env.Hold == hold {
			return false
		}
		env.Hold = hold
		return true
	})
	return err
}

// change applies edit to entry id's envelope under the entry's lock, so
// that it never overwrites what a delivery attempt records, and writes the
// envelope if edit reports a change.
func change(sp *spool.Spool, id string, wait time.Duration, edit func(*spool.Envelope) bool) (bool, error) {
	l, err := sp.Lock(id, wait)
	if err != nil {
		return false, err
	}
	defer l.Unlock()
	env, err := l.Load()
	if err != nil {
		return false, err
	}
	if !edit(env) {
		return false, nil
	}
	return true, l.Update(env)
}

// Remove deletes entry id without delivering it or telling anyone.
func Remove(sp *spool.Spool, id string) error {
	return sp.Remove(id)
}
