//go:build !linux

package maildir

import (
	"io/fs"
	"time"
)

// lastChange returns a file's mtime where the change time is not at hand.
func lastChange(info fs.FileInfo) time.Time { return info.ModTime() }
