// Package users reads and writes etc/users, the virtual users and their
// password hashes, and etc/app-passwords, and checks passwords against them.
//
// etc/users is a Dovecot passwd-file, one user per line, so that an admin can
// point Dovecot's passdb and userdb at it, or bring an existing one in:
//
//	user:password:uid:gid:gecos:home:shell:extra_fields
//
// postkit writes new users as
//
//	alice@example.org:{BLF-CRYPT}$2y$10$...::::::
//
// (the address, the hash with its scheme prefix, and six empty fields). Lines
// starting with '#' and blank lines are comments. Everything after the sixth
// ':' (the extra fields) may itself contain ':'. When postkit rewrites the
// file it keeps comments, blank lines and every line it did not change byte
// for byte, so fields it does not use (uid, home, extra fields, ...) survive.
// Addresses are compared case-insensitively; one address may appear once.
//
// etc/app-passwords holds app passwords, several per user, one per line:
//
//	alice@example.org:{BLF-CRYPT}$2y$10$...:phone:1767225600
//
// (address, hash, a label without ':', creation time in Unix seconds).
//
// Writers go through Update and UpdateApp, which hold an flock on
// PATH.lock while they read, change and atomically replace the file, so
// concurrent mkuser runs never lose each other's changes and readers (the
// servers, which only Load) never see a partial file.
package users

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode"
)

// ErrExists is wrapped by errors for an address (or app password label) that
// is already there.
var ErrExists = errors.New("already exists")

// ErrNotFound is wrapped by errors for an address (or app password label)
// that is not there.
var ErrNotFound = errors.New("not found")

// ErrMalformed is wrapped by errors for lines of etc/users or
// etc/app-passwords that cannot be parsed; the error names file:line.
var ErrMalformed = errors.New("malformed line")

// Entry is one user of the passwd-file.
type Entry struct {
	Address string // user name: the full address, e.g. alice@example.org
	Hash    string // password hash with scheme prefix, e.g. {BLF-CRYPT}$2y$10$...
	UID     string // the remaining passwd-file fields, kept as written
	GID     string
	Gecos   string
	Home    string
	Shell   string
	Extra   string // Dovecot extra fields (may contain ':')
}

// Domain returns the lower-cased part after the last '@' of the address, or
// "" if there is none.
func (e Entry) Domain() string { return domainOf(e.Address) }

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || i == len(addr)-1 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// entryFields is how many fields postkit writes for a new user.
const entryFields = 8

// line is one line of the file: a comment or blank line (e == nil), or a
// user. raw is the line as read (without '\n'); it is written back unchanged
// until the entry changes. New and changed entries have no raw (a user's line
// is never empty) and are written from their fields.
type line struct {
	raw     string
	e       *Entry
	nfields int // fields on the line as read, so a rebuilt line keeps its shape
}

// DB is the contents of etc/users.
type DB struct {
	lines []line
	index map[string]int // lower-cased address -> position in lines
}

// Load reads the passwd-file at path. A missing file is an empty DB.
func Load(path string) (*DB, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Parse(nil, path)
	}
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return Parse(data, path)
}

// Parse parses the contents of a passwd-file; name is used in errors.
func Parse(data []byte, name string) (*DB, error) {
	db := &DB{index: map[string]int{}}
	for n, raw := range splitLines(data) {
		text := strings.TrimSuffix(raw, "\r")
		if isComment(text) {
			db.lines = append(db.lines, line{raw: raw})
			continue
		}
		// Dovecot splits the first seven fields at ':' and keeps the rest,
		// colons and all, as the extra fields.
		f := strings.SplitN(text, ":", entryFields)
		if len(f) < 2 {
			return nil, fmt.Errorf("users: %s:%d: %w: want address:hash:..., found no ':'", name, n+1, ErrMalformed)
		}
		if err := checkAddress(f[0]); err != nil {
			return nil, fmt.Errorf("users: %s:%d: %w: %w", name, n+1, ErrMalformed, err)
		}
		key := strings.ToLower(f[0])
		if prev, dup := db.index[key]; dup {
			// While parsing, lines and file lines correspond one to one.
			return nil, fmt.Errorf("users: %s:%d: %w: %s is already on line %d", name, n+1, ErrMalformed, f[0], prev+1)
		}
		f = append(f, make([]string, entryFields-len(f))...)
		e := &Entry{Address: f[0], Hash: f[1], UID: f[2], GID: f[3], Gecos: f[4], Home: f[5], Shell: f[6], Extra: f[7]}
		db.index[key] = len(db.lines)
		db.lines = append(db.lines, line{raw: raw, e: e, nfields: len(strings.SplitN(text, ":", entryFields))})
	}
	return db, nil
}

// splitLines splits data at '\n'; a final line without '\n' counts.
func splitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func isComment(text string) bool {
	t := strings.TrimSpace(text)
	return t == "" || t[0] == '#'
}

// checkAddress checks the user name field: not empty, and no white space or
// control characters (which no address contains and which would make the
// file ambiguous to read by eye).
func checkAddress(a string) error {
	if a == "" {
		return errors.New("empty user name")
	}
	for _, r := range a {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ':' {
			return fmt.Errorf("user name %q contains white space, ':' or a control character", a)
		}
	}
	return nil
}

// Lookup returns the user with this address (compared case-insensitively).
func (db *DB) Lookup(address string) (Entry, bool) {
	i, ok := db.index[strings.ToLower(address)]
	if !ok {
		return Entry{}, false
	}
	return *db.lines[i].e, true
}

// Exists reports whether the address is a user.
func (db *DB) Exists(address string) bool {
	_, ok := db.index[strings.ToLower(address)]
	return ok
}

// All returns every user, sorted by lower-cased address.
func (db *DB) All() []Entry {
	var all []Entry
	for _, l := range db.lines {
		if l.e != nil {
			all = append(all, *l.e)
		}
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Address) < strings.ToLower(all[j].Address) })
	return all
}

// Domains returns the lower-cased domains of all users, sorted, each once.
// Users without a domain (plain Dovecot user names) have none.
func (db *DB) Domains() []string {
	seen := map[string]bool{}
	var ds []string
	for _, l := range db.lines {
		if l.e == nil {
			continue
		}
		if d := l.e.Domain(); d != "" && !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	sort.Strings(ds)
	return ds
}

// Add appends a new user. It fails with ErrExists if the address is there in
// any case, and if a field would break the line format.
func (db *DB) Add(e Entry) error {
	if err := checkAddress(e.Address); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	for _, f := range []string{e.Hash, e.UID, e.GID, e.Gecos, e.Home, e.Shell} {
		if strings.ContainsAny(f, ":\r\n") {
			return fmt.Errorf("users: field %q of %s contains ':' or a line break", f, e.Address)
		}
	}
	if strings.ContainsAny(e.Extra, "\r\n") {
		return fmt.Errorf("users: extra fields of %s contain a line break", e.Address)
	}
	key := strings.ToLower(e.Address)
	if _, ok := db.index[key]; ok {
		return fmt.Errorf("users: %s: %w", e.Address, ErrExists)
	}
	db.index[key] = len(db.lines)
	db.lines = append(db.lines, line{e: &e, nfields: entryFields})
	return nil
}

// SetHash replaces the password hash of a user; the other fields stay.
func (db *DB) SetHash(address, hash string) error {
	if strings.ContainsAny(hash, ":\r\n") {
		return fmt.Errorf("users: hash contains ':' or a line break")
	}
	i, ok := db.index[strings.ToLower(address)]
	if !ok {
		return fmt.Errorf("users: %s: %w", address, ErrNotFound)
	}
	db.lines[i].e.Hash = hash
	db.lines[i].raw = ""
	return nil
}

// Remove deletes a user's line.
func (db *DB) Remove(address string) error {
	i, ok := db.index[strings.ToLower(address)]
	if !ok {
		return fmt.Errorf("users: %s: %w", address, ErrNotFound)
	}
	db.lines = append(db.lines[:i], db.lines[i+1:]...)
	for k, j := range db.index {
		if j > i {
			db.index[k] = j - 1
		}
	}
	delete(db.index, strings.ToLower(address))
	return nil
}

// Marshal returns the file contents: unchanged lines as they were read,
// changed and new users in passwd-file form, each line ending in '\n'.
func (db *DB) Marshal() []byte {
	var b strings.Builder
	for _, l := range db.lines {
		if l.e == nil || l.raw != "" {
			b.WriteString(l.raw)
		} else {
			e := l.e
			f := []string{e.Address, e.Hash, e.UID, e.GID, e.Gecos, e.Home, e.Shell, e.Extra}
			n := l.nfields
			for i := n; i < len(f); i++ {
				if f[i] != "" {
					n = i + 1
				}
			}
			b.WriteString(strings.Join(f[:n], ":"))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Update changes the file at path under its lock: it takes an flock on
// path+".lock" (waiting up to LockTimeout), reads the file afresh, calls fn,
// and if fn returns nil atomically replaces the file with the result. An
// error from fn is returned unchanged and nothing is written.
func Update(path string, fn func(db *DB) error) error {
	return updateFile(path, func(old []byte) ([]byte, error) {
		db, err := Parse(old, path)
		if err != nil {
			return nil, err
		}
		if err := fn(db); err != nil {
			return nil, err
		}
		return db.Marshal(), nil
	})
}
