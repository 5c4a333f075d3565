package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/lda"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/routes"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

// attempt is one delivery attempt of one entry, made while holding its lock.
type attempt struct {
	r      *Runner
	l      *spool.EntryLock
	sender address.Address
	// junk is whether smtpd marked the message for the Junk folder
	// (DMARC, SPF, a milter), read from the envelope at the start.
	junk bool

	// mu guards env and the flags below: the groups of an attempt run in
	// parallel and record their outcomes as they finish.
	mu  sync.Mutex
	env *spool.Envelope
	// unsaved: writing the envelope failed, so env holds outcomes that
	// the spool does not. The attempt then starts no more deliveries and
	// writes no more updates (a removal may still work, as unlink(2) does
	// on a full file system), and the runner keeps env in memory to try
	// again later (unrecorded).
	unsaved bool
	skipped bool // deliveries left out because of unsaved
	removed bool // the last outcome was recorded by removing the entry

	// signOnce makes the DKIM signatures once for all the remote groups
	// of the attempt; dkimHeader holds them.
	signOnce   sync.Once
	dkimHeader string
}

// job is the delivery of one envelope recipient (by index) to its target.
type job struct {
	rcpt   int
	target resolve.Target
}

// outcome is what happened to one job.
type outcome struct {
	status remote.Status
	code   string // RFC 3463
	reply  string
	relay  string // "local" for Maildir deliveries
	dsn    bool   // the relay takes over success notifications
	reused bool   // the transaction went over a cached connection (remote)
}

// batch is the outcomes of a group of jobs.
type batch struct {
	jobs     []job
	outcomes []outcome
}

// attempt delivers entry id's pending recipients, if it is due.
func (r *Runner) attempt(ctx context.Context, id string) {
	l, err := r.spool.Lock(id, 0)
	if err != nil {
		if !errors.Is(err, spool.ErrNotFound) && !errors.Is(err, spool.ErrBusy) {
			r.cfg.Logf("id=%s event=lock error=%q", id, err)
		}
		return
	}
	defer l.Unlock()
	kept := r.takeUnrecorded(id)
	env, err := l.Load()
	if err != nil {
		r.cfg.Logf("id=%s event=load error=%q", id, err)
		if kept != nil {
			r.remember(kept.env, kept.delay)
		}
		return
	}
	a := &attempt{r: r, l: l, env: env, junk: env.Junk != ""}
	if kept != nil {
		// The outcomes of an earlier attempt are not on disk yet: nothing
		// is delivered before they are.
		if !a.recordKept(kept, env) {
			r.remember(a.env, kept.delay)
			return
		}
		if a.removed {
			return
		}
		env = a.env
	}
	// The scan saw an older envelope: the entry may have been held or
	// rescheduled since.
	if env.Hold || env.NextAttempt.After(time.Now()) {
		return
	}
	if env.From != "" {
		if a.sender, err = address.Parse(env.From); err != nil {
			r.cfg.Logf("id=%s event=sender from=%q error=%q", id, env.From, err)
		}
	}
	a.run(ctx)
	if a.unsaved {
		r.remember(a.env, 0)
	}
}

func (a *attempt) run(ctx context.Context) {
	env := a.env
	if env.Pending() {
		a.deliver(ctx)
	}
	if a.removed {
		return
	}
	if !env.Pending() {
		// Nothing was left to deliver: a runner stopped between its
		// last outcome and the removal. (A removal that failed in this
		// attempt is tried again later.)
		if !a.unsaved {
			a.remove()
		}
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the entry stays due for the next runner.
		return
	}
	now := time.Now()
	a.warnDelay(now)
	env.NextAttempt = a.nextAttempt(now)
	if a.skipped {
		// What was left out is delivered as soon as the envelope is
		// written.
		env.NextAttempt = now
	}
	a.update()
}

// deliver makes one attempt for every pending recipient and records the
// outcomes as they come in.
func (a *attempt) deliver(ctx context.Context) {
	res, err := a.r.users.Load()
	if err != nil {
		// A broken users or aliases file is the operator's to fix:
		// defer everyone rather than bounce.
		var all []job
		var outs []outcome
		for i, rc := range a.env.Recipients {
			if rc.State == spool.Pending {
				all = append(all, job{rcpt: i})
				outs = append(outs, outcome{status: remote.TempFail, code: "4.3.5", reply: "configuration error: " + err.Error()})
			}
		}
		a.record(ctx, batch{jobs: all, outcomes: outs})
		return
	}
	jobs, early := a.expand(res)
	if a.unsaved {
		// The expansion is not on disk: deliver nothing until it is.
		a.skipped = true
		return
	}
	if len(early.jobs) > 0 {
		a.record(ctx, early)
	}
	jobs = a.skipJournaled(ctx, jobs)
	var wg sync.WaitGroup
	for _, g := range a.group(jobs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.run(ctx, a)
		}()
	}
	wg.Wait()
}

// expand resolves the pending recipients. An alias with several targets
// is replaced in the envelope by its targets (with the alias as ORCPT), and
// the envelope updated before anything is delivered, so that each target's
// outcome is recorded on its own and a delivered target is never tried
// again. Targets already in the envelope are not added twice. Recipients
// that cannot be resolved come back in early.
func (a *attempt) expand(res *resolve.Resolver) (jobs []job, early batch) {
	env := a.env
	present := map[string]bool{}
	for _, rc := range env.Recipients {
		present[strings.ToLower(rc.Address)] = true
	}
	var out []spool.Recipient
	changed := false
	fail := func(rc spool.Recipient, o outcome) {
		out = append(out, rc)
		early.jobs = append(early.jobs, job{rcpt: len(out) - 1})
		early.outcomes = append(early.outcomes, o)
	}
	for _, rc := range env.Recipients {
		if rc.State != spool.Pending {
			out = append(out, rc)
			continue
		}
		addr, err := address.Parse(rc.Address)
		if err != nil {
			fail(rc, outcome{status: remote.PermFail, code: "5.1.3", reply: "553 5.1.3 bad recipient address: " + err.Error()})
			continue
		}
		targets, err := res.Resolve(addr)
		switch {
		case errors.Is(err, resolve.ErrUnknownUser):
			fail(rc, outcome{status: remote.PermFail, code: "5.1.1", reply: "550 5.1.1 " + err.Error(), relay: "local"})
		case errors.Is(err, resolve.ErrAliasLoop):
			fail(rc, outcome{status: remote.PermFail, code: "5.4.6", reply: "550 5.4.6 " + err.Error(), relay: "local"})
		case err != nil:
			fail(rc, outcome{status: remote.TempFail, code: "4.3.5", reply: err.Error(), relay: "local"})
		case len(targets) == 1:
			out = append(out, rc)
			jobs = append(jobs, job{rcpt: len(out) - 1, target: targets[0]})
		default:
			changed = true
			orcpt := rc.ORCPT
			if orcpt == "" {
				orcpt = "rfc822;" + rc.Address
			}
			for _, t := range targets {
				ta := targetAddress(t)
				if present[strings.ToLower(ta)] {
					continue
				}
				present[strings.ToLower(ta)] = true
				out = append(out, spool.Recipient{Address: ta, ORCPT: orcpt, Notify: rc.Notify, Attempts: rc.Attempts})
				jobs = append(jobs, job{rcpt: len(out) - 1, target: t})
			}
			a.r.cfg.Logf("id=%s event=expand rcpt=%s targets=%d", env.ID, maillog.Quote(rc.Address), len(targets))
		}
	}
	if len(out) == 0 {
		out, jobs, early = env.Recipients, nil, batch{}
		changed = false
	}
	env.Recipients = out
	if changed {
		a.update()
	}
	return jobs, early
}

// targetAddress is the address a resolved target is recorded under: for a
// local user with a detail, the subaddress, so that it resolves to the
// same folder again.
func targetAddress(t resolve.Target) string {
	if t.Kind == resolve.Local && t.Detail != "" {
		if a, err := address.Parse(t.Address.Local + "+" + t.Detail + "@" + t.Address.Domain); err == nil {
			return a.String()
		}
	}
	return t.Address.String()
}

// group is the jobs that travel together: all local ones, or the remote
// ones of one destination.
type group struct {
	key    string // destination, for the concurrency limits
	domain string
	route  *routes.Route
	jobs   []job
}

func (a *attempt) group(jobs []job) []*group {
	var groups []*group
	byKey := map[string]*group{}
	for _, j := range jobs {
		g := &group{key: "local"}
		if j.target.Kind == resolve.Local {
			// Each local delivery is recorded on its own, so a crash
			// repeats at most the one in progress.
			g.jobs = []job{j}
			groups = append(groups, g)
			continue
		}
		if j.target.Kind == resolve.Remote {
			g.domain = j.target.Address.Domain
			g.route = a.r.cfg.Routes.Lookup(g.domain)
			g.key = "mx " + g.domain
			if g.route != nil {
				g.key = "route " + g.route.Addr()
			}
		}
		if have, ok := byKey[g.key]; ok {
			g = have
		} else {
			byKey[g.key] = g
			groups = append(groups, g)
		}
		g.jobs = append(g.jobs, j)
	}
	return groups
}

// run delivers the group once it has its slots, and records the outcomes
// before giving the slots back, so that with a concurrency of one no more
// than one delivery is ever unrecorded.
func (g *group) run(ctx context.Context, a *attempt) {
	d := a.r.acquire(ctx, g.key)
	if d == nil {
		return
	}
	defer a.r.release(g.key, d)
	if a.stalled() {
		return
	}
	outs := g.deliver(ctx, a, d)
	// Journaled before anything else: a runner killed from here on
	// leaves the deliveries to the next runner's journal reading.
	a.journalDelivered(g.jobs, outs)
	a.record(ctx, batch{jobs: g.jobs, outcomes: outs})
}

// stalled reports whether an envelope write of the attempt failed. Its
// groups that have not started then deliver nothing: a delivery that
// cannot be recorded is made again after a crash, so the fewer the better.
// The ones in flight finish and are recorded in memory.
func (a *attempt) stalled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unsaved {
		a.skipped = true
	}
	return a.unsaved
}

func (g *group) deliver(ctx context.Context, a *attempt, d *destination) []outcome {
	outs := make([]outcome, len(g.jobs))
	if g.key == "local" {
		g.local(a, outs)
		return outs
	}
	if why, down := a.r.down(d); down {
		for i := range outs {
			outs[i] = outcome{status: remote.TempFail, code: why.Code, reply: why.Reply, relay: why.Relay}
		}
		return outs
	}
	header := a.sign()
	a.mu.Lock()
	env := a.env
	msg := &remote.Message{
		Header:     header,
		From:       env.From,
		RequireTLS: env.RequireTLS,
		SMTPUTF8:   env.SMTPUTF8,
		Ret:        env.Ret,
		EnvID:      env.EnvID,
		Open:       func() (io.ReadSeekCloser, error) { return a.l.OpenMessage() },
	}
	for _, j := range g.jobs {
		rc := env.Recipients[j.rcpt]
		msg.Recipients = append(msg.Recipients, remote.Recipient{Address: j.target.Address.String(), Notify: rc.Notify, ORCPT: rc.ORCPT})
	}
	a.mu.Unlock()
	rep := a.r.cfg.Remote.Deliver(ctx, g.domain, g.route, msg)
	for _, note := range rep.Notes {
		a.r.cfg.Logf("id=%s event=mta-sts domain=%s note=%q", env.ID, maillog.Quote(g.domain), note)
	}
	allTemp := true
	for i, res := range rep.Results {
		outs[i] = outcome{status: res.Status, code: res.Code, reply: res.Reply, relay: res.Relay, dsn: res.DSN, reused: rep.Reused}
		allTemp = allTemp && res.Status == remote.TempFail
	}
	if !rep.Connected && allTemp && ctx.Err() == nil && len(rep.Results) > 0 {
		a.r.markDown(d, rep.Results[0])
	}
	return outs
}

// sign returns the DKIM-Signature fields for the message (package
// dkimsign), made on the first call of the attempt: a new signature per
// attempt, whose time stamp says when it was sent. The message is read once
// to sign and again to send, never held in memory.
//
// Only mail that starts here is signed: submitted by an authenticated user,
// or locally (sendmail, sendq's own notifications). Mail that came in from
// another host and is forwarded (an alias to a remote address) keeps the
// signatures it came with: signing it would vouch for a From header that an
// outsider wrote.
func (a *attempt) sign() string {
	a.signOnce.Do(func() {
		env := a.env
		if env.AuthUser == "" && env.ClientAddr != "" {
			return
		}
		f, err := a.l.OpenMessage()
		if err != nil {
			a.r.cfg.Logf("id=%s event=dkim status=unsigned error=%q", env.ID, err)
			return
		}
		defer f.Close()
		fields, domain, err := dkimsign.SignFor(a.r.cfg.Root, f)
		switch {
		case err != nil:
			a.r.cfg.Logf("id=%s event=dkim status=unsigned domain=%s error=%q", env.ID, maillog.Quote(domain), err)
		case fields != "":
			a.r.cfg.Logf("id=%s event=dkim status=signed domain=%s signatures=%d", env.ID, maillog.Quote(domain), strings.Count(fields, "DKIM-Signature:"))
		}
		a.dkimHeader = fields
	})
	return a.dkimHeader
}

// local delivers into Maildirs with lda, the same durable path as
// deliver(8).
func (g *group) local(a *attempt, outs []outcome) {
	f, err := a.l.OpenMessage()
	var msg *lda.Message
	if err == nil {
		msg, err = lda.ReadMessage(f)
		f.Close()
	}
	for i, j := range g.jobs {
		if err != nil {
			outs[i] = outcome{status: remote.TempFail, code: "4.3.0", reply: "reading the queued message: " + err.Error(), relay: "local"}
			continue
		}
		a.mu.Lock()
		rcpt := originalRecipient(a.env.Recipients[j.rcpt])
		id, addr := a.env.ID, a.env.Recipients[j.rcpt].Address
		a.mu.Unlock()
		d, derr := lda.ToTarget(j.target, msg, lda.Options{
			Sender: a.sender, Hostname: a.r.cfg.Hostname, Junk: a.junk, Recipient: rcpt,
			// Each file is journaled before it appears (journal.go): a
			// kill after the link, while the delivery waits for the
			// directory's fsync, leaves the next runner an intent whose
			// file it finds. Should the intent not be written, the file
			// must not appear: a delivery visible but not journaled is
			// what a kill turns into a duplicate, so it is deferred
			// (lda makes the error temporary) and retried.
			BeforeStore: func(path string) error { return a.r.journal.intent(id, addr, path) },
		})
		outs[i] = localOutcome(d.Path, derr)
	}
}

// localOutcome maps lda's result to an outcome: sysexits 75 is temporary,
// every other failure permanent.
func localOutcome(path string, err error) outcome {
	o := outcome{relay: "local"}
	switch code := lda.Code(err); {
	case err == nil:
		o.status, o.code, o.reply = remote.Delivered, "2.0.0", "delivered to "+path
	case code == sysexits.TempFail:
		o.status, o.code, o.reply = remote.TempFail, "4.2.0", err.Error()
	case errors.Is(err, lda.ErrLoop):
		o.status, o.code, o.reply = remote.PermFail, "5.4.6", err.Error()
	case code == sysexits.NoUser:
		o.status, o.code, o.reply = remote.PermFail, "5.1.1", err.Error()
	default:
		o.status, o.code, o.reply = remote.PermFail, "5.2.0", fmt.Sprintf("%v (exit code %d)", err, code)
	}
	return o
}

// originalRecipient is the address the sender gave for rc: its DSN original
// recipient when that is an RFC 822 address (RFC 3461 section 4.2; alias
// expansion records the alias there), else rc's own address. The zero
// Address (lda then uses the target's) when neither parses.
func originalRecipient(rc spool.Recipient) address.Address {
	if typ, addr, ok := strings.Cut(rc.ORCPT, ";"); ok && strings.EqualFold(typ, "rfc822") {
		if a, err := address.Parse(addr); err == nil {
			return a
		}
	}
	a, _ := address.Parse(rc.Address)
	return a
}
