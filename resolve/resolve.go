// Package resolve decides where mail for an address goes: into a local
// user's Maildir, or on to a remote address.
//
// For one address, on its normalised key (address.Address.Key), the first
// rule that matches wins:
//
//  1. a user with exactly this address;
//  2. an alias with exactly this address;
//  3. for a subaddress (RFC 5233) "user+detail", the user "user" (the target
//     carries the detail), then the alias "user";
//  4. the catch-all alias "@domain";
//  5. if the domain is local (some user or alias is in it, or etc/domains
//     lists it): ErrUnknownUser;
//  6. otherwise the address is remote.
//
// Alias targets go through the same rules, so aliases may point to aliases,
// users and remote addresses, to at most MaxAliasDepth levels; a cycle or a
// deeper chain is ErrAliasLoop. A Resolve answer lists each Maildir and each
// remote address once.
//
// Nothing in a local part is read as routing: '%', '!', a quoted '@' and
// source routes (dropped by address.ParsePath) never make an address of a
// local domain remote, and an address literal ("[192.0.2.1]") is never local.
// A local target's Maildir is control.Root.UserMaildir of the user's
// canonical address, which cannot name a path outside ROOT/mail/DOMAIN/.
package resolve

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// Kind says whether a Target is delivered here or sent on.
type Kind int

// The zero Kind is invalid, so a Target that was never filled in is neither.
const (
	Local  Kind = iota + 1 // a user's Maildir on this host
	Remote                 // an address of another host: relay it
)

func (k Kind) String() string {
	switch k {
	case Local:
		return "local"
	case Remote:
		return "remote"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Target is one place mail for an address goes.
type Target struct {
	Kind Kind
	// Address is the remote address, or the local user's canonical address
	// (the key it is stored under: local part case-folded).
	Address address.Address
	// Detail is the subaddress detail when the address was user+detail and
	// user is a local user. It comes from the sender unchecked (it may hold
	// '/', "..", quotes): never use it as a file or folder name as is.
	Detail string
	// Maildir is the local user's Maildir (control.Root.UserMaildir); empty
	// for remote targets.
	Maildir string
}

// MaxAliasDepth is how many aliases deep a chain may go: an address that is
// an alias of an alias ... of a user, with at most this many aliases on the
// way.
const MaxAliasDepth = 10

// maxExpansions bounds the alias lookups of one Resolve, so that a table in
// which aliases fan out widely at every level cannot make it run for long.
const maxExpansions = 1000

var (
	// ErrUnknownUser is wrapped by Resolve's error for an address of a local
	// domain that is no user, alias or catch-all (SMTP 550 5.1.1), including
	// when an alias leads to such an address.
	ErrUnknownUser = errors.New("resolve: unknown user")
	// ErrAliasLoop is wrapped by Resolve's error when aliases lead back to
	// themselves or more than MaxAliasDepth deep.
	ErrAliasLoop = errors.New("resolve: alias loop")
)

// Directory answers the questions Resolve asks. Keys are address.Address.Key
// values ("alice@example.org", catch-alls "@example.org"), domains are
// normalised (address.ParseDomain); a Directory must answer on them exactly,
// without normalising again.
type Directory interface {
	UserExists(key string) bool
	// Alias returns the targets of the alias key, as addresses in the
	// syntax of address.Parse, and whether key is an alias.
	Alias(key string) ([]string, bool)
	// LocalDomain reports whether mail for domain is ours.
	LocalDomain(domain string) bool
}

// Resolver resolves addresses against one Directory. It is safe for
// concurrent use when its Directory is.
type Resolver struct {
	root control.Root
	dir  Directory
}

// New returns a Resolver that puts Maildirs under root and asks dir.
func New(root control.Root, dir Directory) *Resolver {
	return &Resolver{root: root, dir: dir}
}

// IsLocalDomain reports whether mail for domain (in any case, UTF-8 or
// A-labels) is delivered here. Address literals never are.
func (r *Resolver) IsLocalDomain(domain string) bool {
	d, err := address.ParseDomain(domain)
	if err != nil || address.IsLiteral(d) {
		return false
	}
	return r.dir.LocalDomain(d)
}

// resolution is the state of one Resolve call.
type resolution struct {
	targets    []Target
	seen       map[string]bool // "local "+Maildir or "remote "+address
	expansions int
}

// Resolve returns where mail for a goes: one or more targets, or an error
// wrapping ErrUnknownUser or ErrAliasLoop, or another error for a broken
// directory (an alias target that is no address, a user name that cannot
// be a directory), which is the operator's to fix and the sender's to retry.
func (r *Resolver) Resolve(a address.Address) ([]Target, error) {
	if a.IsZero() {
		return nil, errors.New("resolve: the null address has no mailbox")
	}
	// Addresses must come from address.Parse: re-parsing catches hand-made
	// values whose domain is not normalised or whose parts hold anything
	// Parse refuses.
	if b, err := address.Parse(a.String()); err != nil || b != a {
		return nil, fmt.Errorf("resolve: %q is not a parsed address", a.String())
	}
	res := &resolution{seen: map[string]bool{}}
	if err := r.resolve(res, a, nil); err != nil {
		return nil, err
	}
	return res.targets, nil
}

// resolve applies the rules to a, reached through the aliases in chain.
func (r *Resolver) resolve(res *resolution, a address.Address, chain []string) error {
	if address.IsLiteral(a.Domain) {
		r.addRemote(res, a)
		return nil
	}
	key := a.Key()
	local := key[:strings.LastIndexByte(key, '@')]
	// 1, 2: the exact address.
	if r.dir.UserExists(key) {
		return r.addLocal(res, local, a.Domain, "")
	}
	if targets, ok := r.dir.Alias(key); ok {
		return r.expand(res, key, targets, chain)
	}
	// 3: the user or alias of a subaddress. The detail keeps its case;
	// folding never adds or moves a '+', so both splits agree.
	if base, detail := address.SplitDetail(a.Local); base != a.Local {
		base = address.FoldLocal(base)
		baseKey := base + "@" + a.Domain
		if r.dir.UserExists(baseKey) {
			return r.addLocal(res, base, a.Domain, detail)
		}
		if targets, ok := r.dir.Alias(baseKey); ok {
			return r.expand(res, baseKey, targets, chain)
		}
	}
	// 4: the catch-all. Rules 1 and 3 have returned when the address or its
	// base is a user, so a catch-all never takes a real user's mail.
	catchAll := "@" + a.Domain
	if targets, ok := r.dir.Alias(catchAll); ok {
		return r.expand(res, catchAll, targets, chain)
	}
	// 5, 6.
	if r.dir.LocalDomain(a.Domain) {
		return fmt.Errorf("%w: %s%s", ErrUnknownUser, a, via(chain))
	}
	r.addRemote(res, a)
	return nil
}

// expand resolves the targets of the alias key.
func (r *Resolver) expand(res *resolution, key string, targets []string, chain []string) error {
	for _, c := range chain {
		if c == key {
			return fmt.Errorf("%w: %s leads back to itself%s", ErrAliasLoop, key, via(chain))
		}
	}
	if len(chain) >= MaxAliasDepth {
		return fmt.Errorf("%w: more than %d aliases deep at %s%s", ErrAliasLoop, MaxAliasDepth, key, via(chain))
	}
	if res.expansions++; res.expansions > maxExpansions {
		return fmt.Errorf("resolve: more than %d aliases to expand at %s%s", maxExpansions, key, via(chain))
	}
	if len(targets) == 0 {
		return fmt.Errorf("resolve: alias %s has no targets", key)
	}
	chain = append(chain[:len(chain):len(chain)], key)
	for _, t := range targets {
		a, err := address.Parse(t)
		if err != nil {
			return fmt.Errorf("resolve: alias %s: target %q: %w", key, t, err)
		}
		if err := r.resolve(res, a, chain); err != nil {
			return err
		}
	}
	return nil
}

// via describes the alias chain that led to an address, for errors.
func via(chain []string) string {
	if len(chain) == 0 {
		return ""
	}
	return " (via alias " + strings.Join(chain, " -> ") + ")"
}

// addLocal adds the Maildir of the user local@domain (local already folded).
func (r *Resolver) addLocal(res *resolution, local, domain, detail string) error {
	dir, err := r.root.UserMaildir(local, domain)
	if err != nil {
		return fmt.Errorf("resolve: user %s@%s cannot have a Maildir: %w", local, domain, err)
	}
	// UserMaildir already refuses unsafe names; this is the last line of
	// defence should it ever change.
	rel, err := filepath.Rel(r.root.MailDir(), dir)
	if err != nil || rel != filepath.Join(domain, local) || !filepath.IsLocal(rel) {
		return fmt.Errorf("resolve: user %s@%s: Maildir %q is not under %s", local, domain, dir, r.root.MailDir())
	}
	if id := "local " + dir; !res.seen[id] {
		res.seen[id] = true
		res.targets = append(res.targets, Target{
			Kind:    Local,
			Address: address.Address{Local: local, Domain: domain},
			Detail:  detail,
			Maildir: dir,
		})
	}
	return nil
}

// addRemote adds a remote address; its local part is kept as written, since
// only the remote host may decide what its case means (RFC 5321 §2.4).
func (r *Resolver) addRemote(res *resolution, a address.Address) {
	if id := "remote " + a.String(); !res.seen[id] {
		res.seen[id] = true
		res.targets = append(res.targets, Target{Kind: Remote, Address: a})
	}
}
