package sieve

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

type command interface {
	exec(r *run) error
}

type test interface {
	eval(r *run) (bool, error)
}

// errStop ends a run without error (the stop command, RFC 5228 §3.3).
var errStop = errors.New("stop")

// run is the state of one execution of a script.
type run struct {
	script *Script
	msg    *Message
	env    Envelope
	envir  Environment
	now    time.Time
	loc    *time.Location

	vars        map[string]string
	matchVars   []string
	matchBudget int64    // steps left for :matches
	flags       []string // the internal flag variable of RFC 5232 §3

	actions      []Action
	cancelKeep   bool // the implicit keep is cancelled (RFC 5228 §2.10.2)
	rejected     bool
	vacationDone bool
	kept         bool // an action that delivers, for reject's conflicts
	notes        []string
}

// Run runs the script on msg. It returns the actions to perform; on a
// runtime error it returns the error and a Result with the implicit keep
// alone (RFC 5228 §2.10.6), so the caller still delivers the message.
// envir must not be nil.
func (s *Script) Run(msg *Message, env Envelope, envir Environment) (*Result, error) {
	now := envir.Now()
	r := &run{script: s, msg: msg, env: env, envir: envir, now: now, loc: now.Location(), vars: map[string]string{},
		matchBudget: MaxMatchSteps}
	err := execBlock(r, s.cmds)
	if err != nil && err != errStop {
		return &Result{Actions: []Action{Keep{Implicit: true}}, Notes: r.notes}, err
	}
	if !r.cancelKeep {
		if err := r.add(Pos{}, Keep{Flags: r.flagsOrNil(), Implicit: true}); err != nil {
			return &Result{Actions: []Action{Keep{Implicit: true}}, Notes: r.notes}, err
		}
	}
	return &Result{Actions: r.actions, Notes: r.notes}, nil
}

func execBlock(r *run, cmds []command) error {
	for _, c := range cmds {
		if err := c.exec(r); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) flagsOrNil() []string {
	if !r.script.exts["imap4flags"] || len(r.flags) == 0 {
		return nil
	}
	return append([]string(nil), r.flags...)
}

// add appends an action, merging it with an equal one already there: one
// copy per mailbox or address (RFC 5228 §2.10.3), with the flags of both.
func (r *run) add(pos Pos, a Action) error {
	for i, old := range r.actions {
		if merged, ok := merge(old, a); ok {
			r.actions[i] = merged
			return nil
		}
	}
	if len(r.actions) >= MaxActions {
		return errorf(pos, "too many actions (limit %d)", MaxActions)
	}
	r.actions = append(r.actions, a)
	return nil
}

func isInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

func mergeFlags(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, f := range b {
		out = addFlag(out, f)
	}
	return out
}

func merge(old, a Action) (Action, bool) {
	switch o := old.(type) {
	case Keep:
		switch n := a.(type) {
		case Keep:
			return Keep{Flags: mergeFlags(o.Flags, n.Flags), Implicit: o.Implicit && n.Implicit}, true
		case FileInto:
			if isInbox(n.Mailbox) {
				return Keep{Flags: mergeFlags(o.Flags, n.Flags)}, true
			}
		}
	case FileInto:
		switch n := a.(type) {
		case Keep:
			if isInbox(o.Mailbox) {
				return Keep{Flags: mergeFlags(o.Flags, n.Flags)}, true
			}
		case FileInto:
			if o.Mailbox == n.Mailbox {
				return FileInto{Mailbox: o.Mailbox, Flags: mergeFlags(o.Flags, n.Flags),
					Create: o.Create || n.Create, Copy: o.Copy && n.Copy}, true
			}
		}
	case Redirect:
		if n, ok := a.(Redirect); ok && strings.EqualFold(o.Address, n.Address) {
			return Redirect{Address: o.Address, Copy: o.Copy && n.Copy}, true
		}
	case Discard:
		if _, ok := a.(Discard); ok {
			return o, true
		}
	}
	return nil, false
}

// conflict enforces RFC 5429 §2.1: reject and ereject exclude each other,
// any keep, fileinto and redirect, and vacation (RFC 5230 §4.7).
func (r *run) conflict(pos Pos, what string, delivers bool) error {
	if r.rejected {
		return errorf(pos, "%s cannot follow reject", what)
	}
	if delivers {
		r.kept = true
	}
	return nil
}

type branch struct {
	cond test // nil for else
	body []command
}

type cmdIf struct{ branches []branch }

func (c *cmdIf) exec(r *run) error {
	for _, b := range c.branches {
		ok := true
		if b.cond != nil {
			var err error
			if ok, err = b.cond.eval(r); err != nil {
				return err
			}
		}
		if ok {
			return execBlock(r, b.body)
		}
	}
	return nil
}

type cmdStop struct{}

func (cmdStop) exec(*run) error { return errStop }

type cmdKeep struct {
	pos      Pos
	flags    []*str
	hasFlags bool
}

func (c cmdKeep) exec(r *run) error {
	if err := r.conflict(c.pos, "keep", true); err != nil {
		return err
	}
	r.cancelKeep = true
	return r.add(c.pos, Keep{Flags: r.actionFlags(c.flags, c.hasFlags)})
}

// actionFlags are the flags of keep or fileinto: those of :flags, else the
// internal variable (RFC 5232 §5).
func (r *run) actionFlags(flags []*str, has bool) []string {
	if !has {
		return r.flagsOrNil()
	}
	var out []string
	for _, f := range expandAll(r, flags) {
		for _, flag := range splitFlags(f) {
			out = addFlag(out, flag)
		}
	}
	return out
}

type cmdDiscard struct{ pos Pos }

func (c cmdDiscard) exec(r *run) error {
	r.cancelKeep = true
	return r.add(c.pos, Discard{})
}

type cmdFileinto struct {
	pos          Pos
	mailbox      *str
	flags        []*str
	hasFlags     bool
	copy, create bool
}

func (c cmdFileinto) exec(r *run) error {
	if err := r.conflict(c.pos, "fileinto", true); err != nil {
		return err
	}
	name := c.mailbox.expand(r)
	if msg := checkMailbox(name); msg != "" {
		return errorf(c.pos, "fileinto %q: %s", name, msg)
	}
	if !c.copy {
		r.cancelKeep = true
	}
	return r.add(c.pos, FileInto{Mailbox: name, Flags: r.actionFlags(c.flags, c.hasFlags), Create: c.create, Copy: c.copy})
}

type cmdRedirect struct {
	pos     Pos
	address *str
	copy    bool
}

func (c cmdRedirect) exec(r *run) error {
	if err := r.conflict(c.pos, "redirect", true); err != nil {
		return err
	}
	addr, ok := redirectAddress(c.address.expand(r))
	if !ok {
		return errorf(c.pos, "invalid redirect address %q", c.address.expand(r))
	}
	if !c.copy {
		r.cancelKeep = true
	}
	if err := r.add(c.pos, Redirect{Address: addr, Copy: c.copy}); err != nil {
		return err
	}
	// Count distinct addresses: a repeated redirect merges (RFC 5228 §2.10.3).
	n := 0
	for _, a := range r.actions {
		if _, ok := a.(Redirect); ok {
			n++
		}
	}
	if n > MaxRedirects {
		return errorf(c.pos, "too many redirects (limit %d)", MaxRedirects)
	}
	return nil
}

type cmdReject struct {
	pos      Pos
	reason   *str
	extended bool
}

func (c cmdReject) exec(r *run) error {
	name := "reject"
	if c.extended {
		name = "ereject"
	}
	switch {
	case r.rejected:
		return errorf(c.pos, "%s: the message is already rejected", name)
	case r.kept:
		return errorf(c.pos, "%s cannot follow keep, fileinto or redirect", name)
	case r.vacationDone:
		return errorf(c.pos, "%s cannot follow vacation", name)
	}
	r.rejected = true
	r.cancelKeep = true
	return r.add(c.pos, Reject{Reason: c.reason.expand(r), Extended: c.extended})
}

type cmdSet struct {
	name      string
	value     *str
	modifiers []modifier
}

func (c cmdSet) exec(r *run) error {
	v := c.value.expand(r)
	for _, m := range c.modifiers {
		v = applyModifier(m, v)
	}
	return r.setVar(c.name, v)
}

func (r *run) setVar(name, v string) error {
	if _, ok := r.vars[name]; !ok && len(r.vars) >= MaxVariables {
		return fmt.Errorf("sieve: too many variables (limit %d)", MaxVariables)
	}
	r.vars[name] = truncate(v, MaxVariableSize)
	return nil
}

type cmdFlags struct {
	op       string // setflag, addflag, removeflag
	variable string // "" for the internal variable
	flags    []*str
}

func (c cmdFlags) exec(r *run) error {
	var cur []string
	if c.variable == "" {
		cur = r.flags
	} else {
		cur = splitFlags(r.vars[c.variable])
	}
	var given []string
	for _, f := range expandAll(r, c.flags) {
		given = append(given, splitFlags(f)...)
	}
	switch c.op {
	case "setflag":
		cur = nil
		fallthrough
	case "addflag":
		for _, f := range given {
			cur = addFlag(cur, f)
		}
	case "removeflag":
		var kept []string
		for _, f := range cur {
			if !containsFold(given, f) {
				kept = append(kept, f)
			}
		}
		cur = kept
	}
	if c.variable == "" {
		r.flags = cur
		return nil
	}
	return r.setVar(c.variable, strings.Join(cur, " "))
}

// splitFlags splits a flag list string at spaces and drops flag names IMAP
// would refuse (RFC 5232 §3, RFC 3501 §9 flag), normalising the case of
// system flags.
func splitFlags(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if f, ok := validFlag(f); ok {
			out = append(out, f)
		}
	}
	return out
}

var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}

func validFlag(f string) (string, bool) {
	if strings.HasPrefix(f, `\`) {
		for _, s := range systemFlags {
			if strings.EqualFold(s, f) {
				return s, true
			}
		}
		return "", false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return "", false
		}
	}
	return f, f != ""
}

func containsFold(list []string, f string) bool {
	for _, x := range list {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

func addFlag(list []string, f string) []string {
	if containsFold(list, f) {
		return list
	}
	return append(list, f)
}
