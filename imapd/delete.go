package imapd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/safefile"
)

// deletedPrefix starts the name a folder gets while it is being removed.
// No mailbox name maps to a directory starting with "..", so a removal
// that a crash interrupted leaves no half-empty folder in LIST; the next
// DELETE finishes it.
const deletedPrefix = "..postkit-deleted."

// Delete removes a folder and its messages (RFC 9051 §6.3.5). Folders
// below it stay. The folder is first renamed out of every other
// session's sight, in one step, and then removed.
func (s *session) Delete(name string) error {
	canon, d, err := s.existingFolder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return err
	}
	if canon == "INBOX" {
		return noError(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	}
	var r [8]byte
	rand.Read(r[:])
	gone := filepath.Join(string(s.root), deletedPrefix+hex.EncodeToString(r[:]))
	if err := os.Rename(string(d), gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return noError(imap.ResponseCodeNonExistent, "No such mailbox")
		}
		return s.serverError("delete "+canon, err)
	}
	if err := safefile.SyncDir(string(s.root)); err != nil {
		s.logError("delete "+canon, err)
	}
	s.removeDeleted()
	return nil
}

// removeDeleted removes the folders that Delete renamed, this time's and
// any a crash left behind.
func (s *session) removeDeleted() {
	entries, err := os.ReadDir(string(s.root))
	if err != nil {
		s.logError("delete", err)
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), deletedPrefix) {
			if err := os.RemoveAll(filepath.Join(string(s.root), e.Name())); err != nil {
				s.logError("delete", err)
			}
		}
	}
}
