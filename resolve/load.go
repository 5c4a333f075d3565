package resolve

import (
	"fmt"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/users"
)

// Load returns a Resolver for root's etc/users, etc/aliases and etc/domains
// (missing files are empty). The files are read once: load again to see
// changes.
//
// A domain is local when a user or an alias is in it, or when etc/domains
// lists it (one domain per line, written by mkuser domain add): a domain set
// up before its first user gets 550 unknown user, not a relay attempt.
//
// Every user and alias key is normalised with package address, so a file
// that says "Alice@EXAMPLE.org" or a UTF-8 domain matches the keys Resolve
// asks for. Users whose name is not a mail address (Dovecot allows plain
// login names) are left out: they can log in but receive no mail. An alias
// key or target that is not an address, and two alias keys that normalise to
// the same, are errors.
func Load(root control.Root) (*Resolver, error) {
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	table, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	dir, err := newFileDirectory(db.All(), table.All())
	if err != nil {
		return nil, err
	}
	domains, err := root.Lines("domains")
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	for _, line := range domains {
		d, err := address.ParseDomain(line)
		if err != nil || address.IsLiteral(d) {
			return nil, fmt.Errorf("resolve: %s: %q is not a domain", root.Etc("domains"), line)
		}
		dir.domains[d] = true
	}
	return New(root, dir), nil
}

// fileDirectory is the Directory of etc/users and etc/aliases, keyed by
// normalised keys.
type fileDirectory struct {
	users   map[string]bool
	aliases map[string][]string // key -> targets in address.Address.String form
	domains map[string]bool
}

func newFileDirectory(us []users.Entry, as []aliases.Alias) (*fileDirectory, error) {
	d := &fileDirectory{users: map[string]bool{}, aliases: map[string][]string{}, domains: map[string]bool{}}
	for _, u := range us {
		a, err := address.Parse(u.Address)
		if err != nil || address.IsLiteral(a.Domain) {
			continue
		}
		d.users[a.Key()] = true
		d.domains[a.Domain] = true
	}
	for _, al := range as {
		key, domain, err := aliasKey(al.Key)
		if err != nil {
			return nil, fmt.Errorf("resolve: etc/aliases: alias %q: %w", al.Key, err)
		}
		if _, dup := d.aliases[key]; dup {
			return nil, fmt.Errorf("resolve: etc/aliases: alias %q: %s is already an alias; merge the two", al.Key, key)
		}
		targets := make([]string, 0, len(al.Targets))
		for _, t := range al.Targets {
			a, err := address.Parse(t)
			if err != nil {
				return nil, fmt.Errorf("resolve: etc/aliases: alias %q: target %q: %w", al.Key, t, err)
			}
			targets = append(targets, a.String())
		}
		d.aliases[key] = targets
		d.domains[domain] = true
	}
	return d, nil
}

// aliasKey normalises an alias key: an address, or "@domain" for a catch-all.
func aliasKey(k string) (key, domain string, err error) {
	if strings.HasPrefix(k, "@") {
		domain, err = address.ParseDomain(k[1:])
		if err == nil && address.IsLiteral(domain) {
			err = fmt.Errorf("an address literal cannot be a local domain")
		}
		return "@" + domain, domain, err
	}
	a, err := address.Parse(k)
	if err == nil && address.IsLiteral(a.Domain) {
		err = fmt.Errorf("an address literal cannot be a local domain")
	}
	return a.Key(), a.Domain, err
}

func (d *fileDirectory) UserExists(key string) bool { return d.users[key] }

func (d *fileDirectory) Alias(key string) ([]string, bool) {
	t, ok := d.aliases[key]
	return t, ok
}

func (d *fileDirectory) LocalDomain(domain string) bool { return d.domains[domain] }
