package imapmsg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// formatBS renders a body structure roughly as go-imap's server writes it
// (RFC 3501 syntax, strings always quoted), so that expectations read like
// IMAP responses.
func formatBS(bs imap.BodyStructure, extended bool) string {
	var b strings.Builder
	writeBS(&b, bs, extended)
	return b.String()
}

func writeBS(b *strings.Builder, bs imap.BodyStructure, extended bool) {
	b.WriteByte('(')
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		fmt.Fprintf(b, "%s %s %s %s %s %s %d", q(bs.Type), q(bs.Subtype), params(bs.Params),
			nq(bs.ID), nq(bs.Description), q(strings.ToLower(nonEmpty(bs.Encoding, "7bit"))), bs.Size)
		if m := bs.MessageRFC822; m != nil {
			b.WriteString(" " + formatEnv(m.Envelope) + " ")
			writeBS(b, m.BodyStructure, extended)
			fmt.Fprintf(b, " %d", m.NumLines)
		} else if t := bs.Text; t != nil {
			fmt.Fprintf(b, " %d", t.NumLines)
		}
		if extended {
			ext := bs.Extended
			if ext == nil {
				ext = &imap.BodyStructureSinglePartExt{}
			}
			fmt.Fprintf(b, " NIL %s %s %s", disp(ext.Disposition), lang(ext.Language), nq(ext.Location))
		}
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children {
			writeBS(b, c, extended)
		}
		b.WriteString(" " + q(bs.Subtype))
		if extended {
			ext := bs.Extended
			if ext == nil {
				ext = &imap.BodyStructureMultiPartExt{}
			}
			fmt.Fprintf(b, " %s %s %s %s", params(ext.Params), disp(ext.Disposition), lang(ext.Language), nq(ext.Location))
		}
	}
	b.WriteByte(')')
}

func q(s string) string { return strconv.Quote(s) }

func nq(s string) string {
	if s == "" {
		return "NIL"
	}
	return q(s)
}

func params(p map[string]string) string {
	if len(p) == 0 {
		return "NIL"
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, q(k)+" "+q(p[k]))
	}
	return "(" + strings.Join(parts, " ") + ")"
}

func disp(d *imap.BodyStructureDisposition) string {
	if d == nil {
		return "NIL"
	}
	return "(" + q(d.Value) + " " + params(d.Params) + ")"
}

func lang(l []string) string {
	if len(l) == 0 {
		return "NIL"
	}
	var parts []string
	for _, s := range l {
		parts = append(parts, q(s))
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// formatEnv renders an envelope as go-imap's writer would, except that
// strings are not encoded.
func formatEnv(env *imap.Envelope) string {
	if env == nil {
		env = &imap.Envelope{}
	}
	date := "NIL"
	if !env.Date.IsZero() {
		date = q(env.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	sender, replyTo := env.Sender, env.ReplyTo
	if sender == nil {
		sender = env.From
	}
	if replyTo == nil {
		replyTo = env.From
	}
	irt := "NIL"
	if len(env.InReplyTo) > 0 {
		irt = q("<" + strings.Join(env.InReplyTo, "> <") + ">")
	}
	mid := "NIL"
	if env.MessageID != "" {
		mid = q("<" + env.MessageID + ">")
	}
	return fmt.Sprintf("(%s %s %s %s %s %s %s %s %s %s)", date, nq(env.Subject), addrs(env.From), addrs(sender),
		addrs(replyTo), addrs(env.To), addrs(env.Cc), addrs(env.Bcc), irt, mid)
}

func addrs(l []imap.Address) string {
	if len(l) == 0 {
		return "NIL"
	}
	var parts []string
	for _, a := range l {
		parts = append(parts, fmt.Sprintf("(%s NIL %s %s)", nq(a.Name), nq(a.Mailbox), nq(a.Host)))
	}
	return "(" + strings.Join(parts, "") + ")"
}
