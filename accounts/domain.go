package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// A domain is local when a user or an alias is in it, or when etc/domains
// lists it (one domain per line, '#' comments; package resolve reads it):
// mkuser domain add lists a domain so that it is local, and can be set up
// (DKIM keys, DNS records), before its first user exists.

// ParseDomain normalises the DOMAIN argument of the domain commands.
func ParseDomain(s string) (string, error) {
	d, err := address.ParseDomain(s)
	if err == nil {
		err = address.ValidDomain(d)
	}
	if err == nil {
		err = control.SafeElement(d)
	}
	if err != nil {
		return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%q is not a domain (%v)", s, err)}
	}
	return d, nil
}

// Domain is one local domain.
type Domain struct {
	Name           string
	Listed         bool // in etc/domains
	Users, Aliases int
	DKIM           []string // the algorithms of its DKIM keys
}

// ListDomains returns the local domains, sorted.
func ListDomains(root control.Root) ([]Domain, error) {
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return nil, classify(err)
	}
	tab, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return nil, classify(err)
	}
	listed, err := root.Lines("domains")
	if err != nil {
		return nil, classify(err)
	}
	byName := map[string]*Domain{}
	get := func(name string) *Domain {
		if byName[name] == nil {
			byName[name] = &Domain{Name: name}
		}
		return byName[name]
	}
	for _, l := range listed {
		if d, err := address.ParseDomain(l); err == nil {
			get(d).Listed = true
		}
	}
	for _, e := range db.All() {
		if d := domainOf(e.Address); d != "" {
			get(d).Users++
		}
	}
	for _, a := range tab.All() {
		if d := domainOf(a.Key); d != "" {
			get(d).Aliases++
		}
	}
	var out []Domain
	for _, d := range byName {
		keys, err := dkimsign.Load(root, d.Name)
		if err != nil {
			return nil, classify(err)
		}
		for _, k := range keys {
			d.DKIM = append(d.DKIM, k.Algorithm)
		}
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddDomain lists domain in etc/domains. Refused: a malformed domain (65),
// one listed already (73).
func AddDomain(root control.Root, domain string) (string, error) {
	d, err := ParseDomain(domain)
	if err != nil {
		return "", err
	}
	err = updateDomains(root, func(lines []string) ([]string, error) {
		if slices.ContainsFunc(lines, func(l string) bool { return sameDomain(l, d) }) {
			return nil, errorf(sysexits.CantCreat, "%s is listed in %s already", d, root.Etc("domains"))
		}
		return append(lines, d), nil
	})
	return d, err
}

// DeleteDomain removes domain from etc/domains. Refused: a domain that
// still has users or aliases, which keep it local (65); a domain that is not
// local (67). Its DKIM keys stay.
func DeleteDomain(root control.Root, domain string) (string, error) {
	d, err := ParseDomain(domain)
	if err != nil {
		return "", err
	}
	list, err := ListDomains(root)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(list, func(x Domain) bool { return x.Name == d })
	switch {
	case i < 0:
		return "", errorf(sysexits.NoUser, "%s is not a local domain; see mkuser domain list", d)
	case list[i].Users > 0 || list[i].Aliases > 0:
		return "", errorf(sysexits.DataErr, "%s still has %d users and %d aliases, which keep it local; delete them first (mkuser list %s, mkuser alias list %s)",
			d, list[i].Users, list[i].Aliases, d, d)
	}
	err = updateDomains(root, func(lines []string) ([]string, error) {
		return slices.DeleteFunc(lines, func(l string) bool { return sameDomain(l, d) }), nil
	})
	return d, err
}

// sameDomain reports whether a line of etc/domains names d.
func sameDomain(line, d string) bool {
	l, err := address.ParseDomain(strings.TrimSpace(line))
	return err == nil && l == d
}

// updateDomains changes etc/domains under its lock, keeping comments and
// blank lines.
func updateDomains(root control.Root, change func(lines []string) ([]string, error)) error {
	err := safefile.Update(root.Etc("domains"), 0o640, users.LockTimeout, func(old []byte) ([]byte, error) {
		var lines []string
		if len(old) > 0 {
			lines = strings.Split(strings.TrimSuffix(string(old), "\n"), "\n")
		}
		lines, err := change(lines)
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return []byte{}, nil
		}
		return []byte(strings.Join(lines, "\n") + "\n"), nil
	})
	return classify(err)
}

// GenerateDKIM makes the DKIM keys domain lacks, or new ones for all with
// replace (see package dkimsign). The domain must be local (67).
func GenerateDKIM(root control.Root, domain string, replace bool) ([]*dkimsign.Key, []string, error) {
	d, err := ParseDomain(domain)
	if err != nil {
		return nil, nil, err
	}
	if err := mustBeLocal(root, d); err != nil {
		return nil, nil, err
	}
	keys, created, err := dkimsign.Generate(root, d, replace)
	if err != nil {
		return nil, nil, classify(err)
	}
	return keys, created, nil
}

// mustBeLocal refuses a domain that is not local (67).
func mustBeLocal(root control.Root, d string) error {
	list, err := ListDomains(root)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list, func(x Domain) bool { return x.Name == d }) {
		return errorf(sysexits.NoUser, "%s is not a local domain; add it first (mkuser domain add %s)", d, d)
	}
	return nil
}

// LocalDomain checks that domain is local and returns it normalised.
func LocalDomain(root control.Root, domain string) (string, error) {
	d, err := ParseDomain(domain)
	if err != nil {
		return "", err
	}
	return d, mustBeLocal(root, d)
}

// DKIMKeyDirExists reports whether domain has a DKIM key directory, for
// the note mkuser domain del prints.
func DKIMKeyDirExists(root control.Root, domain string) (string, bool) {
	dir, _, err := dkimsign.Dir(root, domain)
	if err != nil {
		return "", false
	}
	_, err = os.Stat(dir)
	return dir, !errors.Is(err, fs.ErrNotExist) && err == nil
}
