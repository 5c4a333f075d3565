package imapd

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Store changes flags (RFC 9051 §6.4.6) by renaming each file to carry
// the new Maildir letters; keywords get letters in the folder's
// dovecot-keywords. A file that another process renamed meanwhile is
// found again and the change applied to its current flags, so that
// concurrent +FLAGS and -FLAGS from different sessions all take effect.
// Unless .SILENT, the new flags are returned (with the UID for UID
// STORE).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) error {
	sel := s.sel
	if sel.readOnly {
		return noError("", "Mailbox is read-only")
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	letters, err := lettersOf(flags.Flags, sel.box, flags.Op != imap.StoreFlagsDel)
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return err
	}
	if err != nil {
		return s.serverError("store in "+sel.name, err)
	}
	kw, err := sel.box.Keywords()
	if err != nil {
		return s.serverError("store in "+sel.name, err)
	}
	_, isUID := numSet.(imap.UIDSet)
	rev1 := s.rev1()
	var missing bool
	for _, i := range idx {
		m := sel.msgs[i]
		if m.gone {
			missing = true
			continue
		}
		ok, err := sel.setFlags(m, func(cur string) string { return applyStore(cur, letters, flags.Op) })
		if err != nil {
			return s.serverError("store in "+sel.name, err)
		}
		if !ok {
			missing = true
			continue
		}
		m.flags = lettersOfFile(m.file)
		if flags.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		if isUID {
			rw.WriteUID(m.uid)
		}
		f := flagsOf(m.flags, kw)
		if rev1 && sel.recent[m.uid] {
			f = append(f, imap.Flag(`\Recent`))
		}
		rw.WriteFlags(f)
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if missing {
		// RFC 5530 §3: some of the messages were expunged meanwhile.
		return noError("EXPUNGEISSUED", "Some messages were expunged")
	}
	return nil
}

// setFlags renames m's file so that it carries change(current letters),
// moving it from new/ to cur/ first if needed, and following it through
// renames by other processes. It reports false if the message is gone.
func (sel *selected) setFlags(m *message, change func(string) string) (bool, error) {
	for try := 0; try < 10; try++ {
		name := path.Base(m.file)
		var err error
		if isInNew(m.file) {
			var cur string
			if cur, err = sel.dir.MoveToCur(name); err == nil {
				m.file = "cur/" + cur
				continue
			}
		} else {
			want := change(lettersOfFile(m.file))
			var renamed string
			if renamed, err = sel.dir.SetFlags(name, want); err == nil {
				m.file = "cur/" + renamed
				return true, nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		found, err := sel.relocate(m)
		if err != nil {
			return false, err
		}
		if !found {
			return false, nil
		}
	}
	return false, fmt.Errorf("imapd: flags of UID %d in %s keep changing", m.uid, sel.dir)
}
