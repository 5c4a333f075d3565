package pop3

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/users"
)

// newRoot makes a postkit root with the user alice@example.org, password
// "secret", and an app password; it returns the root and the app password.
func newRoot(t *testing.T) (control.Root, string) {
	t.Helper()
	root := control.Root(t.TempDir())
	if err := os.MkdirAll(root.Etc(""), 0o700); err != nil {
		t.Fatal(err)
	}
	hash, err := users.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Etc("users"), []byte("alice@example.org:"+hash+"::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var app string
	err = users.UpdateApp(root.Etc("app-passwords"), func(a *users.AppPasswords) error {
		app, err = a.Add("alice@example.org", "phone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, app
}

func TestAccountsAuthenticate(t *testing.T) {
	root, app := newRoot(t)
	a := Accounts{Root: root}
	tests := []struct {
		name, login, password, want string
		err                         error
	}{
		{"password", "alice@example.org", "secret", "alice@example.org", nil},
		{"address in other case", "Alice@EXAMPLE.org", "secret", "alice@example.org", nil},
		{"app password", "alice@example.org", app, "alice@example.org", nil},
		{"wrong password", "alice@example.org", "Secret", "", ErrBadCredentials},
		{"unknown user", "bob@example.org", "secret", "", ErrBadCredentials},
		{"local part only", "alice", "secret", "", ErrBadCredentials},
		{"not an address", "alice@@example.org", "secret", "", ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Authenticate(tt.login, tt.password)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Errorf("Authenticate(%q, %q) = %q, %v, want %q, %v", tt.login, tt.password, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestAccountsAuthenticateBrokenUsersFile(t *testing.T) {
	root, _ := newRoot(t)
	os.WriteFile(root.Etc("users"), []byte("no colon here\n"), 0o600)
	_, err := Accounts{Root: root}.Authenticate("alice@example.org", "secret")
	if err == nil || errors.Is(err, ErrBadCredentials) {
		t.Errorf("Authenticate with a broken users file = %v, want a temporary error", err)
	}
}

func TestAccountsOpen(t *testing.T) {
	root, _ := newRoot(t)
	a := Accounts{Root: root}
	dir := filepath.Join(root.MailDir(), "example.org", "alice")
	if err := maildir.Create(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := maildir.Dir(dir).Deliver(strings.NewReader("Subject: hi\n\nhello\n"), maildir.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	mb, err := a.Open("alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if msgs := mb.Messages(); len(msgs) != 1 || msgs[0].Size != 22 {
		t.Errorf("Messages() = %v, want one of 22 octets", msgs)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		t.Errorf("no lock file in the user's Maildir: %v", err)
	}
	if _, err := a.Open("bob@example.org"); err == nil {
		t.Error("Open(unknown user) succeeded")
	}
}
