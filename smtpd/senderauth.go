package smtpd

import (
	"context"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/dnsbl"
	"github.com/postkit/postkit/mailheader"
	"github.com/postkit/postkit/msgauth"
)

// Control files of sender authentication, and their choices; the first
// choice is the default.
var (
	// spfFailChoices: what becomes of a message whose SPF result is fail
	// and that does not pass DMARC (RFC 7489 §10.1: refusing on SPF
	// alone would refuse mail that DKIM vouches for).
	spfFailChoices = []string{"accept", "junk", "refuse"}
	// dmarcRejectChoices: what becomes of a message that fails DMARC
	// where the domain's policy is reject.
	dmarcRejectChoices = []string{"refuse", "junk"}
)

// checked reports whether the session's messages are checked (SPF, DKIM,
// DMARC) and its client looked up in the DNSBLs: in MX mode, for clients
// that neither authenticated nor are relay clients, which are our own users
// and hosts.
func (s *session) checked() bool {
	return !s.srv.submission && s.user == "" && !s.relay
}

// verdict is what the checks decide for a message.
type verdict struct {
	field  string          // the Authentication-Results field to add
	junk   string          // for spool.Envelope.Junk
	refuse *smtp.SMTPError // the reply that refuses the message, if it is refused
}

// check runs the checks on a message: header is its parsed header section,
// msg the whole message as received.
func (s *session) check(tx *transaction, rid string, header *mailheader.Header, msg io.Reader) verdict {
	info := s.conn.info
	env := msgauth.Envelope{IP: info.ip, Helo: tx.helo, MailFrom: tx.from.String()}
	res := s.srv.checker.Check(context.Background(), env, header, msg)
	v := verdict{field: res.Field(s.srv.hostname)}
	action := "accept"
	switch policy := res.Policy(); {
	case policy == dmarc.PolicyReject && s.srv.choice("dmarc-reject", dmarcRejectChoices) == "refuse":
		// RFC 7489 §6.6.4 and §10.3: refuse during the SMTP transaction.
		action = "refuse"
		v.refuse = smtpError(550, smtp.EnhancedCode{5, 7, 1}, "Message refused: it fails the DMARC policy of %s", rejectingDomain(res))
	case policy == dmarc.PolicyReject, policy == dmarc.PolicyQuarantine:
		action, v.junk = "junk", "dmarc"
	case res.SPF.Value == authres.ResultFail && !res.DMARCPass():
		switch s.srv.choice("spf-fail", spfFailChoices) {
		case "refuse":
			// RFC 7372 §3.2: X.7.23, SPF validation failed.
			action = "refuse"
			v.refuse = smtpError(550, smtp.EnhancedCode{5, 7, 23}, "Message refused: SPF check failed for %s", res.SPF.Domain)
		case "junk":
			action, v.junk = "junk", "spf"
		}
	}
	s.srv.logf("checked conn=%s rid=%s client=%s spf=%s dkim=%s dmarc=%s action=%s",
		info.id, rid, info.client, res.SPF.Value, logValue(dkimSummary(res)), logValue(dmarcSummary(res)), action)
	return v
}

// rejectingDomain returns the From domain whose reject policy applies.
func rejectingDomain(res *msgauth.Result) string {
	for _, d := range res.DMARC {
		if d.Policy == dmarc.PolicyReject {
			return d.Domain
		}
	}
	return ""
}

// dkimSummary is "none", or the results as "pass:example.com,fail:x.test".
func dkimSummary(res *msgauth.Result) string {
	if len(res.DKIM) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range res.DKIM {
		parts = append(parts, string(d.Value)+":"+d.Domain)
	}
	return strings.Join(parts, ",")
}

// dmarcSummary is "none", or the results as "fail:example.com:reject"
// (with the policy applied, if any).
func dmarcSummary(res *msgauth.Result) string {
	if len(res.DMARC) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range res.DMARC {
		p := string(d.Value) + ":" + d.Domain
		if d.Policy != "" {
			p += ":" + string(d.Policy)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// choice reads a control file that holds one of choices, read at every
// message so that changes apply at once. A missing file means the first
// choice; so does a value that is none of them, which is logged.
func (s *Server) choice(name string, choices []string) string {
	v, err := s.etc.String(name, choices[0])
	if err != nil {
		s.logf("error file=%s error=%q using=%s", logValue(s.root.Etc(name)), err, logValue(choices[0]))
		return choices[0]
	}
	v = strings.ToLower(v)
	if !slices.Contains(choices, v) {
		s.logf("error file=%s value=%s error=%q using=%s", logValue(s.root.Etc(name)), logValue(v), "is none of "+strings.Join(choices, ", "), logValue(choices[0]))
		return choices[0]
	}
	return v
}

// startDNSBL looks the client of a new MX connection up in the zones of
// etc/dnsbl-zones (read at every connection; none by default), unless it
// is a relay client. The lookups run while the client greets; MAIL waits
// for them (session.dnsblRefusal).
func (s *Server) startDNSBL(info *connInfo) {
	if !info.ip.IsValid() {
		return
	}
	done := make(chan struct{})
	info.dnsblDone = done
	go func() {
		defer close(done)
		lines, err := s.etc.Lines("dnsbl-zones")
		if err != nil {
			s.logf("error conn=%s what=%s error=%q", info.id, logValue("reading dnsbl-zones"), err)
			return
		}
		var zones []string
		for _, z := range lines {
			if !dnsbl.ValidZone(z) {
				s.logf("error file=%s value=%s error=%q", logValue(s.root.Etc("dnsbl-zones")), logValue(z), "is no DNS zone; skipped")
				continue
			}
			zones = append(zones, z)
		}
		if len(zones) == 0 || s.relayClient(info) {
			return
		}
		l, err := s.dnsbl.Check(context.Background(), info.ip, zones)
		if err != nil {
			s.logf("error conn=%s client=%s error=%q", info.id, info.client, err)
		}
		if l != nil {
			s.logf("dnsbl-listed conn=%s client=%s zone=%s answer=%s reason=%s",
				info.id, info.client, l.Zone, l.Answer, logValue(l.Reason))
			info.listing = l
		}
	}()
}

// dnsblRefusal returns the reply that refuses MAIL from a client listed in
// a DNSBL, or nil. It applies only to checked sessions: the lookup starts
// at connect, but the refusal waits for MAIL so that a user of ours whose
// address is listed (a home or mobile network) can still authenticate and
// send.
func (s *session) dnsblRefusal() error {
	if !s.checked() {
		return nil
	}
	l := s.conn.info.dnsblListing()
	if l == nil {
		return nil
	}
	info := s.conn.info
	s.srv.logf("refused conn=%s client=%s reason=dnsbl zone=%s", info.id, info.client, l.Zone)
	reason := ""
	if l.Reason != "" {
		reason = ": " + l.Reason
	}
	// RFC 5782 §2.1 suggests the TXT record as the text of the refusal.
	return smtpError(554, smtp.EnhancedCode{5, 7, 1}, "Service refused: %s is listed in %s%s", info.client, l.Zone, reason)
}

// dnsblListing waits for the connection's DNSBL lookups, if any, and
// returns the listing found.
func (i *connInfo) dnsblListing() *dnsbl.Listing {
	if i.dnsblDone == nil {
		return nil
	}
	<-i.dnsblDone
	return i.listing
}

// strippedLog logs the fields removed from a message: forged
// Authentication-Results fields, or those of etc/spam-header.
func (s *session) strippedLog(rid, field string, n int) {
	if n > 0 {
		info := s.conn.info
		s.srv.logf("stripped conn=%s rid=%s client=%s field=%s count=%d", info.id, rid, info.client, logValue(field), n)
	}
}
