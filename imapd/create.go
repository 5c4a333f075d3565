package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
)

// Create makes a folder (RFC 9051 §6.3.4) with its cur/, new/, tmp/ and
// maildirfolder, and the folders above it that are missing, as the RFC
// recommends. USE (...) (RFC 6154 §3, CREATE-SPECIAL-USE) stores the
// special-use attributes in the folder's special-use file.
func (s *session) Create(name string, options *imap.CreateOptions) error {
	// A trailing delimiter only declares that names will be created
	// below this one (RFC 9051 §6.3.4).
	name = strings.TrimSuffix(name, "/")
	canon, d, err := s.folder(name)
	if err != nil {
		return err
	}
	var attrs []imap.MailboxAttr
	if options != nil {
		if attrs, err = checkSpecialUse(options.SpecialUse); err != nil {
			return err
		}
	}
	if canon == "INBOX" {
		return noError(imap.ResponseCodeAlreadyExists, "INBOX always exists")
	}
	ok, err := isFolder(d)
	if err != nil {
		return s.serverError("create "+canon, err)
	}
	if ok {
		return noError(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	}
	if err := maildir.Create(string(s.root), append(parents(canon), canon)...); err != nil {
		return s.serverError("create "+canon, err)
	}
	if err := writeSpecialUse(d, attrs); err != nil {
		return s.serverError("create "+canon, err)
	}
	return nil
}
