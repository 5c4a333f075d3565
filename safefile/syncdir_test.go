package safefile

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// stallSyncs replaces fsyncDir for the test: every sync is counted and
// waits for a value on release, and fails with the value if it is an error.
func stallSyncs(t *testing.T) (calls *atomic.Int32, entered chan struct{}, release chan error) {
	calls = new(atomic.Int32)
	entered, release = make(chan struct{}, 100), make(chan error)
	fsyncDir = func(string) error {
		calls.Add(1)
		entered <- struct{}{}
		return <-release
	}
	t.Cleanup(func() { fsyncDir = syncDir })
	return calls, entered, release
}

func TestSyncDirSharesOneSyncAmongWaiters(t *testing.T) {
	calls, entered, release := stallSyncs(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 11)
	wg.Go(func() { errs <- SyncDir(dir) })
	<-entered // the first sync runs; it may have missed the others' changes
	for range 10 {
		wg.Go(func() { errs <- SyncDir(dir) })
	}
	// Let the ten queue up behind the running sync, then finish it; one
	// more sync, started after all ten called, serves them all.
	waitWaiting(t, dir, 10)
	release <- nil
	<-entered
	release <- nil
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("SyncDir = %v", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("11 concurrent SyncDirs made %d fsyncs, want 2", n)
	}
	if _, ok := dirSyncs.m[dir]; ok {
		t.Errorf("the table still holds %s after every caller returned", dir)
	}
}

func TestSyncDirReportsTheFailureToItsWaiters(t *testing.T) {
	_, entered, release := stallSyncs(t)
	dir := t.TempDir()
	boom := errors.New("I/O error")
	first := make(chan error, 1)
	go func() { first <- SyncDir(dir) }()
	<-entered
	second := make(chan error, 1)
	go func() { second <- SyncDir(dir) }()
	waitWaiting(t, dir, 1)
	release <- nil // the first caller's sync succeeds
	<-entered
	release <- boom // the one the second caller needs fails
	if err := <-first; err != nil {
		t.Errorf("first SyncDir = %v, want nil", err)
	}
	if err := <-second; !errors.Is(err, boom) {
		t.Errorf("second SyncDir = %v, want %v", err, boom)
	}
}

func TestSyncDirReal(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir = %v", err)
	}
	if err := SyncDir(t.TempDir() + "/missing"); err == nil {
		t.Error("SyncDir of a missing directory = nil, want an error")
	}
}

// waitWaiting waits until n callers wait for dir's running sync.
func waitWaiting(t *testing.T, dir string, n int) {
	t.Helper()
	for {
		dirSyncs.mu.Lock()
		d := dirSyncs.m[dir]
		dirSyncs.mu.Unlock()
		waiting := 0
		if d != nil {
			d.mu.Lock()
			waiting = d.waiting
			d.mu.Unlock()
		}
		if waiting == n {
			return
		}
		if waiting > n {
			t.Fatalf("%d callers waiting, want %d", waiting, n)
		}
		runtime.Gosched()
	}
}
