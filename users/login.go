package users

import (
	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// Login checks a mail client's login, the way smtpd, pop3d and imapd all
// do: login is a full address in any spelling ("Alice@Example.ORG",
// a UTF-8 domain), password the user's password or one of its app
// passwords. It returns the user's canonical address (address.Key), which
// is what the servers log and resolve. A login that is not an address
// fails like a wrong password: ok false, no error.
func Login(root control.Root, login, password string) (user string, ok bool, err error) {
	addr, err := address.Parse(login)
	if err != nil {
		return "", false, nil
	}
	user = addr.Key()
	ok, err = Authenticate(root, user, password)
	return user, ok, err
}
