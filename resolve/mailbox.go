package resolve

import (
	"fmt"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// UserMaildir returns the Maildir of the user whose canonical address is
// user (as users.Login returns it), found the way delivery finds it, so that
// the servers read exactly where mail is put. A user's own address resolves
// to that user alone (rule 1); anything else means the user went away since
// logging in, and is an error.
func UserMaildir(root control.Root, user string) (string, error) {
	addr, err := address.Parse(user)
	if err != nil {
		return "", fmt.Errorf("resolve: user %q: %w", user, err)
	}
	r, err := Load(root)
	if err != nil {
		return "", err
	}
	targets, err := r.Resolve(addr)
	if err != nil {
		return "", fmt.Errorf("resolve: %w", err)
	}
	if len(targets) != 1 || targets[0].Kind != Local || targets[0].Address.Key() != addr.Key() || targets[0].Detail != "" {
		return "", fmt.Errorf("resolve: %s does not resolve to its own Maildir", user)
	}
	return targets[0].Maildir, nil
}
