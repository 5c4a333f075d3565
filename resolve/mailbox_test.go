package resolve

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/postkit/postkit/control"
)

func TestUserMaildir(t *testing.T) {
	root := control.Root(t.TempDir())
	os.MkdirAll(filepath.Dir(root.Etc("users")), 0o700)
	os.WriteFile(root.Etc("users"), []byte("alice@example.org:{BLF-CRYPT}x::::::\n"), 0o600)
	os.WriteFile(root.Etc("aliases"), []byte("sales@example.org: alice@example.org\n"), 0o600)
	got, err := UserMaildir(root, "alice@example.org")
	if want := filepath.Join(string(root), "mail/example.org/alice"); err != nil || got != want {
		t.Errorf("UserMaildir(alice) = %q, %v; want %q", got, err, want)
	}
	// Only a user's own address names a Maildir to serve.
	for _, user := range []string{"sales@example.org", "alice+x@example.org", "bob@example.org", "bob@remote.example", "no address"} {
		if got, err := UserMaildir(root, user); err == nil {
			t.Errorf("UserMaildir(%q) = %q, want an error", user, got)
		}
	}
}
