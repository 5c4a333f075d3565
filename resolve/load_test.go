package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

func writeEtc(t *testing.T, root control.Root, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(root.Etc(name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Etc(name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "users", strings.Join([]string{
		"# users",
		"Alice@Example.ORG:{BLF-CRYPT}$2y$10$x::::::",
		"dora@BÜCHER.example:{BLF-CRYPT}$2y$10$x::::::",
		"admin:{BLF-CRYPT}$2y$10$x::::::", // a login name without a domain: no mailbox
		"",
	}, "\n"))
	writeEtc(t, root, "aliases", strings.Join([]string{
		"Sales@EXAMPLE.org: alice@example.org, Friend@Remote.example",
		"@xn--bcher-kva.example: alice@example.org",
		"@Lists.Example: dora@bücher.example",
		"",
	}, "\n"))
	r, err := Load(root)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	mail := func(d, l string) string { return filepath.Join(root.MailDir(), d, l) }
	alice := Target{Kind: Local, Address: address.Address{Local: "alice", Domain: "example.org"}, Maildir: mail("example.org", "alice")}
	dora := Target{Kind: Local, Address: address.Address{Local: "dora", Domain: "xn--bcher-kva.example"}, Maildir: mail("xn--bcher-kva.example", "dora")}
	for _, tc := range []struct {
		in   string
		want []Target
		err  error
	}{
		{"alice@example.org", []Target{alice}, nil},
		{"ALICE@example.org", []Target{alice}, nil},
		{"dora@xn--bcher-kva.example", []Target{dora}, nil},
		{"sales@example.org", []Target{alice, {Kind: Remote, Address: address.Address{Local: "Friend", Domain: "remote.example"}}}, nil},
		{"anyone@bücher.example", []Target{alice}, nil},
		{"anyone@lists.example", []Target{dora}, nil},
		{"bob@example.org", nil, ErrUnknownUser},
		{"admin@example.org", nil, ErrUnknownUser},
		{"x@remote.example", []Target{{Kind: Remote, Address: address.Address{Local: "x", Domain: "remote.example"}}}, nil},
	} {
		a, err := address.Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tc.in, err)
		}
		got, err := r.Resolve(a)
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, d := range []string{"example.org", "bücher.example", "lists.example"} {
		if !r.IsLocalDomain(d) {
			t.Errorf("IsLocalDomain(%q) = false, want true", d)
		}
	}
	if r.IsLocalDomain("remote.example") {
		t.Errorf("IsLocalDomain(remote.example) = true, want false")
	}
}

func TestLoadDomainsFile(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "domains", "# set up before their users\nNew.Example\nbücher.example\n")
	r, err := Load(root)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	for _, tc := range []struct {
		domain string
		want   bool
	}{{"new.example", true}, {"xn--bcher-kva.example", true}, {"other.example", false}} {
		if got := r.IsLocalDomain(tc.domain); got != tc.want {
			t.Errorf("IsLocalDomain(%q) = %v, want %v", tc.domain, got, tc.want)
		}
	}
	a, _ := address.Parse("nobody@new.example")
	if _, err := r.Resolve(a); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Resolve(nobody@new.example) = %v, want ErrUnknownUser", err)
	}
	writeEtc(t, root, "domains", "[127.0.0.1]\n")
	if _, err := Load(root); err == nil {
		t.Errorf("Load with an address literal in etc/domains succeeded")
	}
}

func TestLoadMissingFiles(t *testing.T) {
	r, err := Load(control.Root(t.TempDir()))
	if err != nil {
		t.Fatalf("Load(empty root) = %v", err)
	}
	a, _ := address.Parse("alice@example.org")
	if got, err := r.Resolve(a); err != nil || len(got) != 1 || got[0].Kind != Remote {
		t.Errorf("Resolve(alice@example.org) with no users = %+v, %v; want remote", got, err)
	}
}

func TestLoadRefusesBadAliases(t *testing.T) {
	for _, tc := range []struct{ name, aliases string }{
		{"two keys that are one", "sales@bücher.example: a@example.org\nSALES@XN--BCHER-KVA.EXAMPLE: b@example.org\n"},
		{"same catch-all twice", "@bücher.example: a@example.org\n@xn--bcher-kva.example: b@example.org\n"},
		{"target with two at signs", "sales@example.org: user@remote.example@example.org\n"},
		{"target with a trailing dot", "sales@example.org: alice@example.org.\n"},
		{"key that is no address", "sa..les@example.org: alice@example.org\n"},
		{"literal key", "postmaster@[127.0.0.1]: alice@example.org\n"},
		{"literal catch-all", "@[127.0.0.1]: alice@example.org\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := control.Root(t.TempDir())
			writeEtc(t, root, "aliases", tc.aliases)
			_, err := Load(root)
			if err == nil {
				t.Fatalf("Load with aliases %q succeeded, want an error", tc.aliases)
			}
			t.Log(err)
		})
	}
}
