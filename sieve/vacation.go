package sieve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

type cmdVacation struct {
	pos       Pos
	days      int
	subject   *str
	from      *str
	addresses []*str
	mime      bool
	handle    *str
	reason    *str
}

func (c *cmdVacation) exec(r *run) error {
	switch {
	case r.vacationDone:
		return errorf(c.pos, "vacation may run once per message")
	case r.rejected:
		return errorf(c.pos, "vacation cannot follow reject")
	}
	r.vacationDone = true
	reason := c.reason.expand(r)
	subject, from := "", ""
	if c.subject != nil {
		subject = c.subject.expand(r)
	}
	if c.from != nil {
		var ok bool
		if from, ok = redirectAddress(c.from.expand(r)); !ok {
			from = ""
		}
	}
	handle := ""
	if c.handle != nil {
		handle = c.handle.expand(r)
	} else {
		// Without :handle, replies are told apart by their arguments
		// (RFC 5230 §4.2).
		sum := sha256.Sum256([]byte(fmt.Sprintf("%q %q %t %q", subject, from, c.mime, reason)))
		handle = "auto-" + hex.EncodeToString(sum[:12])
	}
	own := r.ownAddresses(expandAll(r, c.addresses), from)
	if why := r.vacationRefused(own); why != "" {
		r.notes = append(r.notes, "vacation: no reply: "+why)
		return nil
	}
	sender := strings.ToLower(r.env.From)
	replied, err := r.envir.VacationReplied(sender, handle, c.days)
	if err != nil {
		return errorf(c.pos, "vacation: %v", err)
	}
	if replied {
		r.notes = append(r.notes, fmt.Sprintf("vacation: no reply: already replied to %s within %d days", sender, c.days))
		return nil
	}
	if subject == "" {
		// RFC 5230 §5.4: "Auto:" and the original subject.
		subject = "Automated reply"
		if orig := r.msg.headerValues("subject", index{}); len(orig) > 0 && orig[0] != "" {
			subject = "Auto: " + orig[0]
		}
	}
	if from == "" {
		from = userAddress(r.env.To)
	}
	v := Vacation{To: r.env.From, From: from, Subject: subject, Body: reason, MIME: c.mime,
		Handle: handle, Days: c.days}
	if ids := r.msg.rawValues("message-id"); len(ids) > 0 {
		v.InReplyTo = strings.TrimSpace(ids[0])
		refs := r.msg.rawValues("references")
		if len(refs) == 0 {
			refs = r.msg.rawValues("in-reply-to")
		}
		v.References = strings.TrimSpace(strings.Join(append(refs, v.InReplyTo), " "))
	}
	return r.add(c.pos, v)
}

// userAddress is the recipient without its +detail.
func userAddress(addr string) string {
	a := parseAddrSpec(addr)
	if !a.valid {
		return addr
	}
	user, _ := a.part(partUser)
	return user + "@" + a.domain
}

// ownAddresses are the user's addresses for vacation: the envelope
// recipient with and without detail, :addresses and :from (RFC 5230 §4.5).
func (r *run) ownAddresses(extra []string, from string) []string {
	own := []string{r.env.To, userAddress(r.env.To)}
	own = append(own, extra...)
	if from != "" {
		own = append(own, from)
	}
	for i, a := range own {
		own[i] = normalAddress(a)
	}
	return own
}

// normalAddress lower-cases an address and drops its detail, for comparing.
func normalAddress(a string) string {
	a = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(a), "<"), ">")
	return strings.ToLower(userAddress(a))
}

// listHeaders mark mailing list traffic (RFC 2369, RFC 2919).
var listHeaders = []string{"list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post",
	"list-owner", "list-archive"}

// vacationRefused returns why no auto-reply may go to this message, or ""
// (RFC 5230 §4.5, RFC 3834 §2).
func (r *run) vacationRefused(own []string) string {
	sender := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(r.env.From), "<"), ">")
	if sender == "" {
		return "null sender"
	}
	s := parseAddrSpec(sender)
	if !s.valid {
		return "sender address is invalid"
	}
	if containsFold(own, normalAddress(sender)) {
		return "the sender is the user"
	}
	local := strings.ToLower(s.local)
	switch {
	case local == "mailer-daemon", local == "listserv", local == "majordomo",
		strings.HasPrefix(local, "owner-"), strings.HasSuffix(local, "-request"),
		strings.HasSuffix(local, "-owner"), strings.HasSuffix(local, "-bounces"):
		return "the sender is a mailing list or mailer daemon"
	}
	for _, v := range r.msg.headerValues("auto-submitted", index{}) {
		if kw, _, _ := strings.Cut(v, ";"); !strings.EqualFold(strings.TrimSpace(kw), "no") {
			return "Auto-Submitted: " + v
		}
	}
	for _, v := range r.msg.headerValues("precedence", index{}) {
		switch strings.ToLower(v) {
		case "bulk", "list", "junk":
			return "Precedence: " + v
		}
	}
	for _, h := range listHeaders {
		if r.msg.has(h) {
			return "mailing list message (" + h + ")"
		}
	}
	for _, h := range []string{"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"} {
		for _, v := range r.msg.rawValues(h) {
			for _, a := range parseAddressList(v) {
				if a.valid && containsFold(own, normalAddress(a.all)) {
					return ""
				}
			}
		}
	}
	return "the user's address is not in To, Cc or Bcc"
}
