package safefile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// RenameNoReplace renames oldpath to newpath unless newpath exists, in which
// case it fails with an error matching fs.ErrExist and changes nothing: the
// way to give a finished file its final name when another file may already
// have it (a spool entry, a Maildir message). It uses renameat2(2)'s
// RENAME_NOREPLACE, one directory operation; on file systems without it,
// link(2) and unlink(2), which fail the same way, and on file systems
// without hard links a check then rename(2), as the Maildir specification
// allows (a race with another writer of the same name is then possible;
// names are unique by construction).
func RenameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS):
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	err = os.Link(oldpath, newpath)
	if err == nil {
		return os.Remove(oldpath)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EMLINK) {
		if _, statErr := os.Lstat(newpath); statErr == nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: unix.EEXIST}
		}
		return os.Rename(oldpath, newpath)
	}
	return err
}
