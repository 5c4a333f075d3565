// Package control knows the layout of a postkit root directory and reads its
// control files.
//
// Every program takes --root DIR (env POSTKIT_ROOT, default /var/lib/postkit).
// Under it:
//
//	etc/                 control files, one setting per file (qmail style)
//	etc/users            users and password hashes (Dovecot passwd-file format)
//	etc/app-passwords    app passwords, several per user
//	etc/aliases          aliases and catch-alls
//	etc/tls/cert.pem     TLS certificate chain (PEM)
//	etc/tls/key.pem      TLS private key (PEM)
//	mail/DOMAIN/LOCAL/   one Maildir++ per virtual user
//	spool/               the mail queue (package spool)
//
// A control file holds one setting; a missing file means the documented
// default, so a new root needs no configuration at all. Lines starting with
// '#' and blank lines are ignored. Flags and environment variables override
// control files; the programs do that before asking this package.
// man/postkit-control.5 lists every control file with its default and the
// programs that read it.
//
// Long-running programs that read a control file at every session read it
// through a Cache, which answers as Root does but reads a file again only
// when its Stamp (inode, size, modification and change time, from one
// stat(2)) has changed, or when the file was changed less than RacyWindow
// before the last read: file times are coarse, so a same-size rewrite in
// place within one tick keeps the stamp (git's "racily clean" rule).
// Package resolve's cache of etc/users, etc/aliases and etc/domains uses the
// same Stamp.
package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// DefaultRoot is the root directory when neither --root nor POSTKIT_ROOT is given.
const DefaultRoot = "/var/lib/postkit"

// Root is a postkit root directory.
type Root string

// Etc returns the path of the control file name (which may contain '/', as in
// "tls/cert.pem"; it always comes from the program, never from the network).
func (r Root) Etc(name string) string { return filepath.Join(string(r), "etc", name) }

// MailDir returns the directory that holds every domain's Maildirs.
func (r Root) MailDir() string { return filepath.Join(string(r), "mail") }

// SpoolDir returns the queue's directory.
func (r Root) SpoolDir() string { return filepath.Join(string(r), "spool") }

// UserMaildir returns the Maildir of the virtual user local@domain. Both parts
// must be safe path elements (see SafeElement): an address can never name a
// path outside ROOT/mail/DOMAIN/.
func (r Root) UserMaildir(local, domain string) (string, error) {
	if err := SafeElement(domain); err != nil {
		return "", fmt.Errorf("control: domain %q: %w", domain, err)
	}
	if err := SafeElement(local); err != nil {
		return "", fmt.Errorf("control: local part %q: %w", local, err)
	}
	return filepath.Join(r.MailDir(), domain, local), nil
}

// ErrUnsafe is wrapped by errors for names that cannot be used as a path element.
var ErrUnsafe = errors.New("not a safe path element")

// SafeElement checks that s can be used as one element of a path: not empty,
// not starting with '.', no '/', NUL, control characters or backslash, and at
// most 255 bytes.
func SafeElement(s string) error {
	if s == "" || len(s) > 255 || s[0] == '.' {
		return ErrUnsafe
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return ErrUnsafe
		}
	}
	return nil
}

// Lines returns the meaningful lines of control file name: trimmed, without
// blank lines and '#' comments. A missing file gives no lines and no error.
func (r Root) Lines(name string) ([]string, error) {
	data, err := os.ReadFile(r.Etc(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("control: %s: %w", r.Etc(name), err)
	}
	return lines, nil
}

// String returns the first meaningful line of control file name, or def when
// the file is missing or has none.
func (r Root) String(name, def string) (string, error) {
	lines, err := r.Lines(name)
	return firstLine(lines, err, def)
}

// Int returns the number in control file name, or def.
func (r Root) Int(name string, def int64) (int64, error) {
	s, err := r.String(name, "")
	return wholeNumber(r, name, s, err, def)
}

// Size returns the byte count in control file name, which may carry a K, M or
// G suffix (powers of 1024), or def.
func (r Root) Size(name string, def int64) (int64, error) {
	s, err := r.String(name, "")
	return byteCount(r, name, s, err, def)
}

// firstLine is String's rule, shared by Root and Cache: the first of the
// lines Lines gave, else def.
func firstLine(lines []string, err error, def string) (string, error) {
	if err != nil || len(lines) == 0 {
		return def, err
	}
	return lines[0], nil
}

// wholeNumber is Int's rule, shared by Root and Cache: s, the first line
// of control file name in r ("" for none), as a number, else def.
func wholeNumber(r Root, name, s string, err error, def int64) (int64, error) {
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return def, fmt.Errorf("control: %s: %q is not a whole number", r.Etc(name), s)
	}
	return n, nil
}

// byteCount is Size's rule, shared by Root and Cache: s, the first line of
// control file name in r ("" for none), as a size, else def.
func byteCount(r Root, name, s string, err error, def int64) (int64, error) {
	if err != nil || s == "" {
		return def, err
	}
	n, err := ParseSize(s)
	if err != nil {
		return def, fmt.Errorf("control: %s: %w", r.Etc(name), err)
	}
	return n, nil
}

// ParseSize parses a byte count with an optional K, M or G suffix. An
// empty string is an error, not zero: a flag given as --limit= is a mistake.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("an empty string is not a size (bytes, or a number with K, M or G)")
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with K, M or G)", s)
	}
	return n * mult, nil
}

// Hostname returns the host name this server uses in greetings, Received
// headers and Maildir file names: flag (if not empty), else etc/hostname, else
// the system's host name.
func (r Root) Hostname(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	h, err := r.String("hostname", "")
	if err != nil || h != "" {
		return h, err
	}
	h, err = os.Hostname()
	if err != nil {
		return "", fmt.Errorf("control: no etc/hostname and no system host name: %w", err)
	}
	return h, nil
}

// RootFlag is the --root flag every program takes.
func RootFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "root",
		Usage:   "postkit root directory (etc/, mail/, spool/)",
		EnvVars: []string{"POSTKIT_ROOT"},
		Value:   DefaultRoot,
	}
}

// HostnameFlag is the --hostname flag: the name this server calls itself.
func HostnameFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "hostname",
		Usage:   "host name for greetings and headers (default: etc/hostname, else the system's)",
		EnvVars: []string{"POSTKIT_HOSTNAME"},
	}
}

// FromContext returns the root named by --root.
func FromContext(c *cli.Context) Root { return Root(c.String("root")) }
