package imapd

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/safefile"
)

// Expunge removes the messages flagged \Deleted (RFC 9051 §6.4.3), or
// those of them in uids for UID EXPUNGE (RFC 4315 §2.1), and answers
// EXPUNGE for each. The flags are those on disk now, whoever set them.
// In a folder opened with EXAMINE it removes nothing and succeeds, as
// Dovecot does; CLOSE calls it too.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sel := s.sel
	if sel == nil || sel.readOnly {
		return nil
	}
	// Learn the current names (and so flags) of the files.
	if st, err := sel.box.Sync(); err == nil {
		j := 0
		for _, m := range sel.msgs {
			for j < len(st.Entries) && imap.UID(st.Entries[j].UID) < m.uid {
				j++
			}
			if j < len(st.Entries) && imap.UID(st.Entries[j].UID) == m.uid {
				m.file = st.Entries[j].Filename
			}
		}
	}
	var removed int
	for _, m := range sel.msgs {
		if m.gone || (uids != nil && !uids.Contains(m.uid)) {
			continue
		}
		ok, err := sel.removeDeleted(m)
		if err != nil {
			return s.serverError("expunge in "+sel.name, err)
		}
		if ok {
			m.gone = true
			removed++
		}
	}
	if removed > 0 {
		if err := safefile.SyncDir(sel.dir.Cur()); err != nil {
			s.logError("expunge in "+sel.name, err)
		}
	}
	s.expunged += removed
	return sel.expungeGone(w)
}

// removeDeleted removes m's file if it carries \Deleted, following the
// file through renames by other processes. It reports whether the message
// is gone now.
func (sel *selected) removeDeleted(m *message) (bool, error) {
	for try := 0; try < 5; try++ {
		if !hasLetter(lettersOfFile(m.file), maildir.FlagTrashed) {
			return false, nil
		}
		err := os.Remove(filepath.Join(string(sel.dir), m.file))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		found, err := sel.relocate(m)
		if err != nil {
			return false, err
		}
		if !found {
			return true, nil
		}
	}
	return false, nil
}

// relocate finds the current file of m after its old name was not found:
// another process changed its flags, moved it to cur/ or removed it. It
// looks in new/ and cur/ for the file's unique name, and asks the UID list
// when that fails (a file being renamed can escape a listing). It reports
// false only when a complete listing no longer has the message.
func (sel *selected) relocate(m *message) (bool, error) {
	base := uidlist.BaseName(path.Base(m.file))
	for try := 0; try < relocateTries; try++ {
		if try > 0 {
			// Another process keeps renaming the folder's files (flag
			// changes): no listing was complete, so the message may
			// still be there. Give it a moment rather than reporting an
			// expunge that did not happen.
			time.Sleep(time.Duration(try) * time.Millisecond)
		}
		if file, ok := sel.dir.Find(base); ok {
			m.file = file
			return true, nil
		}
		st, complete, err := sel.syncStable()
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if sel.lookup(st, m) {
			return true, nil
		}
		if complete {
			return false, nil
		}
	}
	return false, nil
}

// relocateTries bounds the search for a renamed file: about 0.2 s of
// back-off in all, only while other processes rename without pause.
const relocateTries = 20

// lookup sets m's file from st and reports whether st has it.
func (sel *selected) lookup(st *uidlist.State, m *message) bool {
	i := sort.Search(len(st.Entries), func(i int) bool { return imap.UID(st.Entries[i].UID) >= m.uid })
	if i < len(st.Entries) && imap.UID(st.Entries[i].UID) == m.uid {
		m.file = st.Entries[i].Filename
		return true
	}
	return false
}
