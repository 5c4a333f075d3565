package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/safefile"
)

// SpecialUseFileName is the file in a folder's directory that holds its
// special-use attributes (RFC 6154) when CREATE gave it some; see the
// package documentation for its format.
const SpecialUseFileName = "postkit-special-use"

// specialUses are the attributes of RFC 6154 §2 that CREATE ... (USE (...))
// accepts.
var specialUses = []imap.MailboxAttr{
	imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts, imap.MailboxAttrFlagged,
	imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash,
}

// defaultSpecialUse gives the folders mkuser creates their attribute,
// as Dovecot's default configuration does by name.
var defaultSpecialUse = map[string]imap.MailboxAttr{
	"Archive": imap.MailboxAttrArchive,
	"Drafts":  imap.MailboxAttrDrafts,
	"Junk":    imap.MailboxAttrJunk,
	"Sent":    imap.MailboxAttrSent,
	"Trash":   imap.MailboxAttrTrash,
}

// canonicalSpecialUse returns the attribute of specialUses that attr names
// (attributes are case-insensitive, RFC 9051 §7.3.1).
func canonicalSpecialUse(attr string) (imap.MailboxAttr, bool) {
	for _, a := range specialUses {
		if strings.EqualFold(string(a), attr) {
			return a, true
		}
	}
	return "", false
}

// ParseSpecialUse reads a special-use file: attributes separated by white
// space (one per line as written). Unknown words are skipped and
// duplicates dropped, so a damaged file never fails a LIST.
func ParseSpecialUse(data []byte) []imap.MailboxAttr {
	var attrs []imap.MailboxAttr
	for _, w := range bytes.Fields(data) {
		a, ok := canonicalSpecialUse(string(w))
		if ok && !containsAttr(attrs, a) {
			attrs = append(attrs, a)
		}
	}
	return attrs
}

// FormatSpecialUse is the inverse of ParseSpecialUse: one attribute per
// line.
func FormatSpecialUse(attrs []imap.MailboxAttr) []byte {
	var b bytes.Buffer
	for _, a := range attrs {
		b.WriteString(string(a))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func containsAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if x == a {
			return true
		}
	}
	return false
}

// specialUseOf returns the special-use attributes of the folder name in
// directory d: those of its special-use file if it has one, else the
// default for its name.
func specialUseOf(name string, d maildir.Dir) []imap.MailboxAttr {
	data, err := os.ReadFile(filepath.Join(string(d), SpecialUseFileName))
	if err == nil {
		return ParseSpecialUse(data)
	}
	if a, ok := defaultSpecialUse[name]; ok {
		return []imap.MailboxAttr{a}
	}
	return nil
}

// checkSpecialUse validates the attributes of CREATE's USE parameter
// (RFC 6154 §3: an unknown one is NO [USEATTR]).
func checkSpecialUse(attrs []imap.MailboxAttr) ([]imap.MailboxAttr, error) {
	var out []imap.MailboxAttr
	for _, a := range attrs {
		c, ok := canonicalSpecialUse(string(a))
		if !ok {
			return nil, noError("USEATTR", fmt.Sprintf("Unsupported special-use attribute %s", a))
		}
		if !containsAttr(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// writeSpecialUse stores attrs as the folder's special-use file.
func writeSpecialUse(d maildir.Dir, attrs []imap.MailboxAttr) error {
	p := filepath.Join(string(d), SpecialUseFileName)
	if len(attrs) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("imapd: %w", err)
		}
		return nil
	}
	if err := safefile.WriteFile(p, FormatSpecialUse(attrs), 0o600); err != nil {
		return fmt.Errorf("imapd: %w", err)
	}
	return nil
}
