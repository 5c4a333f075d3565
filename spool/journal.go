package spool

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// JournalDir is the name of the queue runner's delivery journal directory
// inside the spool (package queue owns its files and their format).
const JournalDir = "journal"

// CreateJournal creates the file name in the spool's journal/ directory
// for appending (O_WRONLY|O_APPEND|O_CREATE|O_EXCL, mode 0600), creating
// journal/ (mode 0700) first if it is missing. Both belong to the spool's
// owner, also when the process runs as root, so that a later queue runner
// running as the owner can read and remove them. name must be a plain file
// name.
func (s *Spool) CreateJournal(name string) (*os.File, error) {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
		return nil, storageErr(fs.ErrInvalid, "create journal %q", name)
	}
	dir := filepath.Join(s.dir, JournalDir)
	if err := os.Mkdir(dir, 0o700); err == nil {
		if err := s.owner.ownDir(dir); err != nil {
			return nil, storageErr(err, "create journal directory")
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, storageErr(err, "create journal directory")
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, storageErr(err, "create journal %s", name)
	}
	if err := s.owner.own(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, storageErr(err, "create journal %s", name)
	}
	return f, nil
}
