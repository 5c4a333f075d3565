// Package lda is postkit's local delivery agent: it puts one message into the
// Maildirs of local recipients, the way deliver(8) and sendq's local
// deliveries both do it.
//
// For every recipient it prepends
//
//	Return-Path: <SENDER>
//	Delivered-To: USER@DOMAIN
//
// (RFC 5321 §4.4 asks the final delivery to add the return path; Delivered-To
// is the loop detector Postfix, qmail and Dovecot share), refuses a message
// that already carries a Delivered-To for the same address (a mail loop), and
// stores it through maildir.Dir.Deliver, which returns only once file and
// directory are fsynced. A subaddress (alice+lists@) goes to the folder of that
// name when it exists, else to INBOX. A message marked as junk (Options.Junk,
// from the spool envelope's junk key that smtpd sets for a DMARC policy of
// quarantine or a content filter's quarantine), or one with a header field
// that ROOT/etc/spam-header names (a content filter's spam verdict, see
// junk.go), goes to the Junk folder instead, which is created when missing.
// Before anything is stored the administrator's and the user's Sieve
// scripts run (sieve.go): they may file the message into folders, flag,
// forward, reject or answer it; their keep stores into the folder chosen
// above.
//
// Failures carry a sysexits code (see Error): 67 unknown user, 65 loop or
// malformed input, 75 temporary (disk full, I/O error, lock timeout; the MTA
// retries), 73 cannot create, 77 no permission.
package lda

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

// Error is a delivery failure with the sysexits code that reports it.
type Error struct {
	Code int // a sysexits constant
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the MTA should retry later.
func (e *Error) Temporary() bool { return e.Code == sysexits.TempFail }

// ErrLoop is wrapped by the error for a message that already passed through
// the recipient's mailbox.
var ErrLoop = errors.New("mail loop: message already has Delivered-To for this address")

// Code returns the sysexits code for err: 0 for nil, the code of an *Error,
// else TempFail (an error we cannot classify is safer retried than bounced).
func Code(err error) int {
	if err == nil {
		return sysexits.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return sysexits.TempFail
}

// classify maps a storage error to its sysexits code.
func classify(err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	code := sysexits.TempFail
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		code = sysexits.NoPerm
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		code = sysexits.CantCreat
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO),
		errors.Is(err, safefile.ErrLockTimeout):
		code = sysexits.TempFail
	}
	return &Error{Code: code, Err: err}
}

// Message is a message read once from its source and delivered to any number
// of recipients.
type Message struct {
	data []byte
	// deliveredTo holds the lower-cased addresses of the Delivered-To fields
	// already in the header.
	deliveredTo map[string]bool
}

// ReadMessage reads a whole message (CRLF or LF line endings) from r and
// keeps it with LF line endings, the form of Maildir files and spool entries.
//
// A source whose size is known (a queued message, a file on standard
// input) is read into a buffer of that size at once, and a message that is LF already, as
// queued messages are, is not copied again: the queue runner reads every
// message it delivers locally through here.
func ReadMessage(r io.Reader) (*Message, error) {
	var buf bytes.Buffer
	if n := sizeHint(r); n > 0 && n < 1<<30 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, &Error{Code: sysexits.TempFail, Err: fmt.Errorf("lda: reading message: %w", err)}
	}
	data := buf.Bytes()
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	return &Message{data: data, deliveredTo: deliveredTo(data)}, nil
}

// sizeHint is how many bytes r probably holds, 0 if unknown: a queued
// message knows its size, and deliver's standard input is often a file
// (`deliver alice@example.org < msg`, an MTA's temporary file).
func sizeHint(r io.Reader) int64 {
	switch s := r.(type) {
	case interface{ Size() int64 }:
		return s.Size()
	case *os.File:
		if info, err := s.Stat(); err == nil && info.Mode().IsRegular() {
			return info.Size()
		}
	}
	return 0
}

// deliveredTo collects the addresses of the Delivered-To fields in the header
// section (up to the first empty line), unfolding continuation lines.
func deliveredTo(data []byte) map[string]bool {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	var field string
	flush := func() {
		name, value, ok := strings.Cut(field, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Delivered-To") {
			v := strings.TrimSpace(value)
			v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
			seen[strings.ToLower(v)] = true
		}
		field = ""
	}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			field += line
			continue
		}
		flush()
		field = line
	}
	flush()
	return seen
}

// deliveredBefore reports whether the header has a Delivered-To for a: in
// the form lda writes it (traceHeader, SpoolForwarder: a.String()), or as
// its lookup key. The key alone misses quoted local parts ("a b"@x: the key
// is unquoted) and non-ASCII ones whose case folding differs from
// strings.ToLower, and with it the loop of an alias that forwards.
func (m *Message) deliveredBefore(a address.Address) bool {
	return m.deliveredTo[strings.ToLower(a.String())] || m.deliveredTo[a.Key()]
}

// Options are the settings of one delivery run.
type Options struct {
	Sender   address.Address // the envelope sender; zero for <>
	Hostname string          // for Maildir file names
	// Junk delivers into each user's JunkFolder (ToTarget and
	// ToAddress; ToMaildir ignores it). A message with a field named by
	// etc/spam-header goes there without it.
	Junk bool
	// Recipient is the envelope recipient as the sender gave it, before
	// alias resolution: what Sieve's envelope test and vacation see as
	// "to" (sieve.go). Zero: the target's own address, with its +detail.
	// ToAddress sets it.
	Recipient address.Address
	// BeforeStore, if set, is called with the path of every Maildir file
	// this delivery is about to store (INBOX, a folder, each Sieve
	// fileinto copy), after the file is written and fsynced and before
	// it appears there (maildir.DeliverOptions.BeforeLink): a caller
	// records where the message is going, so that after being killed
	// it can tell whether it arrived. An error stores nothing and fails
	// the delivery, as temporary unless it is an *Error.
	BeforeStore func(path string) error
}

// deliverOptions are the maildir options of a copy with flags.
func (o Options) deliverOptions(flags string) maildir.DeliverOptions {
	d := maildir.DeliverOptions{Hostname: o.Hostname, Flags: flags}
	if hook := o.BeforeStore; hook != nil {
		d.BeforeLink = func(path string) error {
			err := hook(path)
			var e *Error
			if err == nil || errors.As(err, &e) {
				return err
			}
			return &Error{Code: sysexits.TempFail, Err: err}
		}
	}
	return d
}

// JunkFolder is the folder junk goes to: the name mkuser creates and
// imapd marks \Junk (RFC 6154).
const JunkFolder = "Junk"

// traceHeader returns the header lines prepended for one recipient. An empty
// recipient (delivery into a bare Maildir) gets only Return-Path.
func (o Options) traceHeader(recipient string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\n", returnPath(o.Sender))
	if recipient != "" {
		fmt.Fprintf(&b, "Delivered-To: %s\n", recipient)
	}
	return b.Bytes()
}

func returnPath(a address.Address) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

// ToMaildir stores msg in the Maildir dir (created if missing), with only a
// Return-Path added: the procmail-style use of deliver.
func ToMaildir(dir string, msg *Message, opt Options) (maildir.Delivered, error) {
	if err := maildir.Create(dir); err != nil {
		return maildir.Delivered{}, &Error{Code: sysexits.CantCreat, Err: fmt.Errorf("lda: creating Maildir %s: %w", dir, err)}
	}
	d, err := store(maildir.Dir(dir), "", msg, opt)
	return d, classify(err)
}

func store(dir maildir.Dir, recipient string, msg *Message, opt Options) (maildir.Delivered, error) {
	r := io.MultiReader(bytes.NewReader(opt.traceHeader(recipient)), bytes.NewReader(msg.data))
	return dir.Deliver(r, opt.deliverOptions(""))
}

// Result is the outcome of delivering to one local target.
type Result struct {
	Target    resolve.Target
	Delivered maildir.Delivered
	Err       error
}

// ToAddress resolves rcpt and delivers msg to each local mailbox it reaches.
// Remote targets (aliases that forward elsewhere) are returned unresolved in
// remote, for the caller to enqueue; lda never sends mail itself.
func ToAddress(r *resolve.Resolver, rcpt address.Address, msg *Message, opt Options) (results []Result, remote []address.Address, err error) {
	if msg.deliveredBefore(rcpt) {
		return nil, nil, &Error{Code: sysexits.DataErr, Err: fmt.Errorf("lda: %s: %w", rcpt, ErrLoop)}
	}
	targets, err := r.Resolve(rcpt)
	if err != nil {
		code := sysexits.TempFail
		switch {
		case errors.Is(err, resolve.ErrUnknownUser):
			code = sysexits.NoUser
		case errors.Is(err, resolve.ErrAliasLoop):
			code = sysexits.DataErr
		}
		return nil, nil, &Error{Code: code, Err: fmt.Errorf("lda: %s: %w", rcpt, err)}
	}
	for _, t := range targets {
		if t.Kind != resolve.Local {
			remote = append(remote, t.Address)
			continue
		}
		results = append(results, Result{Target: t})
		res := &results[len(results)-1]
		o := opt
		o.Recipient = rcpt
		res.Delivered, res.Err = ToTarget(t, msg, o)
	}
	return results, remote, nil
}

// senderMayNotChoose are the folders a subaddress never delivers into: a
// stranger writing to alice+Sent@ must not make mail look sent or drafted by
// her, nor hide it in her Trash.
var senderMayNotChoose = map[string]bool{"sent": true, "drafts": true, "trash": true}

// ToTarget delivers msg to one resolved local target.
func ToTarget(t resolve.Target, msg *Message, opt Options) (maildir.Delivered, error) {
	user := t.Address.String()
	if msg.deliveredBefore(t.Address) {
		return maildir.Delivered{}, &Error{Code: sysexits.DataErr, Err: fmt.Errorf("lda: %s: %w", user, ErrLoop)}
	}
	root := maildir.Dir(t.Maildir)
	// A user may exist without a complete Maildir (added to etc/users by
	// hand, or a directory removed): make what is missing, as Dovecot does on
	// first delivery. When all is there this costs three stat calls.
	if err := maildir.Create(t.Maildir); err != nil {
		return maildir.Delivered{}, &Error{Code: sysexits.CantCreat, Err: fmt.Errorf("lda: creating Maildir for %s: %w", user, err)}
	}
	dir := root
	if opt.Junk || spamMarked(rootOf(t.Maildir), user, msg) {
		// The user may have deleted the folder: junk still never
		// lands in INBOX.
		if err := maildir.Create(t.Maildir, JunkFolder); err != nil {
			return maildir.Delivered{}, classify(fmt.Errorf("lda: folder %s of %s: %w", JunkFolder, user, err))
		}
		dir, _ = root.Folder(JunkFolder) // a valid name: Create took it
	} else if t.Detail != "" && !senderMayNotChoose[strings.ToLower(t.Detail)] {
		if f, err := root.Folder(t.Detail); err == nil {
			if info, err := os.Stat(string(f)); err == nil && info.IsDir() {
				// The folder exists (made by the user over IMAP, say):
				// complete its cur/ new/ tmp/ if anything is missing.
				if err := maildir.Create(t.Maildir, t.Detail); err != nil {
					return maildir.Delivered{}, classify(fmt.Errorf("lda: folder %q of %s: %w", t.Detail, user, err))
				}
				dir = f
			}
		}
	}
	// The user's Sieve scripts decide where it goes; dir is the default
	// mailbox of their keep (sieve.go).
	d, err := filter(t, dir, user, msg, opt)
	if err != nil {
		return d, classify(fmt.Errorf("lda: delivering to %s: %w", user, err))
	}
	return d, nil
}

// Forwarder hands the message for the remote targets of alias via to the
// queue and returns its queue ID.
type Forwarder func(sender, via address.Address, targets []address.Address, msg *Message) (string, error)

// SpoolForwarder returns a Forwarder that enqueues into the spool at dir, for
// sendq to send. The forwarded copy gets a Delivered-To for the alias, so that
// a message that comes back to the alias is caught as a loop. The envelope
// sender is kept (no SRS rewriting).
func SpoolForwarder(dir string) Forwarder {
	return func(sender, via address.Address, targets []address.Address, msg *Message) (string, error) {
		sp, err := spool.Open(dir)
		if err != nil {
			return "", err
		}
		env := &spool.Envelope{From: returnPath(sender)}
		for _, t := range targets {
			env.Recipients = append(env.Recipients, spool.Recipient{Address: t.String()})
		}
		header := fmt.Sprintf("Delivered-To: %s\n", via)
		return sp.Enqueue(env, io.MultiReader(strings.NewReader(header), bytes.NewReader(msg.data)))
	}
}

// Bytes returns the message as read (without the headers lda adds).
func (m *Message) Bytes() []byte { return m.data }

// ToAddresses delivers msg to every recipient, forwards the remote targets of
// aliases with forward, logs one line per outcome, and returns the sysexits
// code for the whole run: 0 when every recipient got the message, else the
// code of the first temporary failure if any (the MTA retries), else of the
// first permanent one. An MTA that needs a status per recipient calls it once
// per recipient, as sendq does.
func ToAddresses(r *resolve.Resolver, rcpts []address.Address, msg *Message, opt Options, forward Forwarder, logf func(format string, args ...any)) int {
	firstTemp, firstPerm := 0, 0
	note := func(err error) {
		c := Code(err)
		switch {
		case c == sysexits.TempFail && firstTemp == 0:
			firstTemp = c
		case c != sysexits.TempFail && firstPerm == 0:
			firstPerm = c
		}
	}
	for _, rcpt := range rcpts {
		results, remote, err := ToAddress(r, rcpt, msg, opt)
		if err != nil {
			logf("rcpt=%s status=failed code=%d error=%q", maillog.Quote(rcpt.String()), Code(err), err)
			note(err)
			continue
		}
		for _, res := range results {
			if res.Err != nil {
				logf("rcpt=%s user=%s status=failed code=%d error=%q", maillog.Quote(rcpt.String()), maillog.Quote(res.Target.Address.String()), Code(res.Err), res.Err)
				note(res.Err)
				continue
			}
			logf("rcpt=%s user=%s status=delivered file=%s size=%d", maillog.Quote(rcpt.String()), maillog.Quote(res.Target.Address.String()), maillog.Quote(res.Delivered.Path), res.Delivered.Size)
		}
		if len(remote) == 0 {
			continue
		}
		id, err := forward(opt.Sender, rcpt, remote, msg)
		if err != nil {
			logf("rcpt=%s status=failed forward=%d error=%q", maillog.Quote(rcpt.String()), len(remote), err)
			note(&Error{Code: sysexits.TempFail, Err: err})
			continue
		}
		for _, a := range remote {
			logf("rcpt=%s to=%s status=forwarded queue=%s", maillog.Quote(rcpt.String()), maillog.Quote(a.String()), id)
		}
	}
	if firstTemp != 0 {
		return firstTemp
	}
	return firstPerm
}
