package sieve

import (
	"fmt"
	"strings"
	"time"
)

// Envelope is the SMTP envelope of the message being filtered.
type Envelope struct {
	// From is the reverse path (MAIL FROM) without angle brackets; "" is the
	// null sender of bounces.
	From string
	// To is the recipient the message came for, as given in RCPT TO before
	// alias resolution, with its +detail (alice+lists@example.org): the
	// envelope test's "to", and the user's own address for vacation.
	To string
}

// Environment is what a run needs from its caller.
type Environment interface {
	// Now is the current time. Its location is the local time zone of the
	// date and currentdate tests.
	Now() time.Time
	// MailboxExists reports whether the user has the mailbox (folder) name,
	// for the mailboxexists test (RFC 5490 §3.1). INBOX always exists.
	MailboxExists(name string) (bool, error)
	// VacationReplied reports whether a vacation reply with this handle went
	// to sender (lower case) in the last days days (RFC 5230 §4.2). The
	// caller records a reply when it sends one (see Vacation).
	VacationReplied(sender, handle string, days int) (bool, error)
}

// Result is the outcome of one run.
type Result struct {
	// Actions for the caller to perform, in script order; duplicates are
	// merged (RFC 5228 §2.10.3).
	Actions []Action
	// Notes are things worth a log line that are no action, such as a
	// vacation reply not sent and why.
	Notes []string
}

// Action is one of Keep, FileInto, Redirect, Discard, Reject and Vacation.
type Action interface {
	// String describes the action in a Sieve-like form, for logs and tests.
	String() string
	action()
}

// Keep stores the message in INBOX with Flags (IMAP flags such as \Seen, or
// keywords). Implicit marks the implicit keep of RFC 5228 §2.10.2.
type Keep struct {
	Flags    []string
	Implicit bool
}

// FileInto stores the message in Mailbox (the name as the script wrote it,
// UTF-8, hierarchy separator as the user wrote it). With Create the mailbox
// is created when missing (RFC 5490 §3.2); without, a missing mailbox means
// the caller keeps the message in INBOX instead. Copy is informational: the
// implicit keep was not cancelled (RFC 3894).
type FileInto struct {
	Mailbox string
	Flags   []string
	Create  bool
	Copy    bool
}

// Redirect forwards the message unchanged to Address, keeping the envelope
// sender (RFC 5228 §4.2).
type Redirect struct {
	Address string
	Copy    bool
}

// Discard drops the message silently; the caller has nothing to do.
type Discard struct{}

// Reject refuses the message with Reason: by a delivery status notification
// or MDN to the envelope sender (RFC 5429 §2.1, §2.2). Extended is set for
// ereject, which a caller still in the SMTP dialogue should turn into a 5xx
// reply instead.
type Reject struct {
	Reason   string
	Extended bool
}

// Vacation is an auto-reply that is due (RFC 5230). The caller sends a
// message To the sender From the user with Subject and Body (with MIME set,
// Body is a whole MIME entity, header and body, else plain UTF-8 text), adds
// "Auto-Submitted: auto-replied" (RFC 3834 §5), In-Reply-To and References,
// sends it with the null reverse path, and then records (To, Handle) so that
// Environment.VacationReplied answers true for Days days.
type Vacation struct {
	To, From   string
	Subject    string
	Body       string
	MIME       bool
	Handle     string
	Days       int
	InReplyTo  string
	References string
}

func (Keep) action()     {}
func (FileInto) action() {}
func (Redirect) action() {}
func (Discard) action()  {}
func (Reject) action()   {}
func (Vacation) action() {}

func flagsString(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return fmt.Sprintf(" :flags %q", strings.Join(flags, " "))
}

func (a Keep) String() string {
	s := "keep" + flagsString(a.Flags)
	if a.Implicit {
		s += " # implicit"
	}
	return s
}

func (a FileInto) String() string {
	s := "fileinto"
	if a.Create {
		s += " :create"
	}
	if a.Copy {
		s += " :copy"
	}
	return s + flagsString(a.Flags) + fmt.Sprintf(" %q", a.Mailbox)
}

func (a Redirect) String() string {
	if a.Copy {
		return fmt.Sprintf("redirect :copy %q", a.Address)
	}
	return fmt.Sprintf("redirect %q", a.Address)
}

func (Discard) String() string { return "discard" }

func (a Reject) String() string {
	if a.Extended {
		return fmt.Sprintf("ereject %q", a.Reason)
	}
	return fmt.Sprintf("reject %q", a.Reason)
}

func (a Vacation) String() string {
	s := fmt.Sprintf("vacation :to %q :from %q :subject %q :days %d :handle %q", a.To, a.From, a.Subject, a.Days, a.Handle)
	if a.MIME {
		s += " :mime"
	}
	return s + fmt.Sprintf(" %q", a.Body)
}
