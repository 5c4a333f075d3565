package imapd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
)

// canonicalName spells INBOX, which is case-insensitive (RFC 9051 §5.1),
// and its hierarchy prefix "INBOX/" in capitals.
func canonicalName(name string) string {
	if maildir.IsInbox(name) {
		return "INBOX"
	}
	if len(name) > len("INBOX/") && strings.EqualFold(name[:len("INBOX/")], "INBOX/") {
		return "INBOX" + name[len("INBOX"):]
	}
	return name
}

// folder returns the canonical name and directory of the mailbox name.
// Names that cannot be stored safely (maildir.Folder refuses names with
// '.', control characters, empty levels and the like, so none leads
// outside the user's Maildir) are NO [CANNOT].
func (s *session) folder(name string) (string, maildir.Dir, error) {
	name = canonicalName(name)
	d, err := s.root.Folder(name)
	if err != nil {
		return "", "", noError(imap.ResponseCodeCannot, "Invalid mailbox name "+strings.TrimPrefix(err.Error(), "maildir: invalid mailbox name "))
	}
	return name, d, nil
}

// existingFolder is folder for a mailbox that must exist: NO
// [NONEXISTENT] (or TRYCREATE, for APPEND, COPY and MOVE, RFC 9051
// §6.3.12) if it does not.
func (s *session) existingFolder(name string, missing imap.ResponseCode) (string, maildir.Dir, error) {
	name, d, err := s.folder(name)
	if err != nil {
		return "", "", err
	}
	ok, err := isFolder(d)
	if err != nil {
		return "", "", s.serverError("stat "+name, err)
	}
	if !ok {
		return "", "", noError(missing, "No such mailbox")
	}
	return name, d, nil
}

// isFolder reports whether the directory d exists.
func isFolder(d maildir.Dir) (bool, error) {
	info, err := os.Stat(string(d))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("imapd: %w", err)
	}
	return info.IsDir(), nil
}

// mailboxNames returns INBOX and the names of the user's folders, sorted.
func (s *session) mailboxNames() ([]string, error) {
	names, err := s.root.Folders()
	if err != nil {
		return nil, err
	}
	return append([]string{"INBOX"}, names...), nil
}

// parents returns the names above name in the hierarchy: "a", "a/b" for
// "a/b/c".
func parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			out = append(out, name[:i])
		}
	}
	return out
}
