package accounts

import (
	"errors"
	"fmt"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// ParseAliasKey parses the key of a new alias: a new address (see
// ParseNewAddress), or "@domain" for a catch-all. It returns the key as it
// is written to etc/aliases.
func ParseAliasKey(s string) (string, error) {
	if d, ok := strings.CutPrefix(s, "@"); ok {
		domain, err := address.ParseDomain(d)
		if err == nil {
			err = address.ValidDomain(domain)
		}
		if err != nil {
			return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%q is not a catch-all (%v); give @domain", s, err)}
		}
		return "@" + domain, nil
	}
	a, err := ParseNewAddress(s)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// AddAlias makes key (an address, or "@domain" for a catch-all) deliver to
// targets, adding them to the alias if it exists. Targets may be remote.
// Refused: a key that is a user (73); a target in a local domain (one with
// users or aliases) that is neither a user nor an alias nor covered by a
// catch-all, since mail to it would bounce (67); a target that leads back to
// the alias (65).
func AddAlias(root control.Root, key string, targets []string) (string, error) {
	k, err := ParseAliasKey(key)
	if err != nil {
		return "", err
	}
	if len(targets) == 0 {
		return "", errorf(sysexits.Usage, "alias %s needs at least one target", k)
	}
	var ts []string
	for _, t := range targets {
		a, err := address.Parse(t)
		if err != nil {
			return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("target %q is not a valid address (%v); give local@domain", t, err)}
		}
		ts = append(ts, a.String())
	}
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return "", classify(err)
	}
	if e, ok := findUser(db, k); ok {
		return "", errorf(sysexits.CantCreat, "%s is a user; an alias of the same name would never get mail", e.Address)
	}
	err = aliases.Update(root.Etc("aliases"), func(tab *aliases.Table) error {
		local := map[string]bool{domainOf(k): true}
		for _, d := range append(db.Domains(), tab.Domains()...) {
			local[d] = true
		}
		for _, t := range ts {
			if keyOf(t) == keyOf(k) {
				return errorf(sysexits.DataErr, "alias %s cannot point to itself", k)
			}
			if local[domainOf(t)] && !delivers(db, tab, k, t) {
				return errorf(sysexits.NoUser, "target %s is not a user or alias of local domain %s; add it first", t, domainOf(t))
			}
		}
		if err := tab.Add(k, ts...); err != nil {
			return &Error{Code: sysexits.DataErr, Err: err, Msg: err.Error()}
		}
		if loop := loopFrom(tab, k); loop != "" {
			return errorf(sysexits.DataErr, "alias %s would lead back to itself (%s); remove a target of the loop first", k, loop)
		}
		return nil
	})
	if err != nil {
		return "", classify(err)
	}
	return k, nil
}

// delivers reports whether the local target t of the new alias key would
// reach a mailbox the way package resolve looks it up: a user or alias, the
// same for the part before '+' (a subaddress), or the domain's catch-all
// unless that is the alias being made.
func delivers(db *users.DB, tab *aliases.Table, key, t string) bool {
	a, err := address.Parse(t)
	if err != nil {
		return false
	}
	base, _ := address.SplitDetail(a.Local)
	for _, local := range []string{a.Local, base} {
		b := address.Address{Local: local, Domain: a.Domain}
		if _, ok := findUser(db, b.String()); ok {
			return true
		}
		if _, ok := lookupAlias(tab, b.Key()); ok {
			return true
		}
	}
	catchAll := "@" + a.Domain
	_, ok := lookupAlias(tab, catchAll)
	return ok && catchAll != key
}

// lookupAlias finds the alias with this normalised key, whether the file
// writes it normalised or not.
func lookupAlias(tab *aliases.Table, key string) (aliases.Alias, bool) {
	if ts, ok := tab.Lookup(key); ok {
		return aliases.Alias{Key: key, Targets: ts}, true
	}
	for _, al := range tab.All() {
		if aliasKeyOf(al.Key) == key {
			return al, true
		}
	}
	return aliases.Alias{}, false
}

// aliasKeyOf normalises an alias key as written in the file.
func aliasKeyOf(k string) string {
	if strings.HasPrefix(k, "@") {
		return "@" + domainOf(k)
	}
	return keyOf(k)
}

// loopFrom follows the aliases from key (exact keys, as package resolve does
// first) and returns the path back to key, or "" if there is none.
func loopFrom(tab *aliases.Table, key string) string {
	start := aliasKeyOf(key)
	seen := map[string]bool{}
	var walk func(k string, path []string) string
	walk = func(k string, path []string) string {
		al, ok := lookupAlias(tab, k)
		if !ok {
			return ""
		}
		for _, t := range al.Targets {
			tk := keyOf(t)
			p := append(append([]string(nil), path...), t)
			if tk == start {
				return strings.Join(p, " -> ")
			}
			if !seen[tk] {
				seen[tk] = true
				if loop := walk(tk, p); loop != "" {
					return loop
				}
			}
		}
		return ""
	}
	return walk(start, []string{key})
}

// DeleteAlias removes targets from the alias key, or the whole alias when
// no targets are given or none is left.
func DeleteAlias(root control.Root, key string, targets []string) error {
	err := aliases.Update(root.Etc("aliases"), func(tab *aliases.Table) error {
		al, ok := lookupAlias(tab, aliasKeyOf(key))
		if !ok {
			if _, ok = tab.Lookup(key); !ok {
				return errorf(sysexits.NoUser, "no alias %s; list them with mkuser alias list", key)
			}
			al.Key = key
		}
		var ts []string
		for _, t := range targets {
			ts = append(ts, t)
			if a, err := address.Parse(t); err == nil {
				ts[len(ts)-1] = a.String()
			}
		}
		err := tab.Remove(al.Key, ts...)
		if errors.Is(err, aliases.ErrNotFound) {
			return &Error{Code: sysexits.NoUser, Err: err, Msg: fmt.Sprintf("alias %s has no such target; see mkuser alias list", al.Key)}
		}
		return err
	})
	return classify(err)
}

// ListAliases returns all aliases, or those of domain, sorted by key.
func ListAliases(root control.Root, domain string) ([]aliases.Alias, error) {
	want, err := parseDomainFilter(domain)
	if err != nil {
		return nil, err
	}
	tab, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return nil, classify(err)
	}
	var list []aliases.Alias
	for _, al := range tab.All() {
		if want == "" || domainOf(al.Key) == want {
			list = append(list, al)
		}
	}
	return list, nil
}
