package imapd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/safefile"
)

// Rename renames a folder and every folder below it (RFC 9051 §6.3.6),
// creating missing folders above the new name. Each directory is renamed
// in one step that never replaces an existing one, so messages keep
// their files, flags, UIDs and UIDVALIDITY. Renaming INBOX moves its
// messages into the new folder and leaves INBOX empty.
func (s *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	oldCanon, oldDir, err := s.existingFolder(oldName, imap.ResponseCodeNonExistent)
	if err != nil {
		return err
	}
	newCanon, newDir, err := s.folder(strings.TrimSuffix(newName, "/"))
	if err != nil {
		return err
	}
	if newCanon == "INBOX" {
		return noError(imap.ResponseCodeAlreadyExists, "INBOX always exists")
	}
	if ok, err := isFolder(newDir); err != nil {
		return s.serverError("rename "+oldCanon, err)
	} else if ok {
		return noError(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	}
	if oldCanon == "INBOX" {
		return s.renameInbox(newCanon, newDir)
	}
	if strings.HasPrefix(newCanon, oldCanon+"/") {
		return noError(imap.ResponseCodeCannot, "Cannot rename a mailbox into itself")
	}

	// Work out every move before making the first.
	type move struct {
		oldName, newName string
		from, to         maildir.Dir
	}
	moves := []move{{oldCanon, newCanon, oldDir, newDir}}
	names, err := s.root.Folders()
	if err != nil {
		return s.serverError("rename "+oldCanon, err)
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, oldCanon+"/")
		if !ok {
			continue
		}
		_, to, err := s.folder(newCanon + "/" + rest)
		if err != nil {
			return err
		}
		from, _ := s.root.Folder(n)
		moves = append(moves, move{n, newCanon + "/" + rest, from, to})
	}
	if err := maildir.Create(string(s.root), parents(newCanon)...); err != nil {
		return s.serverError("rename "+oldCanon, err)
	}
	for i, m := range moves {
		err := unix.Renameat2(unix.AT_FDCWD, string(m.from), unix.AT_FDCWD, string(m.to), unix.RENAME_NOREPLACE)
		if err == nil {
			continue
		}
		if i == 0 {
			switch {
			case errors.Is(err, fs.ErrExist):
				return noError(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
			case errors.Is(err, fs.ErrNotExist):
				return noError(imap.ResponseCodeNonExistent, "No such mailbox")
			}
			return s.serverError("rename "+oldCanon, err)
		}
		// A folder below that another session renamed or created
		// meanwhile stays where it is.
		s.logError("rename "+m.oldName+" to "+m.newName, err)
	}
	if err := safefile.SyncDir(string(s.root)); err != nil {
		s.logError("rename "+oldCanon, err)
	}
	for _, m := range moves {
		s.moveSubscription(m.oldName, m.newName)
	}
	return nil
}

// moveSubscription carries a subscription over to the new name.
func (s *session) moveSubscription(oldName, newName string) {
	subs, err := uidlist.ReadSubscriptions(string(s.root))
	if err != nil || !subs.Has(oldName) {
		return
	}
	if _, err := uidlist.Subscribe(string(s.root), newName, true, nil); err != nil {
		s.logError("subscribe "+newName, err)
		return
	}
	if _, err := uidlist.Subscribe(string(s.root), oldName, false, nil); err != nil {
		s.logError("unsubscribe "+oldName, err)
	}
}

// renameInbox creates the folder newName and moves every message of INBOX
// into it, keeping file names (and so flags); INBOX's keyword table goes
// along so that the keyword letters keep their meaning.
func (s *session) renameInbox(newName string, newDir maildir.Dir) error {
	if err := maildir.Create(string(s.root), append(parents(newName), newName)...); err != nil {
		return s.serverError("rename INBOX", err)
	}
	if kw, err := os.ReadFile(filepath.Join(string(s.root), uidlist.KeywordsFileName)); err == nil {
		if err := safefile.WriteFile(filepath.Join(string(newDir), uidlist.KeywordsFileName), kw, 0o600); err != nil {
			return s.serverError("rename INBOX", err)
		}
	}
	for _, sub := range []string{"new", "cur"} {
		from, to := filepath.Join(string(s.root), sub), filepath.Join(string(newDir), sub)
		if err := moveFiles(from, to); err != nil {
			return s.serverError("rename INBOX", err)
		}
	}
	return nil
}

// moveFiles renames every file of the directory from into the directory
// to, never replacing a file there, and fsyncs to.
func moveFiles(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("imapd: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(from, e.Name()), unix.AT_FDCWD, filepath.Join(to, e.Name()), unix.RENAME_NOREPLACE)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("imapd: move %s: %w", e.Name(), err)
		}
	}
	if err := safefile.SyncDir(to); err != nil {
		return fmt.Errorf("imapd: %w", err)
	}
	return safefile.SyncDir(from)
}
