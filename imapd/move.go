package imapd

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"syscall"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/safefile"
)

// Move moves messages to another folder (RFC 6851): each file is renamed
// into the destination's cur/ under a new unique name (flag letters
// translated; a message that comes back to a folder must get a new UID), in one step that never replaces a file, so the message is
// never in both folders nor in neither; both directories are fsynced.
// The answer is COPYUID, then EXPUNGE for each moved message.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sel := s.sel
	if sel.readOnly {
		return noError("", "Mailbox is read-only")
	}
	destName, destDir, err := s.existingFolder(dest, imap.ResponseCodeTryCreate)
	if err != nil {
		return err
	}
	if destDir == sel.dir {
		return noError(imap.ResponseCodeCannot, "Source and destination are the same mailbox")
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	srcKw, err := sel.box.Keywords()
	if err != nil {
		return s.serverError("move to "+destName, err)
	}
	destBox := s.openBox(destDir)
	var srcUIDs []imap.UID
	var bases []string
	var moved []*message
	var missing bool
	var failure error
	for _, i := range idx {
		m := sel.msgs[i]
		if m.gone {
			missing = true
			continue
		}
		base, ok, err := sel.moveOne(m, destDir, srcKw, destBox, s.srv.Hostname)
		if err != nil {
			// Report what was moved so far; the rest stays.
			failure = err
			break
		}
		if !ok {
			missing = true
			continue
		}
		srcUIDs = append(srcUIDs, m.uid)
		bases = append(bases, base)
		moved = append(moved, m)
	}
	if len(moved) > 0 {
		if err := safefile.SyncDir(destDir.Cur()); err != nil {
			s.logError("move to "+destName, err)
		}
		if err := safefile.SyncDir(sel.dir.Cur()); err != nil {
			s.logError("move to "+destName, err)
		}
		if err := safefile.SyncDir(sel.dir.New()); err != nil {
			s.logError("move to "+destName, err)
		}
	}
	destUIDs, validity := s.uidsOf(destBox, bases)
	if srcSet, destSet := uidPairs(srcUIDs, destUIDs); len(srcSet) > 0 {
		if err := w.WriteCopyData(&imap.CopyData{UIDValidity: validity, SourceUIDs: srcSet, DestUIDs: destSet}); err != nil {
			return err
		}
	}
	for _, m := range moved {
		m.gone = true
	}
	s.copied += len(moved)
	s.expunged += len(moved)
	if err := sel.expungeGone(w); err != nil {
		return err
	}
	if failure != nil {
		if errors.Is(failure, syscall.EDQUOT) || errors.Is(failure, syscall.ENOSPC) {
			s.logError("move to "+destName, failure)
			return noError(imap.ResponseCodeOverQuota, "Out of disk space or over quota")
		}
		return s.serverError("move to "+destName, failure)
	}
	if missing && len(moved) == 0 {
		return noError("EXPUNGEISSUED", "The messages were expunged")
	}
	return nil
}

// moveOne renames m's file into dir's cur/ and returns its base name;
// false means m is gone. A file that cannot be renamed there (another
// file system, or a name already taken) is copied and then removed.
func (sel *selected) moveOne(m *message, dir maildir.Dir, srcKw *uidlist.Keywords, destBox *uidlist.Mailbox, hostname string) (string, bool, error) {
	for try := 0; try < 5; try++ {
		letters, err := translateKeywords(lettersOfFile(m.file), srcKw, destBox)
		if err != nil {
			return "", false, err
		}
		// A new unique name, so that the destination gives the message a
		// new UID even if it once lived there (maildir.MovedName).
		newName, err := maildir.MovedName(path.Base(m.file), hostname, letters)
		if err != nil {
			return "", false, err
		}
		from := filepath.Join(string(sel.dir), m.file)
		to := filepath.Join(dir.Cur(), newName)
		err = unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
		if err == nil {
			return uidlist.BaseName(newName), true, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			found, err := sel.relocate(m)
			if err != nil || !found {
				return "", false, err
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EINVAL) {
			return "", false, err
		}
		// Copy, then remove the original (following renames).
		newBase, ok, err := sel.copyOne(m, dir, letters, hostname)
		if err != nil || !ok {
			return "", ok, err
		}
		for t := 0; t < 5; t++ {
			err := unix.Unlink(filepath.Join(string(sel.dir), m.file))
			if err == nil || !errors.Is(err, fs.ErrNotExist) {
				break
			}
			if found, err := sel.relocate(m); err != nil || !found {
				break
			}
		}
		return newBase, true, nil
	}
	return "", false, nil
}
