package inetd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// dropUserEnv names the account the test binary, run again as a child by
// TestDropPrivileges, switches to.
const dropUserEnv = "INETD_TEST_DROP_USER"

var (
	binDir    string
	echodOnce sync.Once
	echodPath string
	echodErr  error
)

func TestMain(m *testing.M) {
	if u := os.Getenv(dropUserEnv); u != "" {
		dropChild(u)
		return
	}
	dir, err := os.MkdirTemp("", "inetd-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// echod builds the test server internal/echod once and returns its path.
func echod(t testing.TB) string {
	t.Helper()
	echodOnce.Do(func() {
		echodPath = filepath.Join(binDir, "echod")
		cmd := exec.Command("go", "build", "-o", echodPath, "./internal/echod")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			echodErr = fmt.Errorf("building echod: %v\n%s", err, stderr.String())
		}
	})
	if echodErr != nil {
		t.Fatal(echodErr)
	}
	return echodPath
}

// dropChild switches to user and prints, one key=value per line, what the
// process is afterwards and what further attempts to change it give.
func dropChild(user string) {
	errText := func(err error) string {
		if err == nil {
			return "nil"
		}
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	fmt.Printf("drop=%s\n", errText(DropPrivileges(user)))
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	groups, _ := syscall.Getgroups()
	fmt.Printf("uids=%d,%d,%d\n", ruid, euid, suid)
	fmt.Printf("gids=%d,%d,%d\n", rgid, egid, sgid)
	fmt.Printf("groups=%v\n", groups)
	fmt.Printf("again=%s\n", errText(DropPrivileges(user)))
	fmt.Printf("root=%s\n", errText(DropPrivileges("root")))
	fmt.Printf("daemon=%s\n", errText(DropPrivileges("daemon")))
	fmt.Printf("setuid0=%s\n", errText(syscall.Setuid(0)))
	os.Exit(0)
}

func TestBlockingProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(base)
	tests := []struct {
		name   string
		env    string
		perCPU int
		want   int
	}{
		{"doubled", "", 2, 2 * base},
		{"one per CPU is the default", "", 1, base},
		{"zero changes nothing", "", 0, base},
		{"environment wins", "3", 2, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tt.env)
			runtime.GOMAXPROCS(base)
			BlockingProcs(tt.perCPU)
			if got := runtime.GOMAXPROCS(0); got != tt.want {
				t.Errorf("BlockingProcs(%d) with GOMAXPROCS=%q: GOMAXPROCS = %d, want %d", tt.perCPU, tt.env, got, tt.want)
			}
		})
	}
}
