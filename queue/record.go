package queue

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/postkit/postkit/dsn"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/spool"
)

// record applies a batch's outcomes under the attempt's lock.
func (a *attempt) record(ctx context.Context, b batch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.apply(ctx, b)
}

// apply records a batch's outcomes in the envelope, enqueues the
// notifications they call for, and then updates the envelope, so that a
// crash in between at worst sends a notification twice.
func (a *attempt) apply(ctx context.Context, b batch) {
	if a.removed || b.outcomes == nil {
		return
	}
	env := a.env
	now := time.Now()
	var failed, succeeded []dsn.Recipient
	// bouncing is the failed recipients (by index) that the bounce
	// reports; logs holds their outcome lines, written once it is known
	// whether the bounce was enqueued.
	var bouncing []int
	var logs []func()
	changed := false
	for i, j := range b.jobs {
		o := b.outcomes[i]
		if o.status == remote.TempFail && ctx.Err() != nil {
			// Cut short by shutdown: not an attempt worth counting.
			continue
		}
		rc := &env.Recipients[j.rcpt]
		changed = true
		rc.Attempts++
		rc.LastAttempt = now
		if o.status == remote.TempFail && now.Sub(env.Arrival) >= a.r.cfg.Lifetime {
			// RFC 5321 §4.5.4.1: give up after the queue lifetime.
			o.status, o.code = remote.PermFail, "4.4.7"
			o.reply = "message expired after " + a.r.cfg.Lifetime.String() + " in the queue; last error: " + o.reply
		}
		status := o.status.String()
		bounce := false
		switch o.status {
		case remote.Delivered:
			rc.State, rc.LastError = spool.Delivered, ""
			if notifies(rc.Notify, "SUCCESS") && !o.dsn {
				action := dsn.Delivered
				if o.relay != "local" {
					// RFC 3461 §5.2.2.2: the next hop does not do DSN.
					action = dsn.Relayed
				}
				succeeded = append(succeeded, a.dsnRecipient(rc, o, action))
			}
		case remote.TempFail:
			rc.LastError = o.reply
		default:
			rc.State, rc.LastError = spool.Failed, o.reply
			if notifies(rc.Notify, "FAILURE") {
				failed = append(failed, a.dsnRecipient(rc, o, dsn.Failed))
				bouncing = append(bouncing, j.rcpt)
				bounce = true
			}
		}
		if bounce {
			// Logged as bounced once the bounce is enqueued, or as
			// deferred if it is not.
			logs = append(logs, func() {
				if rc.State == spool.Pending {
					a.logOutcome(rc, o, remote.TempFail.String(), rc.LastError, now)
					return
				}
				a.logOutcome(rc, o, status, o.reply, now)
			})
			continue
		}
		a.logOutcome(rc, o, status, o.reply, now)
	}
	if !a.notify(failed) {
		// The sender must learn of the failure: the recipients stay
		// pending, so the next attempt (with backoff, also after the
		// queue lifetime) reaches the same outcome and tries the
		// bounce again. A crash in between does the same.
		for _, i := range bouncing {
			rc := &env.Recipients[i]
			rc.State = spool.Pending
			rc.LastError += " (bounce not enqueued; will retry)"
		}
	}
	for _, log := range logs {
		log()
	}
	// A success report that cannot be enqueued is not worth a second
	// delivery: it is logged (event=dsn status=failed) and dropped.
	a.notify(succeeded)
	switch {
	case !changed:
	case !env.Pending():
		// The last outcome: removing the entry records it, with one
		// write less than an update followed by the removal. A crash
		// before the removal repeats this batch, as one before an
		// update would.
		a.remove()
	default:
		a.update()
	}
}

// logOutcome logs rc's outcome o with status and reply, and tells
// Config.Outcome.
func (a *attempt) logOutcome(rc *spool.Recipient, o outcome, status, reply string, now time.Time) {
	env := a.env
	// conn=reused marks a transaction over a cached connection (package
	// remote), as Postfix's conn_use does.
	conn := ""
	if o.reused {
		conn = " conn=reused"
	}
	a.r.cfg.Logf("id=%s rcpt=%s status=%s relay=%s code=%s reply=%q attempts=%d delay=%s%s",
		env.ID, maillog.Quote(rc.Address), status, relayName(o.relay), maillog.Quote(o.code), reply, rc.Attempts, now.Sub(env.Arrival).Round(time.Millisecond), conn)
	a.r.cfg.Outcome(rc.Address, status)
}

func relayName(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

// notifies reports whether a recipient's NOTIFY asks for kind (SUCCESS,
// FAILURE, DELAY). Without NOTIFY, failures and delays are reported
// (RFC 3461 §4.1 leaves the default to the MTA; this is the usual one).
func notifies(notify, kind string) bool {
	if notify == "" {
		return kind != "SUCCESS"
	}
	for _, n := range strings.Split(notify, ",") {
		if n == kind {
			return true
		}
	}
	return false
}

func (a *attempt) dsnRecipient(rc *spool.Recipient, o outcome, action dsn.Action) dsn.Recipient {
	r := dsn.Recipient{
		Address:     rc.Address,
		ORCPT:       rc.ORCPT,
		Action:      action,
		Status:      o.code,
		Diagnostic:  o.reply,
		LastAttempt: rc.LastAttempt,
	}
	if name, _, ok := strings.Cut(o.relay, "["); ok {
		r.RemoteMTA = name
	}
	if r.Status == "" {
		r.Status = "5.0.0"
	}
	return r
}

// notify enqueues one report about rcpts to the envelope sender and
// reports whether the sender is taken care of: the report enqueued, or
// none needed. Reports go with the null sender, and none goes to the null
// sender: that is what keeps a bounce from bouncing (RFC 5321 §4.5.5).
// It reports false when the report could not be made or enqueued (a full
// spool); the caller decides whether to try again later.
func (a *attempt) notify(rcpts []dsn.Recipient) bool {
	if len(rcpts) == 0 {
		return true
	}
	env := a.env
	if env.From == "" {
		for _, r := range rcpts {
			a.r.cfg.Logf("id=%s rcpt=%s event=dsn action=%s status=dropped reason=%q", env.ID, maillog.Quote(r.Address), r.Action, "null sender")
		}
		return true
	}
	f, err := a.l.OpenMessage()
	if err != nil {
		a.r.cfg.Logf("id=%s event=dsn action=%s status=failed error=%q", env.ID, rcpts[0].Action, err)
		return false
	}
	defer f.Close()
	rep := &dsn.Report{
		ReportingMTA: a.r.cfg.Hostname,
		QueueID:      env.ID,
		EnvID:        env.EnvID,
		Arrival:      env.Arrival,
		To:           env.From,
		Recipients:   rcpts,
		// RFC 8689 §5: a REQUIRETLS message is returned as headers only.
		Full: env.Ret == "FULL" && !env.RequireTLS,
	}
	data, err := dsn.Build(rep, f)
	if err != nil {
		a.r.cfg.Logf("id=%s event=dsn action=%s status=failed error=%q", env.ID, rcpts[0].Action, err)
		return false
	}
	body := ""
	for _, c := range data {
		if c >= 0x80 {
			body = spool.Body8BitMIME
			break
		}
	}
	notice := &spool.Envelope{
		From:       "",
		Recipients: []spool.Recipient{{Address: env.From, Notify: "NEVER"}},
		Body:       body,
		SMTPUTF8:   env.SMTPUTF8,
	}
	id, err := a.r.enqueueNotice(notice, bytes.NewReader(data))
	if err != nil {
		a.r.cfg.Logf("id=%s event=dsn action=%s status=failed error=%q", env.ID, rcpts[0].Action, err)
		return false
	}
	a.r.cfg.Logf("id=%s event=dsn action=%s to=%s rcpts=%d dsn_id=%s", env.ID, rcpts[0].Action, maillog.Quote("<"+env.From+">"), len(rcpts), id)
	return true
}

// warnDelay sends the delay notification once the entry is older than
// DelayWarning, to the recipients whose NOTIFY allows it. DelayNotified
// records that it went: a warning that could not be enqueued is tried
// again at the next attempt.
func (a *attempt) warnDelay(now time.Time) {
	env := a.env
	if env.DelayNotified || a.r.cfg.DelayWarning <= 0 || now.Sub(env.Arrival) < a.r.cfg.DelayWarning {
		return
	}
	var rcpts []dsn.Recipient
	for i := range env.Recipients {
		rc := &env.Recipients[i]
		if rc.State != spool.Pending || !notifies(rc.Notify, "DELAY") {
			continue
		}
		code := "4.0.0"
		if c, _, ok := strings.Cut(rc.LastError, " "); ok && len(c) == 3 && c[0] == '4' {
			if f := strings.Fields(rc.LastError); len(f) > 1 && strings.HasPrefix(f[1], "4.") {
				code = f[1]
			}
		}
		rcpts = append(rcpts, dsn.Recipient{
			Address: rc.Address, ORCPT: rc.ORCPT, Action: dsn.Delayed, Status: code,
			Diagnostic: rc.LastError, LastAttempt: rc.LastAttempt,
			WillRetryUntil: env.Arrival.Add(a.r.cfg.Lifetime),
		})
	}
	if a.notify(rcpts) {
		env.DelayNotified = true
	}
}

// nextAttempt is when the entry is tried again: RetryMin after the first
// attempt, doubling with every further one up to RetryMax, with ±10%
// jitter so that entries deferred together do not come back together; and
// never after the end of the queue lifetime, when the last try is made.
// An entry still pending after its lifetime (its bounce could not be
// enqueued) keeps backing off rather than being due at every scan.
func (a *attempt) nextAttempt(now time.Time) time.Time {
	n := 1
	for _, rc := range a.env.Recipients {
		if rc.State == spool.Pending && rc.Attempts > n {
			n = rc.Attempts
		}
	}
	delay := a.r.cfg.RetryMin
	for i := 1; i < n && delay < a.r.cfg.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, a.r.cfg.RetryMax)
	delay = time.Duration(float64(delay) * (0.9 + 0.2*rand.Float64()))
	next := now.Add(delay)
	if end := a.env.Arrival.Add(a.r.cfg.Lifetime); next.After(end) && end.After(now) {
		next = end
	}
	return next
}

// remove removes the entry once no recipient is pending. If that fails,
// the outcomes are recorded with an update instead, so that a delivered
// recipient is not tried again, and the removal is tried again later (as
// an envelope that could not be written is: unrecorded). A failure after
// the envelope went (the message file is left for Clean) is a removal.
func (a *attempt) remove() {
	if err := a.r.removeEntry(a.l); err != nil {
		a.r.cfg.Logf("id=%s event=remove error=%q", a.env.ID, err)
		if _, lerr := a.l.Load(); !errors.Is(lerr, spool.ErrNotFound) {
			a.update()
			a.unsaved = true
			return
		}
	}
	a.removed, a.unsaved = true, false
	a.r.cfg.Logf("id=%s event=removed from=%s rcpts=%d", a.env.ID, maillog.Quote("<"+a.env.From+">"), len(a.env.Recipients))
}

// update writes the envelope. After a failure the attempt writes no more
// updates: the runner keeps the envelope in memory and tries again later
// (unrecorded), and the entry stays as it was on disk meanwhile.
func (a *attempt) update() {
	if a.unsaved {
		return
	}
	if err := a.r.updateEntry(a.l, a.env); err != nil {
		a.unsaved = true
		a.r.cfg.Logf("id=%s event=update error=%q", a.env.ID, err)
	}
}
