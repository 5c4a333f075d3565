package lda

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sieve"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

// Sieve filtering (man/postkit-sieve.5). ToTarget hands every delivery to
// filter, deliver's and sendq's alike. Without scripts filter stores the
// message in the delivery's default mailbox (INBOX, or the folder a +detail
// chose) as it always did. Otherwise:
//
//  1. The administrator's script ROOT/etc/sieve/before.sieve runs first, if
//     there is one (Pigeonhole's sieve_before). When it cancels the implicit
//     keep (keep, fileinto or redirect without :copy, discard, reject), its
//     actions are the result and the user's script does not run. Otherwise
//     its actions other than the implicit keep are kept, and the user's
//     active script (package sieve's layout in the user's Maildir) runs
//     next; flags the first script set for its implicit keep do not carry
//     over. A before script that does not parse, or fails while running,
//     is logged and counts as one that only kept.
//  2. A user's script that does not parse, or fails while running, is
//     logged and only keeps (RFC 5228 §2.10.6): the message is never lost
//     to a broken script.
//  3. Actions are merged: one copy per folder (a fileinto into a missing
//     folder without :create stores into the default mailbox), with the
//     flags of all; one redirect per address; the first reject and the
//     first vacation reply.
//  4. They are performed in this order: local copies (each durable before
//     the next), then the messages for the spool (the redirects as one
//     entry with the original envelope sender, the reject notice, the
//     vacation reply), then the vacation store. If a local copy or an
//     enqueue fails, what was already stored or queued for this delivery
//     is removed again (best effort) and the delivery fails temporarily
//     (75): a retry then makes no duplicate copies. A failure to record a
//     vacation reply only logs: at worst the sender gets a second reply.
//
// A temporary failure inside a script's run (the vacation store's lock held
// too long, an I/O error) makes the delivery temporary too, before
// anything is stored.

// BeforeScript is the administrator's script, relative to ROOT/etc, that
// runs before every user's script.
const BeforeScript = "sieve/before.sieve"

// rootOf returns the postkit root of a user's Maildir, which package resolve
// always puts at ROOT/mail/DOMAIN/LOCAL (control.Root.UserMaildir).
func rootOf(userMaildir string) control.Root {
	return control.Root(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Clean(userMaildir)))))
}

// sieveLogf is where filter logs: standard error, with the program's
// prefix (deliver and sendq both log through package log).
var sieveLogf = log.Printf

// filter delivers msg for the local target t, whose default mailbox is
// inbox, after running the Sieve scripts that apply. See above.
func filter(t resolve.Target, inbox maildir.Dir, user string, msg *Message, opt Options) (maildir.Delivered, error) {
	return filterAt(t, inbox, user, msg, opt, time.Now())
}

func filterAt(t resolve.Target, inbox maildir.Dir, user string, msg *Message, opt Options, now time.Time) (maildir.Delivered, error) {
	root := rootOf(t.Maildir)
	before := loadBefore(root, user)
	script, name, err := sieve.LoadActive(t.Maildir)
	if err != nil {
		sieveLogf("user=%s sieve=%s status=broken action=keep error=%q", maillog.Quote(user), maillog.Quote(scriptName(name)), err)
		script = nil
	}
	if before == nil && script == nil {
		return store(inbox, user, msg, opt)
	}
	f := &filtering{t: t, inbox: inbox, user: user, msg: msg, opt: opt, root: root, now: now}
	f.full = append(opt.traceHeader(user), msg.data...)
	smsg, err := sieve.NewMessage(bytes.NewReader(f.full), int64(len(f.full)))
	if err != nil {
		return maildir.Delivered{}, classify(err)
	}
	// RFC 5228 §5.9: the size test counts the message as it was sent,
	// with CRLF line endings.
	smsg.SetSize(int64(len(f.full) + bytes.Count(f.full, []byte("\n")) - bytes.Count(f.full, []byte("\r\n"))))
	env := sieve.Envelope{From: returnPath(opt.Sender), To: envelopeTo(t, opt)}
	f.env = &sieveEnv{user: user, home: t.Maildir, now: now}
	defer f.env.close()

	var actions []sieve.Action
	cancelled := false // the before script cancelled the implicit keep
	if before != nil {
		res, err := before.Run(smsg, env, f.env)
		if f.env.err != nil {
			return maildir.Delivered{}, &Error{Code: sysexits.TempFail, Err: fmt.Errorf("lda: sieve %s for %s: %w", BeforeScript, user, f.env.err)}
		}
		f.notes(BeforeScript, res)
		switch {
		case err != nil:
			sieveLogf("user=%s sieve=%s status=failed action=keep error=%q", maillog.Quote(user), maillog.Quote(BeforeScript), err)
		case !implicitKeep(res.Actions):
			actions, cancelled = res.Actions, true
		default:
			actions = withoutImplicitKeep(res.Actions)
		}
	}
	switch {
	case cancelled:
	case script != nil:
		res, err := script.Run(smsg, env, f.env)
		if f.env.err != nil {
			return maildir.Delivered{}, &Error{Code: sysexits.TempFail, Err: fmt.Errorf("lda: sieve %s for %s: %w", name, user, f.env.err)}
		}
		f.notes(name, res)
		if err != nil {
			sieveLogf("user=%s sieve=%s status=failed action=keep error=%q", maillog.Quote(user), maillog.Quote(name), err)
		}
		actions = append(actions, res.Actions...)
	default:
		actions = append(actions, sieve.Keep{Implicit: true})
	}
	p, err := f.plan(actions)
	if err != nil {
		return maildir.Delivered{}, err
	}
	return f.perform(p)
}

func scriptName(name string) string {
	if name == "" {
		return sieve.ActiveLink
	}
	return name
}

// loadBefore reads and checks the administrator's script; a missing one is
// nil, a broken one is logged and nil.
func loadBefore(root control.Root, user string) *sieve.Script {
	path := root.Etc(BeforeScript)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		var src []byte
		src, err = io.ReadAll(io.LimitReader(f, sieve.MaxScriptSize+1))
		f.Close()
		if err == nil {
			var s *sieve.Script
			if s, err = sieve.Parse(src); err == nil {
				return s
			}
		}
	}
	sieveLogf("user=%s sieve=%s status=broken action=none error=%q", maillog.Quote(user), maillog.Quote(path), err)
	return nil
}

// envelopeTo is the recipient the scripts see in the envelope test and
// vacation: the one the sender gave (Options.Recipient), else the user's
// address with the +detail the message came for.
func envelopeTo(t resolve.Target, opt Options) string {
	if !opt.Recipient.IsZero() {
		return opt.Recipient.String()
	}
	if t.Detail == "" {
		return t.Address.String()
	}
	a := address.Address{Local: t.Address.Local + "+" + t.Detail, Domain: t.Address.Domain}
	return a.String()
}

// implicitKeep reports whether actions hold the implicit keep, that is
// whether the script did not cancel it.
func implicitKeep(actions []sieve.Action) bool {
	for _, a := range actions {
		if k, ok := a.(sieve.Keep); ok && k.Implicit {
			return true
		}
	}
	return false
}

func withoutImplicitKeep(actions []sieve.Action) []sieve.Action {
	var out []sieve.Action
	for _, a := range actions {
		if k, ok := a.(sieve.Keep); ok && k.Implicit {
			continue
		}
		out = append(out, a)
	}
	return out
}

// filtering is one delivery through the scripts.
type filtering struct {
	t     resolve.Target
	inbox maildir.Dir // the default mailbox
	user  string
	msg   *Message
	opt   Options
	root  control.Root
	now   time.Time
	full  []byte // the message as stored: trace header and message
	env   *sieveEnv
}

func (f *filtering) notes(script string, res *sieve.Result) {
	if res == nil {
		return
	}
	for _, n := range res.Notes {
		sieveLogf("user=%s sieve=%s note=%q", maillog.Quote(f.user), maillog.Quote(script), n)
	}
}

// localCopy is one message file to store.
type localCopy struct {
	dir    maildir.Dir
	folder string // IMAP name; "" for the default mailbox
	flags  []string
	what   string // the actions, for the log
}

// plan is what the merged actions of one delivery do.
type plan struct {
	copies    []*localCopy
	redirects []string
	reject    *sieve.Reject
	vacation  *sieve.Vacation
	discard   bool
}

func (p *plan) addCopy(c localCopy) {
	for _, old := range p.copies {
		if old.dir == c.dir {
			for _, fl := range c.flags {
				if !containsFold(old.flags, fl) {
					old.flags = append(old.flags, fl)
				}
			}
			old.what += "; " + c.what
			return
		}
	}
	p.copies = append(p.copies, &c)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// plan turns the actions of the scripts into copies and messages.
func (f *filtering) plan(actions []sieve.Action) (*plan, error) {
	p := &plan{}
	root := maildir.Dir(f.t.Maildir)
	for _, a := range actions {
		switch a := a.(type) {
		case sieve.Keep:
			p.addCopy(localCopy{dir: f.inbox, flags: a.Flags, what: a.String()})
		case sieve.FileInto:
			folder, exists, err := findFolder(root, a.Mailbox)
			switch {
			case err != nil && errors.Is(err, maildir.ErrInvalidName):
				sieveLogf("user=%s fileinto=%q status=invalid action=keep error=%q", maillog.Quote(f.user), a.Mailbox, err)
				folder = ""
			case err != nil:
				return nil, classify(err)
			case folder == "INBOX":
				// An explicit INBOX is the INBOX, whatever +detail said.
			case !exists && !a.Create:
				sieveLogf("user=%s fileinto=%q status=missing action=keep", maillog.Quote(f.user), a.Mailbox)
				folder = ""
			}
			dir := f.inbox
			if folder != "" {
				if dir, err = root.Folder(folder); err != nil {
					return nil, classify(err)
				}
			}
			p.addCopy(localCopy{dir: dir, folder: folder, flags: a.Flags, what: a.String()})
		case sieve.Redirect:
			addr, err := address.Parse(a.Address)
			if err != nil {
				sieveLogf("user=%s redirect=%q status=invalid error=%q", maillog.Quote(f.user), a.Address, err)
				continue
			}
			if !containsFold(p.redirects, addr.String()) {
				p.redirects = append(p.redirects, addr.String())
			}
		case sieve.Discard:
			p.discard = true
		case sieve.Reject:
			if p.reject == nil {
				p.reject = &a
			}
		case sieve.Vacation:
			if p.vacation == nil {
				p.vacation = &a
			}
		}
	}
	return p, nil
}

// perform carries out the plan; see the order above. It returns the first
// local copy, or nothing when the message was only forwarded, discarded or
// rejected.
func (f *filtering) perform(p *plan) (maildir.Delivered, error) {
	out, err := f.outgoing(p)
	if err != nil {
		return maildir.Delivered{}, err
	}
	var stored []maildir.Delivered
	undo := func() {
		for _, d := range stored {
			os.Remove(d.Path)
			safefile.SyncDir(filepath.Dir(d.Path))
		}
	}
	for _, c := range p.copies {
		d, err := f.storeCopy(c)
		if err != nil {
			undo()
			return maildir.Delivered{}, classify(err)
		}
		folder := c.folder
		if folder == "" {
			folder = "-"
		}
		sieveLogf("user=%s action=%q folder=%s file=%s", maillog.Quote(f.user), c.what, maillog.Quote(folder), maillog.Quote(d.Path))
		stored = append(stored, d)
	}
	if len(out) > 0 {
		if err := f.enqueue(out); err != nil {
			undo()
			return maildir.Delivered{}, &Error{Code: sysexits.TempFail, Err: err}
		}
	}
	if p.vacation != nil {
		if err := f.env.recordVacation(p.vacation.To, p.vacation.Handle, f.now); err != nil {
			sieveLogf("user=%s action=vacation status=unrecorded error=%q", maillog.Quote(f.user), err)
		}
	}
	if len(stored) == 0 {
		what := "discard"
		switch {
		case p.reject != nil:
			what = "reject"
		case len(p.redirects) > 0:
			what = "redirect"
		}
		sieveLogf("user=%s action=%s status=not-stored", maillog.Quote(f.user), what)
		return maildir.Delivered{}, nil
	}
	return stored[0], nil
}

// storeCopy stores one copy with its flags.
func (f *filtering) storeCopy(c *localCopy) (maildir.Delivered, error) {
	// A folder that exists may lack cur/ new/ tmp/ (made by hand, or
	// by a client over IMAP before imapd completed it); Create completes
	// it, and makes a folder fileinto :create asked for.
	if c.folder != "" && !maildir.IsInbox(c.folder) {
		if err := maildir.Create(f.t.Maildir, c.folder); err != nil {
			return maildir.Delivered{}, err
		}
	}
	dir := c.dir
	letters, dropped, err := flagLetters(dir, c.flags)
	if err != nil {
		return maildir.Delivered{}, err
	}
	if len(dropped) > 0 {
		sieveLogf("user=%s folder=%s status=flags-dropped flags=%q", maillog.Quote(f.user), maillog.Quote(c.folder), strings.Join(dropped, " "))
	}
	if letters == "" {
		return store(dir, f.user, f.msg, f.opt)
	}
	r := io.MultiReader(bytes.NewReader(f.opt.traceHeader(f.user)), bytes.NewReader(f.msg.data))
	return dir.Deliver(r, f.opt.deliverOptions(letters))
}

// outgoing builds the messages the plan sends, before anything is stored.
func (f *filtering) outgoing(p *plan) ([]*outgoing, error) {
	var out []*outgoing
	sender := returnPath(f.opt.Sender)
	if len(p.redirects) > 0 {
		out = append(out, redirectCopy(f.user, sender, p.redirects, f.msg))
	}
	host := f.hostname()
	if p.reject != nil {
		if sender == "" {
			// RFC 5429 §2.1.2: no notice to the null sender; the message
			// is dropped.
			sieveLogf("user=%s action=reject status=no-notice reason=%q why=%q", maillog.Quote(f.user), p.reject.Reason, "null sender")
		} else {
			n, err := rejectNotice(p.reject.Reason, envelopeTo(f.t, f.opt), sender, host, f.msg.data, f.now)
			if err != nil {
				return nil, &Error{Code: sysexits.Software, Err: err}
			}
			out = append(out, n)
		}
	}
	if v := p.vacation; v != nil {
		if _, err := address.Parse(v.To); err != nil || sender == "" {
			sieveLogf("user=%s action=vacation status=no-reply to=%q", maillog.Quote(f.user), v.To)
			p.vacation = nil
		} else {
			out = append(out, vacationReply(*v, host, f.now))
		}
	}
	return out, nil
}

func (f *filtering) hostname() string {
	if f.opt.Hostname != "" {
		return f.opt.Hostname
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// enqueue hands the messages to the spool: all of them, or, if one fails,
// none (those already queued are removed again).
func (f *filtering) enqueue(out []*outgoing) error {
	sp, err := spool.Open(f.root.SpoolDir())
	if err != nil {
		return fmt.Errorf("lda: sieve: %w", err)
	}
	var ids []string
	for _, o := range out {
		id, err := sp.Enqueue(o.env, bytes.NewReader(o.data))
		if err != nil {
			for _, id := range ids {
				sp.Remove(id)
			}
			return fmt.Errorf("lda: sieve %s for %s: %w", o.what, f.user, err)
		}
		ids = append(ids, id)
		var to []string
		for _, r := range o.env.Recipients {
			to = append(to, r.Address)
		}
		sieveLogf("user=%s action=%s from=%s to=%s queue=%s", maillog.Quote(f.user), o.what, maillog.Quote("<"+o.env.From+">"), maillog.Quote(strings.Join(to, ",")), id)
	}
	return nil
}

// sieveEnv is the sieve.Environment of one delivery.
type sieveEnv struct {
	user string
	home string // the user's Maildir
	now  time.Time
	vac  *vacationStore // locked from the first question until close
	err  error          // the first temporary failure, which fails the delivery
}

func (e *sieveEnv) Now() time.Time { return e.now }

func (e *sieveEnv) MailboxExists(name string) (bool, error) {
	_, exists, err := findFolder(maildir.Dir(e.home), name)
	if err != nil && !errors.Is(err, maildir.ErrInvalidName) {
		e.fail(err)
		return false, err
	}
	return exists, nil
}

func (e *sieveEnv) VacationReplied(sender, handle string, days int) (bool, error) {
	if e.vac == nil {
		v, err := openVacation(e.home)
		if errors.Is(err, safefile.ErrLockTimeout) {
			// Another delivery holds it: try again later.
			e.fail(err)
			return false, err
		}
		if err != nil {
			// A store that cannot be used (permissions, say) must not
			// hold up the mail: no reply, and the log says why.
			sieveLogf("user=%s action=vacation status=no-reply error=%q", maillog.Quote(e.user), err)
			return true, nil
		}
		e.vac = v
	}
	return e.vac.replied(sender, handle, days, e.now), nil
}

func (e *sieveEnv) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *sieveEnv) recordVacation(sender, handle string, now time.Time) error {
	if e.vac == nil {
		return errors.New("lda: vacation store not open")
	}
	return e.vac.record(sender, handle, now)
}

func (e *sieveEnv) close() {
	e.vac.close()
	e.vac = nil
}
