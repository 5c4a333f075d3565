package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/postkit/postkit/safefile"
)

// Dir is the path of one Maildir: a user's root (INBOX) or a Maildir++ folder
// directory.
type Dir string

// New returns the path of the Maildir's new/ directory.
func (d Dir) New() string { return filepath.Join(string(d), "new") }

// Cur returns the path of the Maildir's cur/ directory.
func (d Dir) Cur() string { return filepath.Join(string(d), "cur") }

// Tmp returns the path of the Maildir's tmp/ directory.
func (d Dir) Tmp() string { return filepath.Join(string(d), "tmp") }

// Find looks for the message whose unique name is base (a file name up to
// the ":" of its info: flags change, base does not) in new/ and then cur/,
// where a mail client moves it, and returns its name relative to d:
// "new/NAME" or "cur/NAME:2,FLAGS".
func (d Dir) Find(base string) (string, bool) {
	for _, sub := range []string{"new", "cur"} {
		dir, err := os.Open(filepath.Join(string(d), sub))
		if err != nil {
			continue
		}
		for {
			names, err := dir.Readdirnames(1024)
			for _, n := range names {
				if b, _, _ := strings.Cut(n, ":"); b == base {
					dir.Close()
					return sub + "/" + n, true
				}
			}
			if err != nil {
				break
			}
		}
		dir.Close()
	}
	return "", false
}

// FolderMarker is the empty file that marks a Maildir++ folder (as opposed to
// a root); Courier and Dovecot create it and use it for quota accounting.
const FolderMarker = "maildirfolder"

// Create makes a Maildir++ root at path (cur/, new/ and tmp/, mode 0700,
// with any missing parents) and the named folders (IMAP names like "Sent",
// "a/b", "Entwürfe"), each with cur/, new/, tmp/ and an empty maildirfolder
// file. Parents of hierarchical names are not created ("a/b" makes .a.b/,
// not .a/). It is idempotent, and fsyncs every directory it adds an entry to,
// so what it created survives a crash once it returns.
func Create(path string, folders ...string) error {
	root := Dir(path)
	// Check every name before creating anything.
	dirs := make([]Dir, len(folders))
	for i, name := range folders {
		d, err := root.Folder(name)
		if err != nil {
			return err
		}
		dirs[i] = d
	}
	if err := makeMaildir(root); err != nil {
		return err
	}
	for _, d := range dirs {
		if d == root {
			continue
		}
		if err := makeMaildir(d); err != nil {
			return err
		}
		if err := createEmpty(filepath.Join(string(d), FolderMarker)); err != nil {
			return err
		}
	}
	return nil
}

func makeMaildir(d Dir) error {
	for _, p := range []string{d.Cur(), d.New(), d.Tmp()} {
		if err := ensureDir(p); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir creates p and its missing parents with mode 0700, each owned
// like the directory it is made in (sameOwnerDir), fsyncing each parent it
// adds an entry to.
func ensureDir(p string) error {
	info, err := os.Stat(p)
	if err == nil {
		if !info.IsDir() {
			return fmt.Errorf("maildir: %s exists and is not a directory", p)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("maildir: %w", err)
	}
	parent := filepath.Dir(p)
	if parent != p {
		if err := ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it at the same time; it did the fsync.
			return ensureDir(p)
		}
		return fmt.Errorf("maildir: %w", err)
	}
	if err := sameOwnerDir(p, parent); err != nil {
		return err
	}
	if err := safefile.SyncDir(parent); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

// createEmpty creates an empty file (mode 0600, owned like its directory)
// if it does not exist.
func createEmpty(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := sameOwner(f, filepath.Dir(p)); err != nil {
		f.Close()
		os.Remove(p)
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := safefile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}
