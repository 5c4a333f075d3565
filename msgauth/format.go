package msgauth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// maxValue caps each value taken from the message or the DNS in the
// field, so that a hostile signature or record cannot make it huge.
const maxValue = 200

// Field returns the Authentication-Results field (RFC 8601 §2.2) for r,
// folded one result a line and ending in CRLF, as in
//
//	Authentication-Results: mx.example.org;
//		spf=pass smtp.mailfrom=alice@example.com;
//		dkim=pass header.d=example.com header.i=@example.com;
//		dmarc=pass (p=reject) header.from=example.com
//
// Every method appears: "dkim=none" for an unsigned message and
// "dmarc=none" when there is no From domain. The DMARC comment gives the
// published policy and, when sampling lowered it, what was applied.
func (r *Result) Field(authservID string) string {
	var results []string
	add := func(res authres.Result, comment string) {
		s := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{res}), "; "))
		if comment != "" {
			// The comment goes right after method=value (RFC 8601
			// §2.2 allows CFWS there).
			method, rest, _ := strings.Cut(s, " ")
			s = strings.TrimSpace(method + " (" + comment + ") " + rest)
		}
		results = append(results, s)
	}
	spfRes := &authres.SPFResult{Value: r.SPF.Value, Reason: clean(r.SPF.Reason)}
	// An address literal would go out unquoted, which RFC 8601's pvalue
	// does not allow: it is left out, as the property is optional.
	if r.SPF.MailFrom != "" {
		spfRes.From = withoutLiteral(clean(r.SPF.MailFrom))
	} else {
		spfRes.Helo = withoutLiteral(clean(r.SPF.Helo))
	}
	add(spfRes, "")
	if len(r.DKIM) == 0 {
		add(&authres.DKIMResult{Value: authres.ResultNone}, "")
	}
	for _, d := range r.DKIM {
		add(&authres.DKIMResult{Value: d.Value, Reason: clean(d.Reason), Domain: clean(d.Domain), Identifier: clean(d.Identifier)}, "")
	}
	if len(r.DMARC) == 0 {
		add(&authres.DMARCResult{Value: authres.ResultNone, Reason: "no From domain"}, "")
	}
	for _, d := range r.DMARC {
		comment := ""
		if d.Published != "" {
			comment = "p=" + string(d.Published)
			if d.Policy != "" && d.Policy != d.Published {
				comment += " applied=" + string(d.Policy)
			}
		}
		add(&authres.DMARCResult{Value: d.Value, Reason: clean(d.Reason), From: clean(d.Domain)}, comment)
	}
	return FieldName + ": " + authservID + ";\r\n\t" + strings.Join(results, ";\r\n\t") + "\r\n"
}

// clean makes a value safe inside the field: printable ASCII or UTF-8
// letters only, no quotes, backslashes, parentheses or semicolons (authres
// quotes values but does not escape backslashes), at most maxValue bytes.
func clean(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case b.Len() >= maxValue:
			return b.String()
		case c == '"' || c == '\\' || c == '(' || c == ')':
			b.WriteByte('\'')
		case c == ';':
			// Inside quotes it would be fine, but simple parsers
			// (go-msgauth's among them) split results at every ';'.
			b.WriteByte(',')
		case c < ' ' || c == 0x7f || c == 0xfffd:
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func withoutLiteral(s string) string {
	if strings.ContainsAny(s, "[]") {
		return ""
	}
	return s
}
