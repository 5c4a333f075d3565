package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// procUsage describes a running process's resident memory and open file
// descriptors, from /proc, for the load and crash tests to log: "rss=12.3MiB
// fds=42". They are reported, not asserted: the figures depend on the
// machine.
func procUsage(pid int) string {
	rss := "?"
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
				var kb int
				fmt.Sscan(f[1], &kb)
				rss = fmt.Sprintf("%.1fMiB", float64(kb)/1024)
			}
		}
	}
	fds := "?"
	if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		fds = fmt.Sprint(len(entries))
	}
	return "rss=" + rss + " fds=" + fds
}

// raiseFileLimit makes sure this process may open at least n files,
// raising RLIMIT_NOFILE's soft limit (and the hard one, which needs root)
// when it is lower, and logs what it did. Go already raises the soft limit
// to the hard one at start, so this changes something only where the hard
// limit is low; the daemons started afterwards inherit the new limits.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		t.Logf("RLIMIT_NOFILE soft %d, hard %d: enough for %d files", lim.Cur, lim.Max, n)
		return
	}
	old := lim
	lim.Cur = n
	lim.Max = max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("RLIMIT_NOFILE is %d (hard %d) and cannot be raised to %d: %v", old.Cur, old.Max, n, err)
	}
	t.Logf("raised RLIMIT_NOFILE from %d (hard %d) to %d (hard %d)", old.Cur, old.Max, lim.Cur, lim.Max)
}
