package uidlist

import (
	"io/fs"
	"syscall"
)

// ctimeOf returns the inode change time in seconds, which Dovecot's dotlock
// code watches besides the modification time.
func ctimeOf(info fs.FileInfo) int64 {
	return info.Sys().(*syscall.Stat_t).Ctim.Sec
}
