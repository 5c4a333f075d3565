// Package dsn writes delivery status notifications: the bounces, delay
// warnings and success reports that sendq sends to a message's envelope
// sender, as RFC 3464 multipart/report messages (RFC 6522) with a
// human-readable part, a message/delivery-status part and the returned
// message: its header section (text/rfc822-headers) unless the sender asked
// for the full message with RET=FULL (RFC 3461 §4.3).
//
// Notifications go out with the null reverse-path (RFC 5321 §4.5.5), so a
// notification that cannot be delivered is never answered by another one.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// Action is the RFC 3464 §2.3.3 Action of a recipient.
type Action string

// The actions sendq reports.
const (
	Failed    Action = "failed"
	Delayed   Action = "delayed"
	Delivered Action = "delivered"
	Relayed   Action = "relayed" // to a host that does not report DSNs itself
)

// Recipient is one recipient's part of a report.
type Recipient struct {
	Address string // the final recipient
	ORCPT   string // "addr-type;address" as given with ORCPT, or ""
	Action  Action
	Status  string // RFC 3463 code, "5.1.1"
	// RemoteMTA is the host that answered, "" for local deliveries.
	RemoteMTA string
	// Diagnostic is the server's reply ("550 5.1.1 no such user") or a
	// description of the local failure.
	Diagnostic     string
	LastAttempt    time.Time
	WillRetryUntil time.Time // for Delayed
}

// Report is one notification.
type Report struct {
	ReportingMTA string // our host name
	QueueID      string
	EnvID        string // the ENVID the sender gave, or ""
	Arrival      time.Time
	// To is the original envelope sender, who gets the report. Never
	// empty: the null sender gets no reports.
	To         string
	Recipients []Recipient
	// Full returns the whole message (RET=FULL) rather than its header.
	Full bool
	Date time.Time
}

// MaxFull is the largest message returned whole; a bigger one is returned
// as its header section only, as Postfix does (bounce_size_limit).
const MaxFull = 100 << 10

// Build returns the report as a message with LF line endings, ready for
// the spool. original is the message the report is about (LF or CRLF).
func Build(rep *Report, original io.Reader) ([]byte, error) {
	if rep.To == "" {
		return nil, fmt.Errorf("dsn: no report for the null sender")
	}
	if len(rep.Recipients) == 0 {
		return nil, fmt.Errorf("dsn: report without recipients")
	}
	orig, err := io.ReadAll(io.LimitReader(original, MaxFull+1))
	if err != nil {
		return nil, fmt.Errorf("dsn: reading the message: %w", err)
	}
	full := rep.Full && len(orig) <= MaxFull
	orig = bytes.ReplaceAll(orig, []byte("\r\n"), []byte("\n"))
	if !full {
		orig = headerSection(orig)
	}
	boundary := randomHex(12) + "/" + rep.ReportingMTA
	date := rep.Date
	if date.IsZero() {
		date = time.Now()
	}
	kind := rep.Recipients[0].Action

	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", rep.ReportingMTA)
	fmt.Fprintf(&b, "To: <%s>\n", rep.To)
	fmt.Fprintf(&b, "Subject: %s\n", subject(kind))
	fmt.Fprintf(&b, "Date: %s\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s@%s>\n", rep.QueueID, randomHex(6), rep.ReportingMTA)
	// RFC 3834 §5: mark it as automatic so that responders leave it alone.
	b.WriteString("Auto-Submitted: auto-replied\n")
	b.WriteString("MIME-Version: 1.0\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary)
	b.WriteString("\nThis is a MIME-encapsulated message.\n\n")

	fmt.Fprintf(&b, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n", boundary)
	humanText(&b, rep, kind)

	fmt.Fprintf(&b, "\n--%s\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n", boundary)
	statusFields(&b, rep)

	if full {
		fmt.Fprintf(&b, "\n--%s\nContent-Description: Undelivered message\nContent-Type: message/rfc822\n\n", boundary)
	} else {
		fmt.Fprintf(&b, "\n--%s\nContent-Description: Message headers\nContent-Type: text/rfc822-headers\n\n", boundary)
	}
	b.Write(orig)
	if len(orig) > 0 && orig[len(orig)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\n--%s--\n", boundary)
	return b.Bytes(), nil
}

func subject(kind Action) string {
	switch kind {
	case Delayed:
		return "Delayed Mail (still being retried)"
	case Delivered, Relayed:
		return "Successful Mail Delivery Report"
	}
	return "Undelivered Mail Returned to Sender"
}

func humanText(b *bytes.Buffer, rep *Report, kind Action) {
	fmt.Fprintf(b, "This is the mail system at host %s.\n\n", rep.ReportingMTA)
	switch kind {
	case Delayed:
		b.WriteString("Your message could not be delivered yet to the recipients below.\nThe mail system will keep trying; you do not need to send it again.\n")
	case Delivered, Relayed:
		b.WriteString("Your message was delivered to the recipients below, as you asked.\n")
	default:
		b.WriteString("I'm sorry to have to tell you that your message could not be delivered\nto the recipients below. It has been given up on.\n")
	}
	b.WriteByte('\n')
	for _, r := range rep.Recipients {
		fmt.Fprintf(b, "<%s>: %s", r.Address, r.Action)
		if r.Diagnostic != "" {
			fmt.Fprintf(b, ": %s", oneLine(r.Diagnostic))
		}
		b.WriteByte('\n')
	}
}

// statusFields writes the message/delivery-status body (RFC 3464 §2.2, §2.3).
func statusFields(b *bytes.Buffer, rep *Report) {
	fmt.Fprintf(b, "Reporting-MTA: dns; %s\n", rep.ReportingMTA)
	fmt.Fprintf(b, "X-Postkit-Queue-ID: %s\n", rep.QueueID)
	if rep.EnvID != "" {
		fmt.Fprintf(b, "Original-Envelope-Id: %s\n", xtext(rep.EnvID))
	}
	if !rep.Arrival.IsZero() {
		fmt.Fprintf(b, "Arrival-Date: %s\n", rep.Arrival.Format(time.RFC1123Z))
	}
	for _, r := range rep.Recipients {
		b.WriteByte('\n')
		if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok {
			fmt.Fprintf(b, "Original-Recipient: %s;%s\n", typ, oneLine(addr))
		}
		fmt.Fprintf(b, "Final-Recipient: %s; %s\n", addrType(r.Address), r.Address)
		fmt.Fprintf(b, "Action: %s\n", r.Action)
		fmt.Fprintf(b, "Status: %s\n", r.Status)
		if r.RemoteMTA != "" {
			fmt.Fprintf(b, "Remote-MTA: dns; %s\n", r.RemoteMTA)
		}
		if r.Diagnostic != "" {
			d := oneLine(r.Diagnostic)
			if isReply(d) {
				fmt.Fprintf(b, "Diagnostic-Code: smtp; %s\n", d)
			} else {
				fmt.Fprintf(b, "Diagnostic-Code: X-Postkit; %s\n", d)
			}
		}
		if !r.LastAttempt.IsZero() {
			fmt.Fprintf(b, "Last-Attempt-Date: %s\n", r.LastAttempt.Format(time.RFC1123Z))
		}
		if !r.WillRetryUntil.IsZero() {
			fmt.Fprintf(b, "Will-Retry-Until: %s\n", r.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
}

// addrType is the RFC 3464 address type: rfc822, or utf-8 (RFC 6533) for
// internationalised addresses.
func addrType(a string) string {
	for i := 0; i < len(a); i++ {
		if a[i] >= 0x80 {
			return "utf-8"
		}
	}
	return "rfc822"
}

// isReply reports whether s starts with an SMTP reply code.
func isReply(s string) bool {
	return len(s) >= 4 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && s[3] == ' '
}

// oneLine keeps a field on one line, whatever a remote server put in it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// xtext encodes s as RFC 3461 §4 xtext.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// headerSection returns msg up to and including the empty line that ends
// its header section (all of it when there is none).
func headerSection(msg []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(msg))
	sc.Buffer(make([]byte, 0, 4096), len(msg)+1)
	for sc.Scan() {
		if sc.Text() == "" {
			break
		}
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
