//go:build unix

package maildir

import (
	"fmt"
	"os"
	"syscall"
)

// sameOwner gives f, a file or directory just created in dir, the owner and
// group of dir when the process runs as root, so that everything in a
// Maildir belongs to the Maildir's owner (see "Owners" in the package
// documentation). A process that is not root cannot give files away and
// leaves f as it is. Working on the open file (fchown) rather than on a
// name means that a name swapped meanwhile cannot redirect the change.
func sameOwner(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("maildir: owner of %s: %w", dir, err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mine, err := f.Stat()
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if own, ok := mine.Sys().(*syscall.Stat_t); ok && own.Uid == st.Uid && own.Gid == st.Gid {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("maildir: giving %s to the owner of %s: %w", f.Name(), dir, err)
	}
	return nil
}

// sameOwnerDir is sameOwner for the directory p, just created in dir. It
// opens p without following a symbolic link and insists on a directory, so
// a name replaced in between never makes root give away another file.
func sameOwnerDir(p, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer f.Close()
	return sameOwner(f, dir)
}
