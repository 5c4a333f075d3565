//go:build unix

package imapcache

import (
	"io/fs"
	"syscall"
)

// inode returns the file's inode number, which tells a replaced file from
// the one read before even when size and mtime agree.
func inode(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Ino)
	}
	return 0
}
