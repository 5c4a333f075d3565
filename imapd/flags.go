package imapd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// systemFlags maps the Maildir info letters to IMAP system flags, as
// Dovecot does. 'P' (passed) has no IMAP flag; like Dovecot, imapd keeps
// it and other letters it does not know untouched.
var systemFlags = []struct {
	letter byte
	flag   imap.Flag
}{
	{maildir.FlagDraft, imap.FlagDraft},
	{maildir.FlagFlagged, imap.FlagFlagged},
	{maildir.FlagReplied, imap.FlagAnswered},
	{maildir.FlagSeen, imap.FlagSeen},
	{maildir.FlagTrashed, imap.FlagDeleted},
}

// flagsOf returns the IMAP flags of the Maildir flag letters: system
// flags, and keywords (a-z) named in the folder's dovecot-keywords.
// Letters without a name are left out.
func flagsOf(letters string, kw *uidlist.Keywords) []imap.Flag {
	flags := []imap.Flag{}
	for _, sf := range systemFlags {
		if strings.IndexByte(letters, sf.letter) >= 0 {
			flags = append(flags, sf.flag)
		}
	}
	for i := 0; i < len(letters); i++ {
		c := letters[i]
		if c < 'a' || c > 'z' || kw == nil {
			continue
		}
		if name, ok := kw.Name(c); ok {
			flags = append(flags, imap.Flag(name))
		}
	}
	return flags
}

// mailboxFlags are the FLAGS and PERMANENTFLAGS of a folder: the system
// flags and the keywords defined in it; \* says that clients may create
// keywords while letters are left (RFC 9051 §7.1).
func mailboxFlags(kw *uidlist.Keywords) (flags, permanent []imap.Flag) {
	for _, sf := range systemFlags {
		flags = append(flags, sf.flag)
	}
	full := true
	if kw != nil {
		for _, name := range kw.Names {
			if name == "" {
				full = false
				continue
			}
			flags = append(flags, imap.Flag(name))
		}
	} else {
		full = false
	}
	permanent = append([]imap.Flag{}, flags...)
	if !full {
		permanent = append(permanent, imap.FlagWildcard)
	}
	return flags, permanent
}

// lettersOf converts IMAP flags to Maildir letters, giving new keywords
// letters in the folder's dovecot-keywords (under its lock) when
// allocate is set and leaving unknown keywords out otherwise (removing a
// keyword no message has needs no letter). \Recent cannot be stored and
// is ignored (RFC 9051 removed it; RFC 3501 §2.3.2 forbids changing it).
// Unknown system flags (\Something) are BAD.
func lettersOf(flags []imap.Flag, box *uidlist.Mailbox, allocate bool) (string, error) {
	var b []byte
	var keywords []string
flagLoop:
	for _, f := range flags {
		if strings.HasPrefix(string(f), `\`) {
			for _, sf := range systemFlags {
				if strings.EqualFold(string(f), string(sf.flag)) {
					b = append(b, sf.letter)
					continue flagLoop
				}
			}
			if strings.EqualFold(string(f), `\Recent`) {
				continue
			}
			return "", badError(fmt.Sprintf("Unknown system flag %s", f))
		}
		keywords = append(keywords, string(f))
	}
	if len(keywords) > 0 {
		var kw *uidlist.Keywords
		var err error
		if allocate {
			kw, err = box.AddKeywords(keywords...)
		} else {
			kw, err = box.Keywords()
		}
		if errors.Is(err, uidlist.ErrTooManyKeywords) {
			return "", noError(imap.ResponseCodeLimit, "Too many keywords in this mailbox")
		}
		if errors.Is(err, uidlist.ErrInvalidKeyword) {
			return "", badError("Invalid keyword")
		}
		if err != nil {
			return "", err
		}
		for _, k := range keywords {
			if c, ok := kw.Letter(k); ok {
				b = append(b, c)
			}
		}
	}
	return string(b), nil
}

// isIMAPLetter reports whether a Maildir letter stands for an IMAP flag
// this server reads (system flags and keywords), as opposed to letters it
// keeps without showing.
func isIMAPLetter(c byte) bool {
	if 'a' <= c && c <= 'z' {
		return true
	}
	for _, sf := range systemFlags {
		if sf.letter == c {
			return true
		}
	}
	return false
}

// applyStore computes a message's new letters for STORE (RFC 9051
// §6.4.6): replace, add or remove the IMAP letters, keeping the letters
// imapd does not show (such as 'P').
func applyStore(cur, change string, op imap.StoreFlagsOp) string {
	var out []byte
	switch op {
	case imap.StoreFlagsSet:
		for i := 0; i < len(cur); i++ {
			if !isIMAPLetter(cur[i]) {
				out = append(out, cur[i])
			}
		}
		out = append(out, change...)
	case imap.StoreFlagsAdd:
		out = append([]byte(cur), change...)
	case imap.StoreFlagsDel:
		for i := 0; i < len(cur); i++ {
			if strings.IndexByte(change, cur[i]) < 0 {
				out = append(out, cur[i])
			}
		}
	}
	sorted, err := maildir.SortFlags(string(out))
	if err != nil {
		// Letters other software put in a name: keep them as they were.
		return cur
	}
	return sorted
}
