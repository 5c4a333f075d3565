package smtpd

import (
	"fmt"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/users"
)

// RFC 5321 §4.1.1.3 and §4.5.1: "RCPT TO:<Postmaster>", without a domain
// and with the local part in any case, must be accepted and means the
// postmaster of this host. go-smtp's path parser wants a domain and would
// answer 501, so conn hands go-smtp the line address.QualifyPostmasterRCPT
// makes with postmasterStandInDomain; the session ignores the path go-smtp
// parsed (it re-reads the raw line, see session.path) and delivers to
// postmaster@ the domain postmasterDomain picks.
const postmasterStandInDomain = "postmaster.invalid"

// postmasterDomain returns the domain whose postmaster "<Postmaster>" means:
// the server's host name if it is a local domain, else the alphabetically
// first local domain (as r sees them: the domains of etc/domains, etc/users
// and etc/aliases), else "" when there is no local domain at all.
func postmasterDomain(root control.Root, hostname string, r *resolve.Resolver) (string, error) {
	if d, err := address.ParseDomain(hostname); err == nil && r.IsLocalDomain(d) {
		return d, nil
	}
	candidates, err := root.Lines("domains")
	if err != nil {
		return "", fmt.Errorf("smtpd: %w", err)
	}
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return "", fmt.Errorf("smtpd: %w", err)
	}
	table, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return "", fmt.Errorf("smtpd: %w", err)
	}
	candidates = append(candidates, db.Domains()...)
	candidates = append(candidates, table.Domains()...)
	first := ""
	for _, c := range candidates {
		d, err := address.ParseDomain(c)
		if err != nil || !r.IsLocalDomain(d) {
			continue
		}
		if first == "" || d < first {
			first = d
		}
	}
	return first, nil
}
