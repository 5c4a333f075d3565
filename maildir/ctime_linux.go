package maildir

import (
	"io/fs"
	"syscall"
	"time"
)

// lastChange returns the later of a file's mtime and its inode change time.
func lastChange(info fs.FileInfo) time.Time {
	t := info.ModTime()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(st.Ctim.Unix()); c.After(t) {
			t = c
		}
	}
	return t
}
