package msgauth

import (
	"context"
	"errors"
	"net/mail"
	"regexp"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/postkit/postkit/mailheader"
)

// atDomain finds what follows each '@' in a From field that does not
// parse: every such name is taken as an author domain.
var atDomain = regexp.MustCompile(`@\[?([^\s<>()\[\]@,;:"\\]+)`)

// FromDomains returns the author domains (RFC 7489 §3: the domains of the
// RFC5322.From addresses) of a header section, lower case in A-labels,
// each once. A message may have several From fields or addresses; each
// domain is checked and the strictest outcome counts, so that adding an
// address of one's own does not escape another domain's policy. A From
// field that does not parse is searched for "@domain" instead, for the
// same reason.
func FromDomains(h *mailheader.Header) []string {
	var domains []string
	add := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if a, err := idna.Lookup.ToASCII(d); err == nil {
			d = a
		}
		if d != "" && !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	for _, v := range h.Values("From") {
		addrs, err := mail.ParseAddressList(v)
		if err != nil {
			for _, m := range atDomain.FindAllStringSubmatch(v, -1) {
				add(m[1])
			}
			continue
		}
		for _, a := range addrs {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				add(a.Address[i+1:])
			}
		}
	}
	return domains
}

// OrganizationalDomain returns the organisational domain of domain (RFC
// 7489 §3.2): the public suffix plus one label, or domain itself when it
// is a public suffix.
func OrganizationalDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// aligned reports whether an authenticated domain is aligned with the From
// domain (RFC 7489 §3.1): the same domain in strict mode, the same
// organisational domain in relaxed mode.
func aligned(authenticated, from string, mode dmarc.AlignmentMode) bool {
	if authenticated == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return sameDomain(authenticated, from)
	}
	return OrganizationalDomain(authenticated) == OrganizationalDomain(from)
}

// checkDMARC evaluates the DMARC policy of the From domain from against
// the SPF and DKIM results (RFC 7489 §6.6).
func (c *Checker) checkDMARC(ctx context.Context, r Resolver, from string, spfRes SPFResult, dkims []DKIMResult) DMARCResult {
	res := DMARCResult{Domain: from}
	rec, atOrg, err := lookupDMARC(ctx, r, from)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		res.Value = authres.ResultNone
		return res
	case dmarc.IsTempFail(err):
		res.Value, res.Reason = authres.ResultTempError, err.Error()
		return res
	case err != nil:
		// §6.6.3: a record without a valid p= means no DMARC
		// processing (the rua exception is for reports, which we do
		// not send).
		res.Value, res.Reason = authres.ResultPermError, err.Error()
		return res
	}
	res.Published = rec.Policy
	if atOrg && rec.SubdomainPolicy != "" {
		// §6.3 sp: the policy for subdomains of the domain where the
		// record was found.
		res.Published = rec.SubdomainPolicy
	}
	// §3.1.2: SPF is aligned when it passed for an aligned MAIL FROM (or
	// HELO) domain; §3.1.1: DKIM when some signature of an aligned d=
	// verified.
	temp := false
	if aligned(spfRes.Domain, from, rec.SPFAlignment) {
		switch spfRes.Value {
		case authres.ResultPass:
			res.Value = authres.ResultPass
			return res
		case authres.ResultTempError:
			temp = true
		}
	}
	for _, d := range dkims {
		if !aligned(d.Domain, from, rec.DKIMAlignment) {
			continue
		}
		switch d.Value {
		case authres.ResultPass:
			res.Value = authres.ResultPass
			return res
		case authres.ResultTempError:
			temp = true
		}
	}
	if temp {
		// An aligned identifier could not be checked: it might have
		// passed, so no policy is applied (§6.6.2 leaves this to the
		// receiver).
		res.Value, res.Reason = authres.ResultTempError, "aligned SPF or DKIM check failed temporarily"
		return res
	}
	res.Value, res.Policy = authres.ResultFail, res.Published
	if rec.Percent != nil && *rec.Percent < 100 && res.Policy != dmarc.PolicyNone && !c.sampled(*rec.Percent) {
		// §6.6.4: a message not sampled gets the next policy down.
		if res.Policy == dmarc.PolicyReject {
			res.Policy = dmarc.PolicyQuarantine
		} else {
			res.Policy = dmarc.PolicyNone
		}
	}
	return res
}

// lookupDMARC finds the DMARC record for domain (RFC 7489 §6.6.3): at
// _dmarc.domain, else at _dmarc. of its organisational domain, in which
// case atOrg is true.
func lookupDMARC(ctx context.Context, r Resolver, domain string) (rec *dmarc.Record, atOrg bool, err error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }}
	rec, err = dmarc.LookupWithOptions(domain, opts)
	if !errors.Is(err, dmarc.ErrNoPolicy) {
		return rec, false, err
	}
	org := OrganizationalDomain(domain)
	if org == domain {
		return nil, false, err
	}
	rec, err = dmarc.LookupWithOptions(org, opts)
	return rec, true, err
}
