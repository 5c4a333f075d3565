package accounts

import (
	"fmt"
	"os"
	"testing"

	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/sysexits"
)

func TestDomains(t *testing.T) {
	root := newRoot(t) // alice@example.org
	if _, err := AddAlias(root, "@lists.example", []string{"alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	d, err := AddDomain(root, "New.EXAMPLE")
	if err != nil || d != "new.example" {
		t.Fatalf("AddDomain = %q, %v", d, err)
	}
	_, err = AddDomain(root, "new.example")
	wantCode(t, "AddDomain twice", err, sysexits.CantCreat)
	_, err = AddDomain(root, "[127.0.0.1]")
	wantCode(t, "AddDomain of a literal", err, sysexits.DataErr)
	if data, _ := os.ReadFile(root.Etc("domains")); string(data) != "new.example\n" {
		t.Errorf("etc/domains = %q", data)
	}
	r, err := resolve.Load(root)
	if err != nil || !r.IsLocalDomain("new.example") {
		t.Errorf("resolve sees new.example as local: %v", err)
	}
	if _, _, err := GenerateDKIM(root, "example.org", false); err != nil {
		t.Fatal(err)
	}
	_, _, err = GenerateDKIM(root, "remote.example", false)
	wantCode(t, "GenerateDKIM of a remote domain", err, sysexits.NoUser)
	list, err := ListDomains(root)
	if got := fmt.Sprint(list); err != nil || got != "[{example.org false 1 0 [ed25519 rsa]} {lists.example false 0 1 []} {new.example true 0 0 []}]" {
		t.Errorf("ListDomains = %s, %v", got, err)
	}
	_, err = DeleteDomain(root, "example.org")
	wantCode(t, "DeleteDomain with a user", err, sysexits.DataErr)
	_, err = DeleteDomain(root, "remote.example")
	wantCode(t, "DeleteDomain of a remote domain", err, sysexits.NoUser)
	if _, err := DeleteDomain(root, "new.example"); err != nil {
		t.Errorf("DeleteDomain = %v", err)
	}
	if data, _ := os.ReadFile(root.Etc("domains")); string(data) != "" {
		t.Errorf("etc/domains after del = %q", data)
	}
	if r, _ := resolve.Load(root); r.IsLocalDomain("new.example") {
		t.Error("new.example still local after DeleteDomain")
	}
}
