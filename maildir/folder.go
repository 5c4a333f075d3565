package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidName is wrapped by the errors for mailbox names that cannot be
// mapped to a folder directory.
var ErrInvalidName = errors.New("maildir: invalid mailbox name")

// Delimiter is the IMAP hierarchy delimiter of folder names.
const Delimiter = "/"

// maxDirName is NAME_MAX on Linux and the BSDs: a folder's whole encoded name
// is one path element.
const maxDirName = 255

// IsInbox reports whether an IMAP mailbox name is INBOX, which RFC 3501 §5.1
// makes case-insensitive.
func IsInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

// Folder returns the directory of the IMAP mailbox name under the root
// Maildir root. See the package documentation for the mapping and the names
// it refuses; refusals wrap ErrInvalidName.
func (root Dir) Folder(name string) (Dir, error) {
	elem, err := FolderDirName(name)
	if err != nil {
		return "", err
	}
	if elem == "" {
		return root, nil
	}
	return Dir(filepath.Join(string(root), elem)), nil
}

// FolderDirName returns the name of the directory that holds the IMAP
// mailbox name in a Maildir++ root: "" for INBOX, ".Sent" for "Sent",
// ".a.b" for "a/b", ".Entw&APw-rfe" for "Entwürfe".
func FolderDirName(name string) (string, error) {
	if IsInbox(name) {
		return "", nil
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	parts := strings.Split(name, Delimiter)
	for i, p := range parts {
		parts[i] = encodeUTF7(p)
	}
	elem := "." + strings.Join(parts, ".")
	if len(elem) > maxDirName {
		return "", fmt.Errorf("%w %q: longer than %d bytes on disk", ErrInvalidName, name, maxDirName)
	}
	return elem, nil
}

// FolderName is the inverse of FolderDirName: it returns the IMAP name of the
// folder directory elem (".a.b" gives "a/b"). Directory names that
// FolderDirName would not have produced are refused, so that every name it
// returns leads back to the same directory.
func FolderName(elem string) (string, error) {
	if len(elem) < 2 || elem[0] != '.' {
		return "", fmt.Errorf("%w: directory %q is not a Maildir++ folder", ErrInvalidName, elem)
	}
	parts := strings.Split(elem[1:], ".")
	for i, p := range parts {
		dec, err := decodeUTF7(p)
		if err != nil {
			return "", fmt.Errorf("%w: directory %q: %w", ErrInvalidName, elem, err)
		}
		parts[i] = dec
	}
	name := strings.Join(parts, Delimiter)
	if back, err := FolderDirName(name); err != nil || back != elem {
		return "", fmt.Errorf("%w: directory %q does not map back to itself", ErrInvalidName, elem)
	}
	return name, nil
}

// checkName refuses mailbox names that could escape the root or would be
// ambiguous on disk.
func checkName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	case strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter):
		return bad("starts or ends with " + Delimiter)
	case strings.Contains(name, Delimiter+Delimiter):
		return bad("empty hierarchy level")
	}
	for _, r := range name {
		switch {
		case r == '.':
			// '.' separates hierarchy levels in Maildir++ directory names:
			// "a.b" would be the same directory as "a/b" (Dovecot refuses
			// it too, unless configured to escape it).
			return bad("contains '.'")
		case r == '*' || r == '%':
			// LIST wildcards (RFC 3501 §6.3.8): such a mailbox could not be
			// listed without also matching others.
			return bad("contains a LIST wildcard")
		case unicode.IsControl(r):
			return bad("contains a control character")
		}
	}
	return nil
}

// Folders returns the IMAP names of the folders under the root Maildir,
// sorted, without INBOX (the root itself). Directories whose names this
// package would not have produced (such as ".x..y" or raw UTF-8) are left
// out: no IMAP name leads to them. Parents are not implied: with only ".a.b"
// on disk the list holds "a/b" but not "a".
func (root Dir) Folders() ([]string, error) {
	entries, err := os.ReadDir(string(root))
	if err != nil {
		return nil, fmt.Errorf("maildir: list folders: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !e.IsDir() {
			info, err := os.Stat(filepath.Join(string(root), e.Name()))
			if err != nil || !info.IsDir() {
				continue
			}
		}
		name, err := FolderName(e.Name())
		if err != nil {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}
