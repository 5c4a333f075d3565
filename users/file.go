package users

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/postkit/postkit/safefile"
)

// LockTimeout is how long Update and UpdateApp wait for another writer's
// lock before failing with an error that wraps safefile.ErrLockTimeout.
var LockTimeout = 10 * time.Second

// fileMode is the mode of a new etc/users or etc/app-passwords: the hashes
// are secret, but the group may read them (chgrp the file to Dovecot's group
// to let its auth process use it).
const fileMode = 0o640

// updateFile is the locked read-modify-write behind Update and UpdateApp.
// change gets the current contents (nil if the file is missing) and returns
// the new ones. A rewritten file keeps the mode and, where the process may
// set them, the owner and group of the old one, so an admin's chgrp survives.
func updateFile(path string, change func(old []byte) ([]byte, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	lock, err := safefile.LockFile(path+".lock", LockTimeout)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer lock.Unlock()

	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("users: %w", err)
	}
	existed := err == nil
	data, err := change(old)
	if err != nil {
		return err
	}
	if existed && bytes.Equal(old, data) {
		return nil
	}
	mode, uid, gid := os.FileMode(fileMode), -1, -1
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	err = safefile.Write(path, mode, func(w io.Writer) error {
		// The temporary file is created with mode minus the umask (mkuser
		// runs with 077); set the intended mode explicitly.
		if f, ok := w.(*os.File); ok {
			if err := f.Chmod(mode); err != nil {
				return err
			}
			if uid >= 0 {
				// Best effort: only root may give a file away, and a
				// non-root admin editing their own root keeps owning it.
				_ = f.Chown(uid, gid)
			}
		}
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}
