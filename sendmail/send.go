package sendmail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

// Env is what an invocation needs from its surroundings.
type Env struct {
	Root     control.Root
	Hostname string // appended to unqualified addresses; in Message-IDs
	User     string // the login name: the default sender is User@Hostname
	Now      func() time.Time
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Send reads a message from in, completes it and enqueues it for the
// invocation's recipients. It returns the queue ID.
func Send(inv *Invocation, in io.Reader, env Env) (string, error) {
	// The limit counts bytes as read: a message with CRLF line endings
	// shrinks when they become LF, and is measured again in enqueue.
	data, err := ReadMessage(io.LimitReader(in, 2*MaxMessageSize), inv.IgnoreDots)
	if err != nil {
		return "", fmt.Errorf("sendmail: reading the message: %w", err)
	}
	m := parseMessage(data)
	rcpts := inv.Recipients
	if inv.ReadRecipients {
		fromHeader, err := m.headerRecipients()
		if err != nil {
			return "", err
		}
		// As Postfix does, recipients given as arguments are added to
		// those of the header.
		rcpts = append(append([]string(nil), rcpts...), fromHeader...)
	}
	if len(rcpts) == 0 {
		return "", fmt.Errorf("%w: no recipients in the message header (To, Cc, Bcc)", ErrData)
	}
	sender := address.Address{}
	if !inv.FromSet || inv.From != "" {
		s := inv.From
		if !inv.FromSet {
			s = env.User
		}
		if sender, err = qualify(s, env.Hostname); err != nil {
			return "", fmt.Errorf("%w: sender %q: %v", ErrData, s, err)
		}
	}
	e := &spool.Envelope{From: addrString(sender), Ret: inv.Ret, EnvID: inv.EnvID}
	seen := map[string]bool{}
	for _, r := range rcpts {
		a, err := qualify(r, env.Hostname)
		if err != nil {
			return "", fmt.Errorf("%w: recipient %q: %v", ErrData, r, err)
		}
		if seen[a.Key()] {
			continue
		}
		seen[a.Key()] = true
		e.Recipients = append(e.Recipients, spool.Recipient{Address: a.String(), Notify: inv.Notify})
	}
	headerFrom := e.From
	if headerFrom == "" {
		if a, err := qualify(env.User, env.Hostname); err == nil {
			headerFrom = a.String()
		}
	}
	m.complete(headerFrom, inv.FullName, env.Hostname, env.now())
	return enqueue(env.Root, e, m.bytes())
}

// enqueue hands a message to the queue (spool.Submit), marking 8-bit
// content and internationalised addresses.
func enqueue(root control.Root, e *spool.Envelope, msg []byte) (string, error) {
	for _, c := range msg {
		if c >= 0x80 {
			e.Body = spool.Body8BitMIME
			break
		}
	}
	for _, a := range append([]string{e.From}, rcptAddrs(e)...) {
		if !isASCII(a) {
			e.SMTPUTF8 = true
		}
	}
	if len(msg) > MaxMessageSize {
		return "", fmt.Errorf("%w: the message has %d bytes, more than the limit of %d", ErrData, len(msg), MaxMessageSize)
	}
	// The spool's owner and root enqueue directly; any other user drops
	// the message into the spool's maildrop/ for the queue runner.
	return spool.Submit(root.SpoolDir(), e, bytes.NewReader(msg))
}

func rcptAddrs(e *spool.Envelope) []string {
	var out []string
	for _, r := range e.Recipients {
		out = append(out, r.Address)
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// qualify parses an address from the command line or a header; a bare
// name ("root") gets "@hostname", as sendmail's $j does.
func qualify(s, hostname string) (address.Address, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if !strings.Contains(s, "@") {
		s += "@" + hostname
	}
	return address.Parse(s)
}

func addrString(a address.Address) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

// Code returns the sysexits code for an error of this package.
func Code(err error) int {
	switch {
	case err == nil:
		return sysexits.OK
	case errors.Is(err, ErrUsage):
		return sysexits.Usage
	case errors.Is(err, ErrData):
		return sysexits.DataErr
	case spool.IsTemporary(err):
		return sysexits.TempFail
	case errors.Is(err, spool.ErrInvalid):
		return sysexits.DataErr
	}
	return sysexits.TempFail
}

// NewEnv returns the Env of a sendmail run by the current user: the host
// name from the flag, etc/hostname or the system, and the login name. A
// user outside the daemons' group cannot read etc/ (mode 0750): sendmail
// run by such a user takes the system's host name.
func NewEnv(root control.Root, hostnameFlag string) (Env, error) {
	hostname, err := root.Hostname(hostnameFlag)
	if errors.Is(err, fs.ErrPermission) {
		hostname, err = os.Hostname()
	}
	if err != nil {
		return Env{}, err
	}
	name := os.Getenv("LOGNAME")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return Env{Root: root, Hostname: hostname, User: name}, nil
}
