package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// CleanTmpAge is how long the Maildir specification lets a file sit in tmp/
// before a cleaner may assume its writer is dead.
const CleanTmpAge = 36 * time.Hour

// CleanTmp removes the files in tmp/ that nothing has touched for at least
// age (CleanTmpAge, normally), left by writers that crashed, and returns how
// many it removed. It goes by the inode change time, not the mtime: Deliver
// sets a tmp file's mtime to the (possibly old) ModTime before linking it,
// and the change time cannot be set back, so a delivery in progress is never
// mistaken for a leftover.
func (d Dir) CleanTmp(age time.Duration) (int, error) {
	dir := d.Tmp()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("maildir: clean tmp: %w", err)
	}
	now := time.Now()
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if now.Sub(lastChange(info)) < age {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}
