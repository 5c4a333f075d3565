package imapd

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// Status answers STATUS (RFC 9051 §6.3.11) from the folder's files and
// dovecot-uidlist; SIZE (RFC 8438) is the sum of the messages' sizes with
// CRLF line endings, as RFC822.SIZE reports them.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	canon, d, err := s.existingFolder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return nil, err
	}
	return s.status(canon, d, options)
}

func (s *session) status(name string, d maildir.Dir, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := s.openBox(d).Sync()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noError(imap.ResponseCodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return nil, s.serverError("status "+name, err)
	}
	var messages, unseen, deleted, recent uint32
	var size, deletedSize int64
	var cache *imapcache.Cache
	if options.Size || options.DeletedStorage {
		cache = s.srv.folders.cache(d)
	}
	for _, e := range st.Entries {
		messages++
		n := maildir.ParseName(e.Name())
		if !n.HasFlag(maildir.FlagSeen) {
			unseen++
		}
		if e.InNew() {
			recent++
		}
		if options.Size || options.DeletedStorage {
			v := e.VSize
			if v < 0 {
				// Not in the name: counted once, then cached. A file
				// gone meanwhile counts 0.
				ce, _ := cache.Fill(e.Base, filepath.Join(string(d), e.Filename), imapcache.FieldVSize)
				v = ce.VSize
			}
			size += v
			if n.HasFlag(maildir.FlagTrashed) {
				deletedSize += v
			}
		}
		if n.HasFlag(maildir.FlagTrashed) {
			deleted++
		}
	}
	if cache != nil && cache.Pending() > 0 {
		if err := cache.Save(nil); err != nil {
			s.logError("cache of "+name, err)
		}
	}
	data := &imap.StatusData{Mailbox: name, UIDValidity: st.UIDValidity, UIDNext: imap.UID(st.NextUID)}
	if options.NumMessages {
		data.NumMessages = &messages
	}
	if options.NumUnseen {
		data.NumUnseen = &unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &deleted
	}
	if options.NumRecent {
		data.NumRecent = &recent
	}
	if options.Size {
		data.Size = &size
	}
	if options.DeletedStorage {
		data.DeletedStorage = &deletedSize
	}
	if options.AppendLimit {
		limit := uint32(s.srv.appendLimit())
		data.AppendLimit = &limit
	}
	return data, nil
}

// openBox returns the UID list of the folder d, shared with the
// process's other sessions.
func (s *session) openBox(d maildir.Dir) *uidlist.Mailbox {
	return s.srv.folders.box(d, s.root)
}
