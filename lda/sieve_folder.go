package lda

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// folderCandidates returns the IMAP folder names (as package maildir maps
// them to Maildir++ directories) that the mailbox name of a Sieve fileinto
// or mailboxexists may stand for, most specific first. Scripts come from
// Dovecot and Courier setups whose namespaces differ from imapd's, so:
//
//   - '.' separates hierarchy levels, as in Maildir++ directory names and
//     in Dovecot's default Maildir++ namespace: "lists.go" is "lists/go"
//     (imapd never allows '.' inside a level, so this is unambiguous);
//   - "INBOX" in any case is the INBOX;
//   - a leading "INBOX/" (or "INBOX.") is Courier's and some Dovecot
//     setups' namespace prefix: "INBOX.lists.go" and "INBOX/lists/go"
//     stand for "lists/go", unless the user has a folder literally named
//     "INBOX/lists/go" (imapd lets one create it), which then wins.
func folderCandidates(name string) []string {
	n := strings.ReplaceAll(name, ".", maildir.Delimiter)
	if maildir.IsInbox(n) {
		return []string{"INBOX"}
	}
	const prefix = "INBOX" + maildir.Delimiter
	if len(n) > len(prefix) && strings.EqualFold(n[:len(prefix)], prefix) {
		return []string{n, n[len(prefix):]}
	}
	return []string{n}
}

// findFolder finds the folder the mailbox name stands for in the Maildir++
// root: the first candidate that exists, else the last candidate (the one
// fileinto :create makes). exists tells which; err wraps
// maildir.ErrInvalidName for a name that maps to no folder.
func findFolder(root maildir.Dir, name string) (folder string, exists bool, err error) {
	cands := folderCandidates(name)
	for _, c := range cands {
		if maildir.IsInbox(c) {
			return "INBOX", true, nil
		}
		d, err := root.Folder(c)
		if err != nil {
			continue
		}
		info, err := os.Stat(string(d))
		if err == nil && info.IsDir() {
			return c, true, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", false, fmt.Errorf("lda: folder %q: %w", c, err)
		}
	}
	last := cands[len(cands)-1]
	if _, err := maildir.FolderDirName(last); err != nil {
		return "", false, err
	}
	return last, false, nil
}

// systemFlagLetters are the Maildir info letters of the IMAP system flags
// (Dovecot's mapping, as imapd reads them).
var systemFlagLetters = map[string]byte{
	`\seen`:     maildir.FlagSeen,
	`\answered`: maildir.FlagReplied,
	`\flagged`:  maildir.FlagFlagged,
	`\deleted`:  maildir.FlagTrashed,
	`\draft`:    maildir.FlagDraft,
}

// flagLetters turns the IMAP flags of a keep or fileinto (RFC 5232) into
// Maildir info letters for a message stored in dir: system flags by
// systemFlagLetters, keywords by the letters the folder's dovecot-keywords
// gives them (allocated there, under Dovecot's lock, when new), so that
// imapd and Dovecot show them. Keywords that cannot be stored (no letters
// left, a name dovecot-keywords cannot hold) are dropped and returned in
// dropped; other errors (a lock held too long, I/O) fail.
func flagLetters(dir maildir.Dir, flags []string) (letters string, dropped []string, err error) {
	var b []byte
	var keywords []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			if c, ok := systemFlagLetters[strings.ToLower(f)]; ok {
				b = append(b, c)
			} else {
				dropped = append(dropped, f)
			}
			continue
		}
		keywords = append(keywords, f)
	}
	if len(keywords) == 0 {
		return string(b), dropped, nil
	}
	box := uidlist.Open(string(dir), nil)
	kw, err := box.AddKeywords(keywords...)
	if errors.Is(err, uidlist.ErrTooManyKeywords) || errors.Is(err, uidlist.ErrInvalidKeyword) {
		// One at a time, so that every keyword that can have a letter
		// gets one.
		for _, k := range keywords {
			kw, err := box.AddKeywords(k)
			if errors.Is(err, uidlist.ErrTooManyKeywords) || errors.Is(err, uidlist.ErrInvalidKeyword) {
				dropped = append(dropped, k)
				continue
			}
			if err != nil {
				return "", nil, err
			}
			if c, ok := kw.Letter(k); ok {
				b = append(b, c)
			}
		}
		return string(b), dropped, nil
	}
	if err != nil {
		return "", nil, err
	}
	for _, k := range keywords {
		if c, ok := kw.Letter(k); ok {
			b = append(b, c)
		}
	}
	return string(b), dropped, nil
}
