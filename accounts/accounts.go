// Package accounts is what mkuser(8) does: it adds, changes and removes
// users, their Maildirs, app passwords and aliases, keeping etc/users,
// etc/app-passwords, etc/aliases and ROOT/mail/ consistent with each other.
//
// Every operation checks its input before it changes anything, so a refused
// command leaves the root as it was. Failures are *Error values that carry
// the sysexits code mkuser exits with and a one-line message that says what
// to do:
//
//	64 Usage      wrong arguments
//	65 DataErr    a malformed address, label or password, an alias loop
//	67 NoUser     the user, alias, target or app password does not exist
//	73 CantCreat  the user, alias or label exists already, or the Maildir
//	              cannot be created
//	74 IOErr      reading or writing a file failed
//	75 TempFail   another mkuser holds the lock for more than 10 seconds
//	77 NoPerm     no permission to change the root
//	78 Config     etc/users, etc/app-passwords or etc/aliases has a
//	              malformed line (the message names file:line)
//
// Addresses of new users and aliases are normalised with package address:
// the domain in lower-case ASCII (IDNA A-labels), the local part lower case
// and limited to a-z, 0-9, '.', '-' and '_' (address.ValidUserLocal), since it
// names the Maildir directory ROOT/mail/DOMAIN/LOCAL.
package accounts

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// Folders are the Maildir++ folders every new user gets besides INBOX, with
// the names mail clients look for (RFC 6154 special-use roles).
var Folders = []string{"Drafts", "Sent", "Trash", "Junk", "Archive"}

// Error is a refused or failed operation.
type Error struct {
	Code int    // sysexits code
	Msg  string // one line: what is wrong (with the cause) and what to do
	Err  error  // the cause, if any, for errors.Is
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Code returns the exit code for err: 0 for nil, the Code of an *Error, and
// for other errors the code of their kind (see the package documentation).
func Code(err error) int {
	if err == nil {
		return sysexits.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return classify(err).(*Error).Code
}

// classify turns an error from the users, aliases or maildir packages into
// an *Error with a code and advice; *Errors pass unchanged.
func classify(err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	code, advice := sysexits.IOErr, "check the root directory"
	switch {
	case errors.Is(err, safefile.ErrLockTimeout):
		code, advice = sysexits.TempFail, "another mkuser is changing the same file; try again"
	case errors.Is(err, users.ErrMalformed), errors.Is(err, aliases.ErrMalformed):
		code, advice = sysexits.Config, "fix that line by hand, then try again"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		code, advice = sysexits.NoPerm, "run mkuser as the owner of the root"
	}
	return &Error{Code: code, Msg: err.Error() + "; " + advice, Err: err}
}
