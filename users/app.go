package users

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// AppPassword is one app password of a user. The hash stays inside the
// package; Authenticate checks it.
type AppPassword struct {
	Address string
	Label   string    // what the user calls it ("phone", "laptop")
	Created time.Time // when it was made (whole seconds)
	hash    string
}

type appLine struct {
	raw string // as read; empty for new lines
	p   *AppPassword
}

// AppPasswords is the contents of etc/app-passwords.
type AppPasswords struct {
	lines []appLine
}

// MaxLabel is the longest app password label, in bytes.
const MaxLabel = 64

// LoadApp reads etc/app-passwords at path. A missing file has none.
func LoadApp(path string) (*AppPasswords, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ParseApp(nil, path)
	}
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return ParseApp(data, path)
}

// ParseApp parses the contents of an app-passwords file; name is used in
// errors.
func ParseApp(data []byte, name string) (*AppPasswords, error) {
	a := &AppPasswords{}
	seen := map[[2]string]int{}
	for n, raw := range splitLines(data) {
		text := strings.TrimSuffix(raw, "\r")
		if isComment(text) {
			a.lines = append(a.lines, appLine{raw: raw})
			continue
		}
		f := strings.Split(text, ":")
		if len(f) != 4 {
			return nil, fmt.Errorf("users: %s:%d: %w: want address:hash:label:created, found %d fields", name, n+1, ErrMalformed, len(f))
		}
		if err := checkAddress(f[0]); err != nil {
			return nil, fmt.Errorf("users: %s:%d: %w: %w", name, n+1, ErrMalformed, err)
		}
		if err := CheckLabel(f[2]); err != nil {
			return nil, fmt.Errorf("users: %s:%d: %w: %w", name, n+1, ErrMalformed, err)
		}
		secs, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || secs < 0 {
			return nil, fmt.Errorf("users: %s:%d: %w: creation time %q is not Unix seconds", name, n+1, ErrMalformed, f[3])
		}
		key := [2]string{strings.ToLower(f[0]), f[2]}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("users: %s:%d: %w: %s has label %q already on line %d", name, n+1, ErrMalformed, f[0], f[2], prev)
		}
		seen[key] = n + 1
		p := &AppPassword{Address: f[0], hash: f[1], Label: f[2], Created: time.Unix(secs, 0)}
		a.lines = append(a.lines, appLine{raw: raw, p: p})
	}
	return a, nil
}

// CheckLabel checks an app password label: 1 to MaxLabel bytes of printable
// characters other than ':' (the field separator).
func CheckLabel(label string) error {
	if label == "" || len(label) > MaxLabel {
		return fmt.Errorf("app password label must be 1 to %d bytes", MaxLabel)
	}
	for _, r := range label {
		if r == ':' || !unicode.IsPrint(r) {
			return fmt.Errorf("app password label %q contains ':' or a non-printable character", label)
		}
	}
	return nil
}

// Add makes a new app password for address under label and returns it in
// plain text; only its hash is kept. The label must be new for that address.
func (a *AppPasswords) Add(address, label string) (string, error) {
	if err := checkAddress(address); err != nil {
		return "", fmt.Errorf("users: %w", err)
	}
	if err := CheckLabel(label); err != nil {
		return "", fmt.Errorf("users: %w", err)
	}
	if a.find(address, label) >= 0 {
		return "", fmt.Errorf("users: app password %q of %s: %w", label, address, ErrExists)
	}
	pw, err := GeneratePassword()
	if err != nil {
		return "", err
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return "", err
	}
	p := &AppPassword{Address: address, Label: label, Created: time.Unix(time.Now().Unix(), 0), hash: hash}
	a.lines = append(a.lines, appLine{p: p})
	return pw, nil
}

// List returns the app passwords of address in the order they were made.
func (a *AppPasswords) List(address string) []AppPassword {
	var ps []AppPassword
	for _, l := range a.lines {
		if l.p != nil && strings.EqualFold(l.p.Address, address) {
			ps = append(ps, *l.p)
		}
	}
	return ps
}

// All returns every app password in file order.
func (a *AppPasswords) All() []AppPassword {
	var ps []AppPassword
	for _, l := range a.lines {
		if l.p != nil {
			ps = append(ps, *l.p)
		}
	}
	return ps
}

// Revoke deletes the app password of address with this label.
func (a *AppPasswords) Revoke(address, label string) error {
	i := a.find(address, label)
	if i < 0 {
		return fmt.Errorf("users: app password %q of %s: %w", label, address, ErrNotFound)
	}
	a.lines = append(a.lines[:i], a.lines[i+1:]...)
	return nil
}

// RevokeAll deletes every app password of address and returns how many
// there were.
func (a *AppPasswords) RevokeAll(address string) int {
	kept := a.lines[:0]
	n := 0
	for _, l := range a.lines {
		if l.p != nil && strings.EqualFold(l.p.Address, address) {
			n++
			continue
		}
		kept = append(kept, l)
	}
	a.lines = kept
	return n
}

func (a *AppPasswords) find(address, label string) int {
	for i, l := range a.lines {
		if l.p != nil && l.p.Label == label && strings.EqualFold(l.p.Address, address) {
			return i
		}
	}
	return -1
}

// Marshal returns the file contents; unchanged lines are kept as read.
func (a *AppPasswords) Marshal() []byte {
	var b strings.Builder
	for _, l := range a.lines {
		if l.p == nil || l.raw != "" {
			b.WriteString(l.raw)
		} else {
			fmt.Fprintf(&b, "%s:%s:%s:%d", l.p.Address, l.p.hash, l.p.Label, l.p.Created.Unix())
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// UpdateApp changes etc/app-passwords at path under its lock, with the same
// rules as Update.
func UpdateApp(path string, fn func(a *AppPasswords) error) error {
	return updateFile(path, func(old []byte) ([]byte, error) {
		a, err := ParseApp(old, path)
		if err != nil {
			return nil, err
		}
		if err := fn(a); err != nil {
			return nil, err
		}
		return a.Marshal(), nil
	})
}

// GeneratePassword returns a random password of four groups of four
// lowercase letters ("abcd-efgh-ijkl-mnop", about 75 bits), easy to type on
// a phone.
func GeneratePassword() (string, error) {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	var buf [1]byte
	for i := 0; i < 16; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("users: random password: %w", err)
		}
		// 234 = 9*26: rejecting larger bytes keeps every letter equally likely.
		if buf[0] >= 234 {
			continue
		}
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(letters[buf[0]%26])
		i++
	}
	return b.String(), nil
}
