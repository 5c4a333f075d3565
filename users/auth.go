package users

import (
	"fmt"
	"sync"

	"github.com/postkit/postkit/control"
	"golang.org/x/crypto/bcrypt"
)

// dummyHash is compared against when the user does not exist, so that a
// login for an unknown address costs about as much time as one for a real
// user and the answer time does not tell which addresses exist.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("postkit timing equaliser"), bcryptCost)
	if err != nil {
		panic("users: bcrypt of a constant failed: " + err.Error())
	}
	return h
})

// Authenticate reports whether password is the password of the user address
// or one of its app passwords, reading ROOT/etc/users and
// ROOT/etc/app-passwords. An unknown user gives false and no error. An error
// means the files could not be read or the user's hash could not be checked
// (and no app password matched); servers should log it and refuse the login.
func Authenticate(root control.Root, address, password string) (bool, error) {
	db, err := Load(root.Etc("users"))
	if err != nil {
		return false, err
	}
	e, ok := db.Lookup(address)
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false, nil
	}
	match, hashErr := verify(e.Hash, password)
	if hashErr != nil {
		hashErr = fmt.Errorf("users: password of %s: %w", e.Address, hashErr)
	}
	if match {
		return true, nil
	}
	apps, err := LoadApp(root.Etc("app-passwords"))
	if err != nil {
		return false, err
	}
	for _, p := range apps.List(e.Address) {
		ok, err := verify(p.hash, password)
		if ok {
			return true, nil
		}
		if err != nil && hashErr == nil {
			hashErr = fmt.Errorf("users: app password %q of %s: %w", p.Label, e.Address, err)
		}
	}
	return false, hashErr
}
