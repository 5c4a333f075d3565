package resolve

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// mapDirectory is a small in-memory Directory. Every key in hostile is a
// user, whatever its local part: it stands for a users file with entries no
// tool of ours would write.
type mapDirectory struct {
	users   map[string]bool
	aliases map[string][]string
	domains map[string]bool
	hostile string
}

func (d *mapDirectory) UserExists(key string) bool {
	if d.hostile != "" && strings.HasSuffix(key, "@"+d.hostile) && key[0] != '@' {
		return true
	}
	return d.users[key]
}

func (d *mapDirectory) Alias(key string) ([]string, bool) {
	t, ok := d.aliases[key]
	return t, ok
}

func (d *mapDirectory) LocalDomain(domain string) bool {
	return d.domains[domain] || domain == d.hostile
}

func testDirectory() *mapDirectory {
	d := &mapDirectory{
		users: map[string]bool{},
		aliases: map[string][]string{
			"sales@example.org":         {"alice@example.org", "bob@example.org"},
			"team@example.org":          {"sales@example.org", "ALICE@example.org", "Friend@Remote.example"},
			"fwd@example.org":           {"Someone@REMOTE.example"},
			"alice+special@example.org": {"bob@example.org"},
			"lists@example.org":         {"carol@example.net"},
			"litfwd@example.org":        {"x@[192.0.2.1]"},
			"loop1@example.org":         {"loop2@example.org"},
			"loop2@example.org":         {"loop1@example.org"},
			"self@example.org":          {"alice@example.org", "self@example.org"},
			"ghost@example.org":         {"alice@example.org", "nobody@example.org"},
			"broken@example.org":        {"not an address"},
			"empty@example.org":         {},
			"@example.net":              {"bob@example.org"},
			"@catchloop.example":        {"missing@catchloop.example"},
			"@subloop.example":          {"x+y@subloop.example"},
			"x@subloop.example":         {"y@subloop.example"},
		},
		domains: map[string]bool{
			"example.org": true, "example.net": true, "xn--bcher-kva.example": true,
			"catchloop.example": true, "subloop.example": true, "unsafe.example": true,
		},
		hostile: "evil.example",
	}
	for _, u := range []string{
		"alice@example.org", "bob@example.org", "carol@example.net", "dora@xn--bcher-kva.example",
		// Names no tool of ours writes, as a hand-edited users file might.
		"..@unsafe.example", "a/b@unsafe.example", ".hidden@unsafe.example",
	} {
		d.users[u] = true
	}
	// chain0 -> chain1 -> ... -> chain9 -> alice: ten aliases deep.
	for i := range 10 {
		next := fmt.Sprintf("chain%d@example.org", i+1)
		if i == 9 {
			next = "alice@example.org"
		}
		d.aliases[fmt.Sprintf("chain%d@example.org", i)] = []string{next}
	}
	// deep0 -> ... -> deep10 -> alice: eleven aliases deep.
	for i := range 11 {
		next := fmt.Sprintf("deep%d@example.org", i+1)
		if i == 10 {
			next = "alice@example.org"
		}
		d.aliases[fmt.Sprintf("deep%d@example.org", i)] = []string{next}
	}
	// wideN-a and wideN-b both point to both wide(N+1) aliases: no cycle,
	// but 2^10 paths.
	for i := range 10 {
		next := []string{fmt.Sprintf("wide%d-a@example.org", i+1), fmt.Sprintf("wide%d-b@example.org", i+1)}
		if i == 9 {
			next = []string{"alice@example.org"}
		}
		d.aliases[fmt.Sprintf("wide%d-a@example.org", i)] = next
		d.aliases[fmt.Sprintf("wide%d-b@example.org", i)] = next
	}
	return d
}

const testRoot = control.Root("/srv/postkit")

func local(user, domain, detail string) Target {
	return Target{Kind: Local, Address: address.Address{Local: user, Domain: domain}, Detail: detail,
		Maildir: filepath.Join(string(testRoot), "mail", domain, user)}
}

func remote(l, d string) Target {
	return Target{Kind: Remote, Address: address.Address{Local: l, Domain: d}}
}

var errParse = errors.New("parse error")
var errOther = errors.New("some other error")

func TestResolve(t *testing.T) {
	r := New(testRoot, testDirectory())
	alice := local("alice", "example.org", "")
	bob := local("bob", "example.org", "")
	for _, tc := range []struct {
		name, in string
		want     []Target
		err      error // errParse: ParsePath fails; errOther: any error but the two sentinels
	}{
		// Ordinary delivery.
		{"user", "alice@example.org", []Target{alice}, nil},
		{"user in brackets", "<alice@example.org>", []Target{alice}, nil},
		{"upper-case address", "ALICE@EXAMPLE.ORG", []Target{alice}, nil},
		{"upper-case domain", "alice@EXAMPLE.org", []Target{alice}, nil},
		{"quoted local part equals the plain one", `"alice"@example.org`, []Target{alice}, nil},
		{"UTF-8 domain equals the A-label", "dora@bücher.example", []Target{local("dora", "xn--bcher-kva.example", "")}, nil},
		{"upper-case UTF-8 domain", "DORA@BÜCHER.EXAMPLE", []Target{local("dora", "xn--bcher-kva.example", "")}, nil},
		{"A-label domain", "dora@xn--bcher-kva.example", []Target{local("dora", "xn--bcher-kva.example", "")}, nil},
		{"subaddress", "alice+lists@example.org", []Target{local("alice", "example.org", "lists")}, nil},
		{"subaddress keeps the detail's case", "ALICE+Lists@example.org", []Target{local("alice", "example.org", "Lists")}, nil},
		{"empty detail", "alice+@example.org", []Target{alice}, nil},
		{"detail with path characters stays a detail", `"alice+../../x"@example.org`, []Target{local("alice", "example.org", "../../x")}, nil},
		{"exact alias beats subaddress", "alice+special@example.org", []Target{bob}, nil},
		{"alias", "sales@example.org", []Target{alice, bob}, nil},
		{"subaddress of an alias", "sales+x@example.org", []Target{alice, bob}, nil},
		{"alias of alias, de-duplicated", "team@example.org", []Target{alice, bob, remote("Friend", "remote.example")}, nil},
		{"forward keeps the remote local part", "fwd@example.org", []Target{remote("Someone", "remote.example")}, nil},
		{"alias to another local domain", "lists@example.org", []Target{local("carol", "example.net", "")}, nil},
		{"alias to a literal", "litfwd@example.org", []Target{remote("x", "[192.0.2.1]")}, nil},
		{"catch-all", "anyone@example.net", []Target{bob}, nil},
		{"catch-all does not take a user", "carol@example.net", []Target{local("carol", "example.net", "")}, nil},
		{"catch-all does not take a subaddressed user", "carol+x@example.net", []Target{local("carol", "example.net", "x")}, nil},
		{"ten aliases deep", "chain0@example.org", []Target{alice}, nil},
		{"remote", "someone@remote.example", []Target{remote("someone", "remote.example")}, nil},
		{"remote keeps case", "SomeOne@Remote.Example", []Target{remote("SomeOne", "remote.example")}, nil},
		{"subdomain of a local domain is remote", "alice@sub.example.org", []Target{remote("alice", "sub.example.org")}, nil},
		{"unknown user", "nobody@example.org", nil, ErrUnknownUser},
		{"unknown subaddressed user", "nobody+x@example.org", nil, ErrUnknownUser},

		// Relay tricks: none of these may leave through a local domain.
		{"percent hack", "user%remote.example@example.org", nil, ErrUnknownUser},
		{"source route is dropped", "@example.org:user@remote.example", []Target{remote("user", "remote.example")}, nil},
		{"source route in brackets", "<@example.org:user@remote.example>", []Target{remote("user", "remote.example")}, nil},
		{"source route to a local user", "<@remote.example:alice@example.org>", []Target{alice}, nil},
		{"quoted at sign", `"user@remote.example"@example.org`, nil, ErrUnknownUser},
		{"two at signs", "user@remote.example@example.org", nil, errParse},
		{"bang path", "remote.example!user@example.org", nil, ErrUnknownUser},
		{"trailing dot", "alice@example.org.", nil, errParse},
		{"literal is never local", "alice@[127.0.0.1]", []Target{remote("alice", "[127.0.0.1]")}, nil},
		{"IPv6 literal is never local", "alice@[IPv6:::1]", []Target{remote("alice", "[IPv6:::1]")}, nil},
		{"bare IP is not a domain", "alice@127.0.0.1", nil, errParse},
		{"empty label", "alice@example..org", nil, errParse},
		{"NUL", "alice\x00@example.org", nil, errParse},
		{"CRLF", "alice@example.org\r\nRCPT TO:<x@remote.example>", nil, errParse},

		// Path escapes.
		{"quoted dot-dot is unknown", `".."@example.org`, nil, ErrUnknownUser},
		{"quoted slash is unknown", `"../../etc"@example.org`, nil, ErrUnknownUser},
		{"unquoted dot-dot", "../x@example.org", nil, errParse},
		{"dot-dot user in the directory", `".."@unsafe.example`, nil, errOther},
		{"slash user in the directory", "a/b@unsafe.example", nil, errOther},
		{"hidden user in the directory", `".hidden"@unsafe.example`, nil, errOther},
		{"directory saying yes to a quoted slash", `"../../../etc/passwd"@evil.example`, nil, errOther},
		{"directory saying yes to a backslash", `"a\\b"@evil.example`, nil, errOther},

		// Loops and broken aliases.
		{"loop", "loop1@example.org", nil, ErrAliasLoop},
		{"alias to itself", "self@example.org", nil, ErrAliasLoop},
		{"catch-all loop", "x@catchloop.example", nil, ErrAliasLoop},
		{"catch-all loop through a subaddress", "q@subloop.example", nil, ErrAliasLoop},
		{"eleven aliases deep", "deep0@example.org", nil, ErrAliasLoop},
		{"alias to an unknown user", "ghost@example.org", nil, ErrUnknownUser},
		{"alias target not an address", "broken@example.org", nil, errOther},
		{"alias without targets", "empty@example.org", nil, errOther},
		{"alias fan-out", "wide0-a@example.org", nil, errOther},
		{"null sender", "<>", nil, errOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := address.ParsePath(tc.in)
			if err != nil {
				if tc.err != errParse {
					t.Fatalf("ParsePath(%q) = %v", tc.in, err)
				}
				return
			}
			if tc.err == errParse {
				t.Fatalf("ParsePath(%q) = %+v, want an error", tc.in, a)
			}
			got, err := r.Resolve(a)
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("Resolve(%q) = %v, want %v", tc.in, err, tc.want)
			case tc.err == errOther:
				if err == nil || errors.Is(err, ErrUnknownUser) || errors.Is(err, ErrAliasLoop) {
					t.Fatalf("Resolve(%q) = %v, %v; want an error other than unknown user or loop", tc.in, got, err)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("Resolve(%q) = %v, %v; want %v", tc.in, got, err, tc.err)
				}
			}
			if err != nil && got != nil {
				t.Errorf("Resolve(%q) = %v with error %v, want no targets", tc.in, got, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Resolve(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestResolveRefusesUnparsedAddresses(t *testing.T) {
	r := New(testRoot, testDirectory())
	for _, a := range []address.Address{
		{Local: "alice", Domain: "EXAMPLE.ORG"},
		{Local: "alice", Domain: "example.org."},
		{Local: "alice", Domain: "../../etc"},
		{Local: "alice", Domain: "bücher.example"},
		{Local: "al\nice", Domain: "example.org"},
		{Local: "", Domain: "example.org"},
		{Local: "alice", Domain: ""},
	} {
		if got, err := r.Resolve(a); err == nil {
			t.Errorf("Resolve(%+v) = %+v, want an error", a, got)
		}
	}
}

func TestIsLocalDomain(t *testing.T) {
	r := New(testRoot, testDirectory())
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"example.org", true}, {"EXAMPLE.ORG", true}, {"bücher.example", true}, {"XN--BCHER-KVA.example", true},
		{"remote.example", false}, {"sub.example.org", false}, {"example.org.", false}, {"[127.0.0.1]", false},
		{"", false}, {"example..org", false},
	} {
		if got := r.IsLocalDomain(tc.in); got != tc.want {
			t.Errorf("IsLocalDomain(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// checkTargets checks what must hold for every answer: a local target's
// Maildir is exactly ROOT/mail/DOMAIN/LOCAL for its canonical address, so
// it is under ROOT/mail/.
func checkTargets(t *testing.T, root control.Root, in string, targets []Target) {
	t.Helper()
	for _, tg := range targets {
		switch tg.Kind {
		case Local:
			rel, err := filepath.Rel(root.MailDir(), tg.Maildir)
			if err != nil || !filepath.IsLocal(rel) || strings.Count(rel, string(filepath.Separator)) != 1 ||
				rel != tg.Address.Domain+"/"+tg.Address.Local {
				t.Fatalf("Resolve(%q): local target %+v has Maildir outside %s/DOMAIN/LOCAL", in, tg, root.MailDir())
			}
			if address.IsLiteral(tg.Address.Domain) || control.SafeElement(tg.Address.Local) != nil ||
				control.SafeElement(tg.Address.Domain) != nil {
				t.Fatalf("Resolve(%q): unsafe local target %+v", in, tg)
			}
		case Remote:
			if tg.Maildir != "" || tg.Detail != "" {
				t.Fatalf("Resolve(%q): remote target %+v with a Maildir or detail", in, tg)
			}
		default:
			t.Fatalf("Resolve(%q): target %+v of no kind", in, tg)
		}
	}
}

// TestMaildirsUnderRoot resolves many crafted addresses, against a
// directory that says yes to every user of evil.example, and checks every
// local target's Maildir.
func TestMaildirsUnderRoot(t *testing.T) {
	r := New(testRoot, testDirectory())
	locals := []string{"alice", "ALICE", `".."`, `"."`, `"../x"`, `"a/b"`, `"a\\b"`, `"/etc"`, `"~root"`,
		"a%b", "a!b", `"a@b"`, "alice+x", `"alice+../.."`, "ü", "ΣΟΦΙΑ", `"a b"`, "-rf", "*", "a.b", "x+"}
	domains := []string{"example.org", "EXAMPLE.ORG", "evil.example", "EVIL.example", "example.net", "unsafe.example",
		"bücher.example", "[127.0.0.1]", "remote.example"}
	n := 0
	for _, l := range locals {
		for _, d := range domains {
			in := l + "@" + d
			a, err := address.Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", in, err)
			}
			targets, err := r.Resolve(a)
			checkTargets(t, testRoot, in, targets)
			if err == nil {
				n += len(targets)
			}
		}
	}
	if n < len(locals) {
		t.Fatalf("only %d targets for %d addresses: the test resolves too little", n, len(locals)*len(domains))
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "ALICE+x@EXAMPLE.ORG", "sales@example.org", "team+a@example.org", "x@example.net",
		`"../../etc"@evil.example`, `".."@unsafe.example`, "@example.org:user@remote.example", "alice@[127.0.0.1]",
		"user%remote.example@example.org", "loop1@example.org", "wide3-a@example.org", "dora@bücher.example",
	} {
		f.Add(s)
	}
	r := New(testRoot, testDirectory())
	f.Fuzz(func(t *testing.T, s string) {
		a, err := address.ParsePath(s)
		if err != nil {
			return
		}
		targets, err := r.Resolve(a)
		if err != nil && targets != nil {
			t.Fatalf("Resolve(%q) = %v and error %v", s, targets, err)
		}
		checkTargets(t, testRoot, s, targets)
		if a.IsZero() || address.IsLiteral(a.Domain) {
			return
		}
		// Whatever the local part, an address of a local domain never
		// becomes one remote target for itself (that would relay it).
		if r.IsLocalDomain(a.Domain) {
			for _, tg := range targets {
				if tg.Kind == Remote && tg.Address.Domain == a.Domain {
					t.Fatalf("Resolve(%q) = %+v: a local domain's address resolved remote", s, targets)
				}
			}
		}
	})
}
