package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/postkit/postkit/safefile"
)

// fileOwner is who the spool's files belong to: the owner and group of the
// spool directory. give is set when the process runs as root and the spool
// belongs to another user (the daemons' user, postkit): then every file and
// directory the process creates must be given to that user, or the queue
// runner, running as the owner, could not read or replace it. A process
// that is not root cannot give files away; it only writes into the spool
// directly when it owns it (see Submit).
type fileOwner struct {
	uid, gid int
	give     bool
}

// ownerOf returns the fileOwner for the spool directory dir.
func ownerOf(dir string) (fileOwner, error) {
	if os.Geteuid() != 0 {
		return fileOwner{}, nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fileOwner{}, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{}, nil
	}
	o := fileOwner{uid: int(st.Uid), gid: int(st.Gid)}
	o.give = o.uid != os.Geteuid() || o.gid != os.Getegid()
	return o, nil
}

// own gives f, which this process has just created, to the spool's owner.
// It works on the open file, so no name swapped in between can make root
// give away another file.
func (o fileOwner) own(f *os.File) error {
	if !o.give {
		return nil
	}
	return f.Chown(o.uid, o.gid)
}

// ownDir gives the directory p, which this process has just created, to
// the spool's owner. It opens p without following a symbolic link and
// insists on a directory for the same reason as own.
func (o fileOwner) ownDir(p string) error {
	if !o.give {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return o.own(f)
}

// writeFile atomically replaces path with data (mode 0600, owned by the
// spool's owner), like safefile.WriteFile: a temporary file in the same
// directory, given away before anything is written to it, fsynced, renamed
// over path, then the directory fsynced.
func (s *Spool) writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := safefile.CreateTemp(dir, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := s.owner.own(tmp); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return safefile.SyncDir(dir)
}
