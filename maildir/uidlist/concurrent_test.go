package uidlist

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// helperEnv makes the test binary run syncHelper instead of the tests.
const helperEnv = "UIDLIST_TEST_SYNC_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(syncHelper(spec))
	}
	os.Exit(m.Run())
}

// syncHelper is the other process of TestConcurrentSyncProcesses: spec is
// "DIR TAG N". It prints every UID it is told as "UID BASE".
func syncHelper(spec string) int {
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[2])
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if err := syncWorker(f[0], f[1], n, func(uid uint32, base string) {
		fmt.Fprintf(out, "%d %s\n", uid, base)
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// syncWorker delivers n messages into dir one by one, syncing after each,
// and moves every other one to cur/ with a flag, reporting every UID that
// every Sync returns.
func syncWorker(dir, tag string, n int, report func(uint32, string)) error {
	m := Open(dir, nil)
	for i := range n {
		name := fmt.Sprintf("17000%05d.M%dP1.%s", i, i, tag)
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte("x\n"), 0o600); err != nil {
			return err
		}
		s, err := m.Sync()
		if err != nil {
			return err
		}
		for _, e := range s.Entries {
			report(e.UID, e.Base)
		}
		if i%2 == 0 {
			if err := os.Rename(filepath.Join(dir, "new", name), filepath.Join(dir, "cur", name+":2,S")); err != nil {
				return err
			}
		}
	}
	return nil
}

// uidChecker records UID/name pairs and fails the test when a UID names
// two files or a file gets two UIDs.
type uidChecker struct {
	t      *testing.T
	mu     sync.Mutex
	byUID  map[uint32]string
	byName map[string]uint32
}

func newUIDChecker(t *testing.T) *uidChecker {
	return &uidChecker{t: t, byUID: map[uint32]string{}, byName: map[string]uint32{}}
}

func (c *uidChecker) add(uid uint32, base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byUID[uid]; ok && old != base {
		c.t.Errorf("UID %d given to %s and %s", uid, old, base)
	}
	if old, ok := c.byName[base]; ok && old != uid {
		c.t.Errorf("%s got UIDs %d and %d", base, old, uid)
	}
	c.byUID[uid], c.byName[base] = base, uid
}

func TestConcurrentSyncGoroutines(t *testing.T) {
	t.Parallel()
	dir := newMaildir(t)
	c := newUIDChecker(t)
	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			if err := syncWorker(dir, fmt.Sprintf("g%d", w), perWorker, c.add); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checkFinal(t, dir, c, workers*perWorker)
}

func TestConcurrentSyncProcesses(t *testing.T) {
	t.Parallel()
	dir := newMaildir(t)
	c := newUIDChecker(t)
	const perWorker = 25
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s p%d %d", helperEnv, dir, p, perWorker))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("helper process: %v: %s", err, stderr.Bytes())
				return
			}
			for line := range strings.Lines(string(out)) {
				uid, base, _ := strings.Cut(strings.TrimSpace(line), " ")
				v, err := strconv.ParseUint(uid, 10, 32)
				if err != nil {
					t.Errorf("helper printed %q", line)
					return
				}
				c.add(uint32(v), base)
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			if err := syncWorker(dir, fmt.Sprintf("g%d", g), perWorker, c.add); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checkFinal(t, dir, c, 4*perWorker)
}

// checkFinal syncs once more and checks that every message has a UID that
// agrees with what the workers were told, and that the file is sound.
func checkFinal(t *testing.T, dir string, c *uidChecker, messages int) {
	t.Helper()
	s, err := Sync(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Entries) != messages {
		t.Errorf("%d entries, want %d", len(s.Entries), messages)
	}
	for _, e := range s.Entries {
		c.add(e.UID, e.Base)
	}
	l := readList(t, dir)
	if int(l.NextUID) != messages+1 {
		t.Errorf("NextUID = %d, want %d (no UID wasted or doubled)", l.NextUID, messages+1)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".lock")); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}
