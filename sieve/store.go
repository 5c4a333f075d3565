package sieve

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/postkit/postkit/safefile"
)

// The scripts of a user live in the user's home, which for postkit is the
// user's Maildir ROOT/mail/DOMAIN/LOCAL/, in Pigeonhole's layout
// (sieve = file:~/sieve;active=~/.dovecot.sieve):
//
//	HOME/sieve/NAME.sieve   one file per script
//	HOME/.dovecot.sieve     symbolic link "sieve/NAME.sieve" to the active one
//
// No link means no filtering. For scripts left by Dovecot, a regular file
// .dovecot.sieve is the active script too.
const (
	ScriptsDir = "sieve"
	ActiveLink = ".dovecot.sieve"
	ScriptExt  = ".sieve"
)

// ErrNoScript is returned for a script name that does not exist.
var ErrNoScript = errors.New("sieve: no such script")

// ValidScriptName reports whether name can name a script: 1 to 64
// letters, digits, "_", "-" and ".", not starting with ".", so that a name
// is always one harmless path element.
func ValidScriptName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// ScriptPath returns the file of the script name in home.
func ScriptPath(home, name string) (string, error) {
	if !ValidScriptName(name) {
		return "", fmt.Errorf("sieve: invalid script name %q", name)
	}
	return filepath.Join(home, ScriptsDir, name+ScriptExt), nil
}

// ActiveScript returns the name of home's active script, "" when there is
// none. A link that points anywhere but to a script of home is an error.
func ActiveScript(home string) (string, error) {
	link := filepath.Join(home, ActiveLink)
	fi, err := os.Lstat(link)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sieve: %w", err)
	}
	if fi.Mode().IsRegular() {
		return ActiveLink, nil
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return "", fmt.Errorf("sieve: %s is neither a link nor a file", link)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("sieve: %w", err)
	}
	if filepath.IsAbs(target) {
		if rel, err := filepath.Rel(home, target); err == nil {
			target = rel
		}
	}
	dir, file := filepath.Split(filepath.Clean(target))
	name := strings.TrimSuffix(file, ScriptExt)
	if filepath.Clean(dir) != ScriptsDir || !strings.HasSuffix(file, ScriptExt) || !ValidScriptName(name) {
		return "", fmt.Errorf("sieve: %s points to %q, not to a script in %s/", link, target, ScriptsDir)
	}
	return name, nil
}

// LoadActive reads, parses and checks home's active script. With no active
// script (or a link to a script that is gone) it returns nil and no error:
// the caller delivers to INBOX.
func LoadActive(home string) (*Script, string, error) {
	name, err := ActiveScript(home)
	if err != nil || name == "" {
		return nil, "", err
	}
	path := filepath.Join(home, ActiveLink)
	if name != ActiveLink {
		path = filepath.Join(home, ScriptsDir, name+ScriptExt)
	}
	src, err := readScript(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, name, err
	}
	s, err := Parse(src)
	return s, name, err
}

// readScript reads a regular file, never through a symbolic link, of at most
// MaxScriptSize bytes.
func readScript(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("sieve: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sieve: %s is not a regular file", path)
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxScriptSize+1))
	if err != nil {
		return nil, fmt.Errorf("sieve: %w", err)
	}
	if len(src) > MaxScriptSize {
		return nil, fmt.Errorf("sieve: %s is larger than %d bytes", path, MaxScriptSize)
	}
	return src, nil
}

// ReadScript returns the text of the script name in home.
func ReadScript(home, name string) ([]byte, error) {
	path, err := ScriptPath(home, name)
	if err != nil {
		return nil, err
	}
	src, err := readScript(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoScript, name)
	}
	return src, err
}

// SaveScript checks src and stores it as the script name in home,
// atomically and durably; a script that does not check is refused with the
// *Error that says why.
func SaveScript(home, name string, src []byte) error {
	path, err := ScriptPath(home, name)
	if err != nil {
		return err
	}
	if _, err := Parse(src); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sieve: %w", err)
	}
	return safefile.WriteFile(path, src, 0o600)
}

// Activate makes the script name home's active script, or with name ""
// deactivates every script. The link is replaced atomically.
func Activate(home, name string) error {
	link := filepath.Join(home, ActiveLink)
	if name == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sieve: %w", err)
		}
		return safefile.SyncDir(home)
	}
	path, err := ScriptPath(home, name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: %s", ErrNoScript, name)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("sieve: %w", err)
	}
	tmp := filepath.Join(home, safefile.TempPrefix+hex.EncodeToString(b[:]))
	if err := os.Symlink(filepath.Join(ScriptsDir, name+ScriptExt), tmp); err != nil {
		return fmt.Errorf("sieve: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sieve: %w", err)
	}
	return safefile.SyncDir(home)
}

// ListScripts returns the names of the scripts in home.
func ListScripts(home string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(home, ScriptsDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sieve: %w", err)
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ScriptExt)
		if ok && e.Type().IsRegular() && ValidScriptName(name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// DeleteScript removes the script name from home. The active script cannot
// be deleted (as in ManageSieve, RFC 5804 §2.10): deactivate it first.
func DeleteScript(home, name string) error {
	path, err := ScriptPath(home, name)
	if err != nil {
		return err
	}
	active, err := ActiveScript(home)
	if err != nil {
		return err
	}
	if active == name {
		return fmt.Errorf("sieve: script %s is active", name)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNoScript, name)
		}
		return fmt.Errorf("sieve: %w", err)
	}
	return safefile.SyncDir(filepath.Dir(path))
}
