package accounts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sieve"
	"github.com/postkit/postkit/sysexits"
)

// A user's Sieve scripts live in the user's Maildir, in the layout of
// package sieve (Pigeonhole's: HOME/sieve/NAME.sieve and the link
// HOME/.dovecot.sieve to the active one), so they move with the mailbox.
// mkuser sieve manages them; deliver runs the active one.

// SieveScript is one of a user's scripts.
type SieveScript struct {
	Name   string
	Active bool
}

// sieveHome returns the Maildir of the user addr, which holds its scripts.
func sieveHome(root control.Root, addr string) (string, error) {
	e, err := loadUser(root, addr)
	if err != nil {
		return "", err
	}
	home := userMaildir(root, e)
	if home == "" {
		return "", errorf(sysexits.DataErr, "%s is not an address: it has no Maildir to keep scripts in", e.Address)
	}
	return home, nil
}

func checkScriptName(name string) error {
	if !sieve.ValidScriptName(name) {
		return errorf(sysexits.DataErr, "%q is not a script name; use 1 to 64 letters, digits, '_', '-' and '.', not starting with '.'", name)
	}
	return nil
}

// sieveError turns an error of package sieve into an *Error.
func sieveError(name string, err error) error {
	var se *sieve.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &Error{Code: sysexits.DataErr, Err: err,
			Msg: fmt.Sprintf("script %s is not valid Sieve: %s: %s; nothing was changed", name, se.Pos, se.Msg)}
	case errors.Is(err, sieve.ErrNoScript):
		return &Error{Code: sysexits.NoUser, Err: err, Msg: fmt.Sprintf("no script %s; list them with mkuser sieve list", name)}
	}
	return classify(err)
}

// PutSieveScript checks the script src and stores it as the user's script
// name, replacing one of that name. A script that does not check is
// refused (65) with the line and column of the problem. It does not
// activate the script.
func PutSieveScript(root control.Root, addr, name string, src io.Reader) error {
	if err := checkScriptName(name); err != nil {
		return err
	}
	home, err := sieveHome(root, addr)
	if err != nil {
		return err
	}
	text, err := io.ReadAll(io.LimitReader(src, sieve.MaxScriptSize+1))
	if err != nil {
		return &Error{Code: sysexits.IOErr, Err: err, Msg: fmt.Sprintf("reading the script: %v", err)}
	}
	if err := sieveError(name, sieve.SaveScript(home, name, text)); err != nil {
		return err
	}
	return giveToMaildirOwner(home, filepath.Join(home, sieve.ScriptsDir), filepath.Join(home, sieve.ScriptsDir, name+sieve.ScriptExt))
}

// GetSieveScript returns the text of the user's script name.
func GetSieveScript(root control.Root, addr, name string) ([]byte, error) {
	if err := checkScriptName(name); err != nil {
		return nil, err
	}
	home, err := sieveHome(root, addr)
	if err != nil {
		return nil, err
	}
	src, err := sieve.ReadScript(home, name)
	return src, sieveError(name, err)
}

// ListSieveScripts returns the user's scripts, sorted by name.
func ListSieveScripts(root control.Root, addr string) ([]SieveScript, error) {
	home, err := sieveHome(root, addr)
	if err != nil {
		return nil, err
	}
	names, err := sieve.ListScripts(home)
	if err != nil {
		return nil, classify(err)
	}
	active, err := sieve.ActiveScript(home)
	if err != nil {
		return nil, classify(err)
	}
	var list []SieveScript
	for _, n := range names {
		list = append(list, SieveScript{Name: n, Active: n == active})
	}
	return list, nil
}

// ActivateSieveScript makes name the user's active script; with name ""
// no script is active.
func ActivateSieveScript(root control.Root, addr, name string) error {
	if name != "" {
		if err := checkScriptName(name); err != nil {
			return err
		}
	}
	home, err := sieveHome(root, addr)
	if err != nil {
		return err
	}
	if err := sieveError(name, sieve.Activate(home, name)); err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	return giveToMaildirOwner(home, filepath.Join(home, sieve.ActiveLink))
}

// DeleteSieveScript removes the user's script name, which must not be the
// active one.
func DeleteSieveScript(root control.Root, addr, name string) error {
	if err := checkScriptName(name); err != nil {
		return err
	}
	home, err := sieveHome(root, addr)
	if err != nil {
		return err
	}
	if active, err := sieve.ActiveScript(home); err == nil && active == name {
		return errorf(sysexits.DataErr, "script %s is active; mkuser sieve deactivate %s first", name, addr)
	}
	return sieveError(name, sieve.DeleteScript(home, name))
}

// giveToMaildirOwner gives paths (without following links) the owner and
// group of the Maildir home when mkuser runs as root, so that deliver,
// running as the Maildir's owner, can read the scripts (as package maildir
// does for the Maildir's own files).
func giveToMaildirOwner(home string, paths ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	info, err := os.Stat(home)
	if err != nil {
		return classify(err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
			return classify(err)
		}
	}
	return nil
}
