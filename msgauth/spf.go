package msgauth

import (
	"context"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"golang.org/x/net/idna"
)

// checkSPF runs check_host (RFC 7208 §4) for the MAIL FROM domain, or for
// the HELO name when the reverse path is null (§2.4: the sender is then
// postmaster@HELO).
func checkSPF(ctx context.Context, r Resolver, env Envelope) SPFResult {
	res := SPFResult{MailFrom: env.MailFrom}
	local, domain := "postmaster", env.Helo
	if env.MailFrom != "" {
		i := strings.LastIndexByte(env.MailFrom, '@')
		local, domain = env.MailFrom[:max(i, 0)], env.MailFrom[i+1:]
	} else {
		res.Helo = env.Helo
	}
	ascii, ok := spfDomain(domain)
	res.Domain = strings.ToLower(domain)
	switch {
	case !env.IP.IsValid():
		res.Value, res.Reason = authres.ResultNone, "no client IP address"
		return res
	case !ok:
		// §4.3: a malformed domain, or one that is not multi-label (an
		// address literal as HELO name, say), gives none.
		res.Value = authres.ResultNone
		return res
	}
	res.Domain = ascii
	v, err := spf.CheckHostWithSender(env.IP.Unmap().AsSlice(), ascii, local+"@"+ascii,
		spf.WithResolver(r), spf.WithContext(ctx))
	res.Value = spfValues[v]
	if res.Value == "" {
		res.Value = authres.ResultPermError
	}
	if err != nil && (v == spf.TempError || v == spf.PermError) {
		res.Reason = err.Error()
	}
	return res
}

// spfValues maps the library's results to Authentication-Results values
// (RFC 8601 §2.7.2).
var spfValues = map[spf.Result]authres.ResultValue{
	spf.None:      authres.ResultNone,
	spf.Neutral:   authres.ResultNeutral,
	spf.Pass:      authres.ResultPass,
	spf.Fail:      authres.ResultFail,
	spf.SoftFail:  authres.ResultSoftFail,
	spf.TempError: authres.ResultTempError,
	spf.PermError: authres.ResultPermError,
}

// spfDomain returns domain in A-labels, lower case and without a final
// dot, and whether it can have an SPF record: a domain name of two labels
// or more.
func spfDomain(domain string) (string, bool) {
	d, err := idna.Lookup.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || !strings.Contains(d, ".") {
		return "", false
	}
	return strings.ToLower(d), true
}
