package safefile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SyncDir fsyncs a directory, making the creation, rename or removal of
// entries in it durable.
//
// Goroutines of one process that sync the same directory at the same time
// share fsyncs (group commit): a caller waits for an fsync of the directory
// that started after it called, running one itself when none is under way,
// so that twenty sessions committing into one queue directory, or five
// deliveries into one Maildir, cost one flush of the disk's cache instead
// of twenty or five. An fsync that started before the call would not do: it
// may have missed the caller's change. A caller gets an error if that fsync
// or a later one that it waited through failed.
func SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	d := dirSyncs.get(dir)
	defer dirSyncs.put(dir, d)
	d.mu.Lock()
	defer d.mu.Unlock()
	want := d.started + 1
	for d.finished < want {
		if d.running {
			d.waiting++
			d.done.Wait()
			d.waiting--
			continue
		}
		d.running = true
		d.started++
		n := d.started
		d.mu.Unlock()
		err := fsyncDir(dir)
		d.mu.Lock()
		d.running = false
		d.finished = n
		if err != nil {
			d.failed, d.err = n, err
		}
		d.done.Broadcast()
	}
	if d.failed >= want {
		return d.err
	}
	return nil
}

// fsyncDir is the fsync itself; tests replace it to count and stall syncs.
var fsyncDir = syncDir

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("safefile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("safefile: fsync %s: %w", dir, err)
	}
	return nil
}

// dirSync is the fsync state of one directory. Syncs are numbered from 1;
// started and finished count them.
type dirSync struct {
	mu                sync.Mutex
	done              sync.Cond // broadcast when a sync finishes
	started, finished uint64
	running           bool
	waiting           int    // callers waiting for the running sync to finish
	failed            uint64 // the last sync that failed, 0 if none
	err               error  // its error
	users             int    // callers holding it, under dirSyncs.mu
}

// dirSyncs maps directories to their dirSync while someone syncs them, so
// that the map holds only the directories in use.
var dirSyncs = dirSyncTable{m: map[string]*dirSync{}}

type dirSyncTable struct {
	mu sync.Mutex
	m  map[string]*dirSync
}

func (t *dirSyncTable) get(dir string) *dirSync {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.m[dir]
	if d == nil {
		d = &dirSync{}
		d.done.L = &d.mu
		t.m[dir] = d
	}
	d.users++
	return d
}

func (t *dirSyncTable) put(dir string, d *dirSync) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.users--; d.users == 0 {
		delete(t.m, dir)
	}
}
