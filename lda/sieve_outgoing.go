package lda

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/postkit/postkit/dsn"
	"github.com/postkit/postkit/sieve"
	"github.com/postkit/postkit/spool"
)

// outgoing is a message a Sieve action sends through the spool.
type outgoing struct {
	what string // "redirect", "reject" or "vacation", for the log
	env  *spool.Envelope
	data []byte // LF line endings, as the spool stores messages
}

// redirectCopy is the message redirect sends: unchanged (RFC 5228 §4.2)
// but for a Delivered-To naming the user, so that a redirect loop through
// this host is caught as one (see ErrLoop), and with the original envelope
// sender.
func redirectCopy(user, sender string, to []string, msg *Message) *outgoing {
	env := &spool.Envelope{From: sender}
	for _, a := range to {
		env.Recipients = append(env.Recipients, spool.Recipient{Address: a})
	}
	data := append([]byte("Delivered-To: "+user+"\n"), msg.data...)
	return &outgoing{what: "redirect", env: env, data: data}
}

// rejectNotice is the delivery status notification that reject and
// ereject send to the envelope sender (RFC 5429 §2.1 allows a DSN instead
// of an MDN; a DSN is what senders' software already understands): the
// recipient failed with 5.7.1 and the script's reason, and the message
// comes back whole up to dsn.MaxFull, else its header. ereject behaves the
// same: deliver runs after the SMTP dialogue is over (RFC 5429 §2.1.1).
// It goes out from the null sender, so it is never answered.
func rejectNotice(reason, rcpt, sender, hostname string, original []byte, now time.Time) (*outgoing, error) {
	data, err := dsn.Build(&dsn.Report{
		ReportingMTA: hostname,
		QueueID:      strings.ToUpper(randomHex(8)),
		Arrival:      now,
		To:           sender,
		Recipients: []dsn.Recipient{{
			Address:     rcpt,
			Action:      dsn.Failed,
			Status:      "5.7.1",
			Diagnostic:  "rejected by the recipient's Sieve filter: " + reason,
			LastAttempt: now,
		}},
		Full: true,
		Date: now,
	}, bytes.NewReader(original))
	if err != nil {
		return nil, fmt.Errorf("lda: reject notice: %w", err)
	}
	env := &spool.Envelope{Recipients: []spool.Recipient{{Address: sender}}}
	return &outgoing{what: "reject", env: env, data: data}, nil
}

// vacationReply builds the reply of a vacation action: from the null
// sender (RFC 5230 §5.1, RFC 3834 §3.3), marked "Auto-Submitted:
// auto-replied" (RFC 3834 §5), in reply to the message (In-Reply-To and
// References, RFC 5230 §5.8), with the script's subject and text.
func vacationReply(v sieve.Vacation, hostname string, now time.Time) *outgoing {
	var b bytes.Buffer
	writeField(&b, "From", "<"+v.From+">")
	writeField(&b, "To", "<"+v.To+">")
	writeField(&b, "Subject", mime.QEncoding.Encode("utf-8", v.Subject))
	writeField(&b, "Date", now.Format(time.RFC1123Z))
	writeField(&b, "Message-ID", "<"+randomHex(12)+"@"+hostname+">")
	if v.InReplyTo != "" {
		writeField(&b, "In-Reply-To", v.InReplyTo)
	}
	if v.References != "" {
		writeField(&b, "References", v.References)
	}
	writeField(&b, "Auto-Submitted", "auto-replied")
	writeField(&b, "MIME-Version", "1.0")
	body := strings.ReplaceAll(v.Body, "\r\n", "\n")
	if v.MIME {
		// The script gave a whole MIME entity, its header fields first
		// (RFC 5230 §4.6).
		b.WriteString(body)
	} else {
		writeField(&b, "Content-Type", "text/plain; charset=utf-8")
		writeField(&b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteByte('\n')
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Write([]byte(body))
		w.Close()
		b.Write(bytes.ReplaceAll(qp.Bytes(), []byte("\r\n"), []byte("\n")))
	}
	if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
		b.WriteByte('\n')
	}
	env := &spool.Envelope{Recipients: []spool.Recipient{{Address: v.To}}}
	return &outgoing{what: "vacation", env: env, data: b.Bytes()}
}

// writeField writes one header field, its value made one line (a script or
// a header may hold line breaks) and folded at spaces before 78 columns
// where it can be (RFC 5322 §2.2.3).
func writeField(b *bytes.Buffer, name, value string) {
	words := strings.Fields(value)
	b.WriteString(name + ":")
	col := len(name) + 1
	for _, w := range words {
		if col+1+len(w) > 78 && col > len(name)+1 {
			b.WriteString("\n")
			col = 0
		}
		b.WriteString(" " + w)
		col += 1 + len(w)
	}
	b.WriteByte('\n')
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
