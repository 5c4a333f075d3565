//go:build !linux

package uidlist

import "io/fs"

// ctimeOf returns the modification time where the inode change time is not
// at hand.
func ctimeOf(info fs.FileInfo) int64 { return info.ModTime().Unix() }
