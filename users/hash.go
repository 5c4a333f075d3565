package users

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-crypt/crypt/algorithm/shacrypt"
	"golang.org/x/crypto/bcrypt"
)

// bcryptCost is the cost of new hashes. Tests lower it to bcrypt.MinCost.
var bcryptCost = bcrypt.DefaultCost

// ErrUnsupportedScheme is wrapped by VerifyPassword's error for a hash in a
// scheme postkit cannot check.
var ErrUnsupportedScheme = errors.New("unsupported password scheme")

// HashPassword returns a Dovecot BLF-CRYPT hash of pw: "{BLF-CRYPT}$2y$...".
// bcrypt uses only the first 72 bytes of a password, so longer ones are
// refused rather than silently shortened.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("users: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return "", errors.New("users: password longer than 72 bytes (bcrypt ignores the rest)")
	}
	if err != nil {
		return "", fmt.Errorf("users: %w", err)
	}
	// Go writes $2a$, Dovecot (libxcrypt) $2y$; Go's bcrypt has none of the
	// old 8-bit bug that $2a$ vs $2y$ tells apart, so the hashes are the same.
	return "{BLF-CRYPT}$2y$" + strings.TrimPrefix(string(h), "$2a$"), nil
}

// VerifyPassword reports whether pw matches hash, a Dovecot password field
// with or without a {SCHEME} prefix (without one, Dovecot's passwd-file
// default CRYPT applies). Supported: BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT,
// and CRYPT with a $2a$, $2b$, $2y$, $5$ or $6$ hash. Any other scheme is an
// error wrapping ErrUnsupportedScheme. An empty hash matches nothing.
func VerifyPassword(hash, pw string) (bool, error) {
	ok, err := verify(hash, pw)
	if err != nil {
		return false, fmt.Errorf("users: %w", err)
	}
	return ok, nil
}

// verify is VerifyPassword with errors that do not name the package, so
// Authenticate can say whose password it was.
func verify(hash, pw string) (bool, error) {
	if hash == "" {
		return false, nil
	}
	scheme, h := "CRYPT", hash
	if strings.HasPrefix(hash, "{") {
		end := strings.IndexByte(hash, '}')
		if end < 0 {
			return false, errors.New("password hash starts with '{' but has no '}'")
		}
		scheme, h = strings.ToUpper(hash[1:end]), hash[end+1:]
	}
	switch {
	case (scheme == "BLF-CRYPT" || scheme == "CRYPT") && isBcrypt(h):
		err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s hash: %w", scheme, err)
		}
		return true, nil
	case scheme == "SHA512-CRYPT" && strings.HasPrefix(h, "$6$"),
		scheme == "SHA256-CRYPT" && strings.HasPrefix(h, "$5$"),
		scheme == "CRYPT" && (strings.HasPrefix(h, "$5$") || strings.HasPrefix(h, "$6$")):
		d, err := shacrypt.Decode(h)
		if err != nil {
			return false, fmt.Errorf("%s hash: %w", scheme, err)
		}
		ok, err := d.MatchAdvanced(pw)
		if err != nil {
			return false, fmt.Errorf("%s hash: %w", scheme, err)
		}
		return ok, nil
	}
	return false, fmt.Errorf("%w %s (postkit checks BLF-CRYPT, SHA512-CRYPT and SHA256-CRYPT); reset it with mkuser passwd",
		ErrUnsupportedScheme, schemeName(scheme, h))
}

func isBcrypt(h string) bool {
	return strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")
}

// schemeName describes a scheme for the error message: CRYPT hashes name
// their algorithm by their $id$ prefix.
func schemeName(scheme, h string) string {
	if scheme == "CRYPT" && strings.HasPrefix(h, "$") {
		if i := strings.IndexByte(h[1:], '$'); i >= 0 {
			return scheme + " with " + h[:i+2]
		}
	}
	return scheme
}
