package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/aliases"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// ParseNewAddress parses the address of a new user or alias: local part
// lower-cased and checked with address.ValidUserLocal, domain normalised and
// not an address literal.
func ParseNewAddress(s string) (address.Address, error) {
	a, err := address.Parse(s)
	if err != nil {
		return a, &Error{Code: sysexits.DataErr, Err: err,
			Msg: fmt.Sprintf("%q is not a valid address (%v); give local@domain", s, err)}
	}
	a.Local = strings.ToLower(a.Local)
	if err := address.ValidUserLocal(a.Local); err != nil {
		return a, &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%v; choose another name", err)}
	}
	if err := address.ValidDomain(a.Domain); err != nil {
		return a, &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%v; give a domain name", err)}
	}
	return a, nil
}

// findUser looks up s in db: as written, else by its normalised key, so that
// "Alice@Bücher.example" finds "alice@xn--bcher-kva.example" and the other
// way round. Plain login names (Dovecot users without a domain) are found as
// written.
func findUser(db *users.DB, s string) (users.Entry, bool) {
	if e, ok := db.Lookup(s); ok {
		return e, true
	}
	a, err := address.Parse(s)
	if err != nil {
		return users.Entry{}, false
	}
	key := a.Key()
	for _, e := range db.All() {
		if b, err := address.Parse(e.Address); err == nil && b.Key() == key {
			return e, true
		}
	}
	return users.Entry{}, false
}

// existingUser finds the user s or returns the error for an unknown one.
func existingUser(db *users.DB, s string) (users.Entry, error) {
	if e, ok := findUser(db, s); ok {
		return e, nil
	}
	if _, err := address.Parse(s); err != nil && strings.Contains(s, "@") {
		return users.Entry{}, &Error{Code: sysexits.DataErr, Err: err,
			Msg: fmt.Sprintf("%q is not a valid address (%v); give local@domain", s, err)}
	}
	return users.Entry{}, errorf(sysexits.NoUser, "no user %s; list them with mkuser list, or add it with mkuser add", s)
}

// loadUser reads etc/users and finds the user s.
func loadUser(root control.Root, s string) (users.Entry, error) {
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return users.Entry{}, classify(err)
	}
	return existingUser(db, s)
}

// userMaildir returns the Maildir of a user entry, where package resolve
// delivers its mail, or "" for a login name that is not an address.
func userMaildir(root control.Root, e users.Entry) string {
	a, err := address.Parse(e.Address)
	if err != nil || address.IsLiteral(a.Domain) {
		return ""
	}
	dir, err := root.UserMaildir(address.FoldLocal(a.Local), a.Domain)
	if err != nil {
		return ""
	}
	return dir
}

func checkPassword(pw string) error {
	if pw == "" {
		return errorf(sysexits.DataErr, "empty password; give one line on standard input, or use --random")
	}
	return nil
}

func hashPassword(pw string) (string, error) {
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	h, err := users.HashPassword(pw)
	if err != nil {
		return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%v; choose another password", err)}
	}
	return h, nil
}

// Added describes a new user.
type Added struct {
	Address string // as written to etc/users
	Maildir string
	Reused  bool // the Maildir was there already (the user was deleted without --purge)
}

// AddUser creates the user addr with password: its line in etc/users and
// its Maildir++ with Folders. An existing Maildir (left by a delete without
// --purge) is kept with its mail. The address must not be a user or an alias.
func AddUser(root control.Root, addr, password string) (Added, error) {
	a, err := ParseNewAddress(addr)
	if err != nil {
		return Added{}, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return Added{}, err
	}
	dir, err := root.UserMaildir(a.Local, a.Domain)
	if err != nil {
		return Added{}, &Error{Code: sysexits.DataErr, Err: err, Msg: err.Error()}
	}
	tab, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return Added{}, classify(err)
	}
	if _, ok := tab.Lookup(a.String()); ok {
		return Added{}, errorf(sysexits.CantCreat, "%s is an alias; remove it first with mkuser alias del %s", a, a)
	}
	res := Added{Address: a.String(), Maildir: dir}
	created := false
	err = users.Update(root.Etc("users"), func(db *users.DB) error {
		if e, ok := findUser(db, res.Address); ok {
			return errorf(sysexits.CantCreat, "%s exists already; change its password with mkuser passwd %s", e.Address, e.Address)
		}
		if _, err := os.Stat(dir); err == nil {
			res.Reused = true
		}
		if err := maildir.Create(dir, Folders...); err != nil {
			return &Error{Code: sysexits.CantCreat, Err: err, Msg: fmt.Sprintf("cannot create the Maildir: %v", err)}
		}
		created = !res.Reused
		return db.Add(users.Entry{Address: res.Address, Hash: hash})
	})
	if err != nil {
		if created {
			// Leave nothing behind: the user was not added.
			os.RemoveAll(dir)
			os.Remove(filepath.Dir(dir))
		}
		return Added{}, classify(err)
	}
	return res, nil
}

// SetPassword replaces the password of the user addr.
func SetPassword(root control.Root, addr, password string) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	err = users.Update(root.Etc("users"), func(db *users.DB) error {
		e, err := existingUser(db, addr)
		if err != nil {
			return err
		}
		return db.SetHash(e.Address, hash)
	})
	return classify(err)
}

// Deleted describes a removed user.
type Deleted struct {
	Address      string
	Maildir      string   // "" if the user had none
	Purged       bool     // the Maildir was removed
	AppPasswords int      // how many app passwords were revoked
	Aliases      []string // aliases that still list the user as a target
}

// DeleteUser removes the user addr from etc/users and its app passwords. Its
// Maildir stays unless purge is set. Aliases that point to the user are left
// alone and listed in the result, so the caller can warn about them.
func DeleteUser(root control.Root, addr string, purge bool) (Deleted, error) {
	// Read the other files first: a malformed one refuses the command
	// before anything changed.
	if _, err := users.LoadApp(root.Etc("app-passwords")); err != nil {
		return Deleted{}, classify(err)
	}
	tab, err := aliases.Load(root.Etc("aliases"))
	if err != nil {
		return Deleted{}, classify(err)
	}
	var res Deleted
	err = users.Update(root.Etc("users"), func(db *users.DB) error {
		e, err := existingUser(db, addr)
		if err != nil {
			return err
		}
		res.Address, res.Maildir = e.Address, userMaildir(root, e)
		return db.Remove(e.Address)
	})
	if err != nil {
		return Deleted{}, classify(err)
	}
	err = users.UpdateApp(root.Etc("app-passwords"), func(a *users.AppPasswords) error {
		res.AppPasswords = a.RevokeAll(res.Address)
		return nil
	})
	if err != nil {
		return res, classify(err)
	}
	res.Aliases = aliasesTo(tab, res.Address)
	if res.Maildir != "" {
		if _, err := os.Stat(res.Maildir); errors.Is(err, os.ErrNotExist) {
			res.Maildir = ""
		}
	}
	if purge && res.Maildir != "" {
		if err := os.RemoveAll(res.Maildir); err != nil {
			return res, classify(err)
		}
		res.Purged = true
	}
	return res, nil
}

// aliasesTo returns the keys of aliases that list addr as a target.
func aliasesTo(tab *aliases.Table, addr string) []string {
	want := keyOf(addr)
	var keys []string
	for _, al := range tab.All() {
		for _, t := range al.Targets {
			if keyOf(t) == want {
				keys = append(keys, al.Key)
				break
			}
		}
	}
	return keys
}

// keyOf returns the lookup key of an address, or the address lower-cased if
// it does not parse.
func keyOf(s string) string {
	if a, err := address.Parse(s); err == nil {
		return a.Key()
	}
	return strings.ToLower(s)
}

// ListUsers returns the addresses of all users, or of those in domain,
// sorted.
func ListUsers(root control.Root, domain string) ([]string, error) {
	want, err := parseDomainFilter(domain)
	if err != nil {
		return nil, err
	}
	db, err := users.Load(root.Etc("users"))
	if err != nil {
		return nil, classify(err)
	}
	var list []string
	for _, e := range db.All() {
		if want == "" || domainOf(e.Address) == want {
			list = append(list, e.Address)
		}
	}
	return list, nil
}

// parseDomainFilter normalises the DOMAIN argument of the list commands.
func parseDomainFilter(domain string) (string, error) {
	if domain == "" {
		return "", nil
	}
	d, err := address.ParseDomain(strings.TrimPrefix(domain, "@"))
	if err != nil {
		return "", &Error{Code: sysexits.DataErr, Err: err, Msg: fmt.Sprintf("%q is not a domain (%v)", domain, err)}
	}
	return d, nil
}

// domainOf returns the normalised domain of an address or alias key, or ""
// if it has none.
func domainOf(s string) string {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return ""
	}
	if d, err := address.ParseDomain(s[i+1:]); err == nil {
		return d
	}
	return strings.ToLower(s[i+1:])
}

// Check reports whether password is the password or an app password of the
// user addr, as a login would (users.Authenticate).
func Check(root control.Root, addr, password string) (bool, error) {
	e, err := loadUser(root, addr)
	if err != nil {
		return false, err
	}
	ok, err := users.Authenticate(root, e.Address, password)
	if errors.Is(err, users.ErrUnsupportedScheme) {
		return false, &Error{Code: sysexits.DataErr, Err: err, Msg: err.Error()}
	}
	if err != nil {
		return false, classify(err)
	}
	return ok, nil
}
