// Package msgauth checks who sent a message received from another mail
// server: SPF (RFC 7208) for the MAIL FROM domain, or the HELO name for the
// null sender; DKIM signatures (RFC 6376); and DMARC (RFC 7489), which
// passes when an SPF or DKIM pass is aligned with the domain of the From
// field and otherwise applies that domain's policy. It writes the results
// as one Authentication-Results field (RFC 8601), and finds the fields of
// that name that falsely claim to be ours (RFC 8601 §5), for removal.
//
// The libraries do the protocol work: blitiri.com.ar/go/spf evaluates SPF
// records, github.com/emersion/go-msgauth verifies DKIM signatures and
// reads DMARC records. DMARC alignment, the organisational domain (from
// the public suffix list, golang.org/x/net/publicsuffix), the policy
// discovery of RFC 7489 §6.6.3 and pct sampling are here. Every DNS query
// goes to the Resolver the Checker is given.
package msgauth

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/postkit/postkit/mailheader"
)

// Resolver is the DNS client the checks use; *net.Resolver is one (see
// mx.Resolver.NetResolver). Its errors should be *net.DNSError, which the
// libraries read to tell "no such record" (IsNotFound) from a temporary
// failure (Temporary).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// DefaultTimeout bounds all the DNS work for one message. The client waits
// for it at the end of the data, so it is kept short: with the resolver
// unreachable every message would otherwise wait the whole time. What is
// unanswered by then is temperror, which never refuses mail.
const DefaultTimeout = 20 * time.Second

// maxSignatures is how many DKIM signatures are verified at most; the rest
// are ignored (RFC 6376 §6.1 lets a verifier limit them).
const maxSignatures = 5

// Checker runs the checks for received messages.
type Checker struct {
	Resolver Resolver
	// Timeout bounds the checks of one message; zero means
	// DefaultTimeout. Lookups still unanswered then are temperror.
	Timeout time.Duration

	// sample reports whether a policy published with pct percent applies
	// to this message (RFC 7489 §6.6.4); nil means at random.
	sample func(pct int) bool
}

// Envelope is what the SMTP session tells about a message.
type Envelope struct {
	IP       netip.Addr // the client's address
	Helo     string     // the HELO or EHLO argument
	MailFrom string     // the reverse path, "" for the null sender
}

// Result is the outcome of the checks of one message.
type Result struct {
	SPF  SPFResult
	DKIM []DKIMResult // one per signature verified; none when unsigned
	// DMARC has one result per domain in the From field (normally one);
	// none when the message has no From domain.
	DMARC []DMARCResult
}

// SPFResult is the SPF result for the MAIL FROM identity, or the HELO
// identity for the null sender (RFC 7208 §2.4).
type SPFResult struct {
	Value    authres.ResultValue // pass, fail, softfail, neutral, none, temperror, permerror
	Domain   string              // the domain checked
	MailFrom string              // the reverse path checked; empty for the null sender
	Helo     string              // the HELO name, when it was checked
	Reason   string              // why, for temperror and permerror
}

// DKIMResult is the result of one DKIM signature.
type DKIMResult struct {
	Value      authres.ResultValue // pass, fail, temperror, permerror
	Domain     string              // the signing domain, d=
	Identifier string              // the agent or user identifier, i=
	Reason     string              // why, when it did not pass
}

// DMARCResult is the DMARC result for one author domain.
type DMARCResult struct {
	Value  authres.ResultValue // pass, fail, none, temperror, permerror
	Domain string              // the From domain
	// Policy is what the domain asks for this message: "" when nothing
	// applies (pass, no record, errors), else none, quarantine or reject
	// after the subdomain policy and pct sampling. Published is the
	// policy before sampling.
	Policy, Published dmarc.Policy
	Reason            string
}

// Check checks a message: env from the session, header its parsed header
// section, and msg the whole message as received (for DKIM, which reads
// the header again).
func (c *Checker) Check(ctx context.Context, env Envelope, header *mailheader.Header, msg io.Reader) *Result {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := &Result{}
	r := fqdnResolver{c.Resolver}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.SPF = checkSPF(ctx, r, env)
	}()
	res.DKIM = checkDKIM(ctx, r, msg)
	wg.Wait()
	for _, d := range FromDomains(header) {
		res.DMARC = append(res.DMARC, c.checkDMARC(ctx, r, d, res.SPF, res.DKIM))
	}
	return res
}

// Policy returns the strictest DMARC policy that applies to the message:
// reject, quarantine, or "" (none, or nothing applies).
func (r *Result) Policy() dmarc.Policy {
	var p dmarc.Policy
	for _, d := range r.DMARC {
		switch {
		case d.Policy == dmarc.PolicyReject:
			return d.Policy
		case d.Policy == dmarc.PolicyQuarantine:
			p = d.Policy
		}
	}
	return p
}

// DMARCPass reports whether the message passed DMARC for every From domain
// (and has one).
func (r *Result) DMARCPass() bool {
	for _, d := range r.DMARC {
		if d.Value != authres.ResultPass {
			return false
		}
	}
	return len(r.DMARC) > 0
}

// fqdnResolver asks for every name with a final dot, so that the
// resolver never tries the search domains of resolv.conf on a name that
// does not exist.
type fqdnResolver struct{ r Resolver }

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func (f fqdnResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return f.r.LookupTXT(ctx, fqdn(name))
}

func (f fqdnResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return f.r.LookupMX(ctx, fqdn(name))
}

func (f fqdnResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if _, err := netip.ParseAddr(host); err == nil {
		return f.r.LookupIPAddr(ctx, host)
	}
	return f.r.LookupIPAddr(ctx, fqdn(host))
}

func (f fqdnResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return f.r.LookupAddr(ctx, addr)
}

// sampled reports whether a policy published with pct percent applies.
func (c *Checker) sampled(pct int) bool {
	if c.sample != nil {
		return c.sample(pct)
	}
	return rand.IntN(100) < pct
}
