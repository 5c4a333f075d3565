package pop3

import (
	"fmt"
	"log"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/users"
)

// Accounts connects the Server to a postkit root: logins are checked against
// etc/users and etc/app-passwords, and a user's mailbox is the Maildir mail
// for the address is delivered to.
type Accounts struct {
	Root control.Root
	// Log receives warnings about mailboxes (see OpenMaildir); may be nil.
	Log *log.Logger
	// Maildirs, if not nil, opens the mailboxes, remembering their UID
	// lists from one session to the next; if nil, OpenMaildir does.
	Maildirs *Maildirs
}

// Authenticate is an Authenticator. The login is a full address, parsed by
// package address, so "Alice@Example.ORG" logs in alice@example.org; the
// user name it returns is the address's key (local part case-folded,
// domain normalised). Logins that are no address fail like wrong passwords.
func (a Accounts) Authenticate(login, password string) (string, error) {
	user, ok, err := users.Login(a.Root, login, password)
	if err != nil {
		return "", fmt.Errorf("pop3: %w", err)
	}
	if !ok {
		return "", ErrBadCredentials
	}
	return user, nil
}

// Open is an Opener: it resolves the user's address as delivery does (the
// user's own Maildir, ROOT/mail/DOMAIN/LOCAL) and opens it with OpenMaildir.
func (a Accounts) Open(user string) (Mailbox, error) {
	dir, err := resolve.UserMaildir(a.Root, user)
	if err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	open := OpenMaildir
	if a.Maildirs != nil {
		open = a.Maildirs.Open
	}
	m, err := open(dir, a.Log)
	if err != nil {
		return nil, err
	}
	return m, nil
}
