package users

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/postkit/postkit/control"
)

func TestLogin(t *testing.T) {
	root := control.Root(t.TempDir())
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(root.Etc("users")), 0o700)
	if err := os.WriteFile(root.Etc("users"), []byte("alice@example.org:"+hash+"::::::\ndora@xn--bcher-kva.example:"+hash+"::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		login, password, user string
		ok                    bool
	}{
		{"alice@example.org", "pw", "alice@example.org", true},
		{"ALICE@Example.ORG", "pw", "alice@example.org", true},
		{"dora@bücher.example", "pw", "dora@xn--bcher-kva.example", true},
		{"alice@example.org", "wrong", "alice@example.org", false},
		{"bob@example.org", "pw", "bob@example.org", false},
		{"not an address", "pw", "", false},
		{"", "pw", "", false},
	} {
		user, ok, err := Login(root, tc.login, tc.password)
		if err != nil || ok != tc.ok || user != tc.user {
			t.Errorf("Login(%q, %q) = %q, %v, %v; want %q, %v, nil", tc.login, tc.password, user, ok, err, tc.user, tc.ok)
		}
	}
}
