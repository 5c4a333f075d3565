package accounts

import (
	"errors"
	"fmt"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// AddAppPassword makes a new app password labelled label for the user addr
// and returns it in plain text (only its hash is stored).
func AddAppPassword(root control.Root, addr, label string) (string, error) {
	if err := users.CheckLabel(label); err != nil {
		return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%v; choose another label", err)}
	}
	e, err := loadUser(root, addr)
	if err != nil {
		return "", err
	}
	var pw string
	err = users.UpdateApp(root.Etc("app-passwords"), func(a *users.AppPasswords) error {
		var err error
		pw, err = a.Add(e.Address, label)
		if errors.Is(err, users.ErrExists) {
			return &Error{Code: sysexits.CantCreat, Err: err,
				Msg: fmt.Sprintf("%s has an app password labelled %q already; revoke it first or choose another label", e.Address, label)}
		}
		return err
	})
	if err != nil {
		return "", classify(err)
	}
	return pw, nil
}

// ListAppPasswords returns the app passwords of the user addr, oldest first.
func ListAppPasswords(root control.Root, addr string) ([]users.AppPassword, error) {
	e, err := loadUser(root, addr)
	if err != nil {
		return nil, err
	}
	a, err := users.LoadApp(root.Etc("app-passwords"))
	if err != nil {
		return nil, classify(err)
	}
	return a.List(e.Address), nil
}

// RevokeAppPassword deletes the app password labelled label of the user addr.
func RevokeAppPassword(root control.Root, addr, label string) error {
	e, err := loadUser(root, addr)
	if err != nil {
		return err
	}
	err = users.UpdateApp(root.Etc("app-passwords"), func(a *users.AppPasswords) error {
		err := a.Revoke(e.Address, label)
		if errors.Is(err, users.ErrNotFound) {
			return &Error{Code: sysexits.NoUser, Err: err,
				Msg: fmt.Sprintf("%s has no app password labelled %q; see mkuser app-password list %s", e.Address, label, e.Address)}
		}
		return err
	})
	return classify(err)
}
