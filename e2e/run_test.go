package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// builtDaemons builds every program that exists under cmd/ and returns the
// directory holding them, as `make build` would fill bin/.
func builtDaemons(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(moduleRoot(), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		Bin(t, e.Name())
	}
	return binDir
}

// freePortOffset returns an offset that makes every make-run port free.
func freePortOffset(t *testing.T) int {
	t.Helper()
	ports := []int{2525, 2587, 2465, 2110, 2995, 2143, 2993}
	for range 50 {
		off := 20000 + rand.IntN(30000)
		free := true
		for _, p := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return off
		}
	}
	t.Fatal("no free port range")
	return 0
}

// startRun starts the make-run driver and returns it with the lines it
// printed up to "ready".
func startRun(t *testing.T, bin, dir string, offset int) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(Bin(t, "scripts/run"), "-bin", bin, "-dir", dir, "-port-offset", fmt.Sprint(offset))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("make run exited before ready; printed:\n%s", strings.Join(got, "\n"))
			}
			got = append(got, line)
			if line == "ready" {
				go func() {
					for range lines {
					}
				}()
				return cmd, got
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("make run not ready after 2 minutes; printed:\n%s", strings.Join(got, "\n"))
		}
	}
}

func TestMakeRun(t *testing.T) {
	bin := builtDaemons(t)
	dir := filepath.Join(t.TempDir(), "run")
	offset := freePortOffset(t)
	cmd, out := startRun(t, bin, dir, offset)
	text := strings.Join(out, "\n")
	m := regexp.MustCompile(`(?m)^\s*password: (\S+)$`).FindStringSubmatch(text)
	if m == nil || !strings.Contains(text, "user:     demo@example.org") {
		cmd.Process.Kill()
		t.Fatalf("make run did not print the demo user and password:\n%s", text)
	}
	password := m[1]
	check := exec.Command(filepath.Join(bin, "mkuser"), "--root", dir, "check", "demo@example.org")
	check.Stdin = strings.NewReader(password + "\n")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("mkuser check with the printed password: %v %s", err, out)
	}
	for _, f := range []string{"etc/tls/cert.pem", "etc/tls/key.pem", "mail/example.org/demo/new", "mail/example.org/demo/.Sent/cur"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("make run did not create %s: %v", f, err)
		}
	}
	// Every daemon that is built listens on its port.
	var ports []int
	for _, l := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(text, -1) {
		var p int
		fmt.Sscan(l[1], &p)
		ports = append(ports, p)
		c, err := net.DialTimeout("tcp", l[0], 5*time.Second)
		if err != nil {
			t.Errorf("make run says %s, but dialing it: %v", l[0], err)
			continue
		}
		c.Close()
	}
	if _, err := os.Stat(filepath.Join(bin, "pop3d")); err == nil && len(ports) == 0 {
		t.Error("pop3d is built but make run lists no port")
	}
	// Ctrl-C stops everything cleanly.
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("make run after Ctrl-C: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("make run did not stop within 30s of Ctrl-C")
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts after make run stopped", p)
		}
	}
	// A second run keeps the demo user and prints the same password.
	cmd2, out2 := startRun(t, bin, dir, offset)
	cmd2.Process.Signal(syscall.SIGINT)
	cmd2.Wait()
	if !strings.Contains(strings.Join(out2, "\n"), "password: "+password) {
		t.Errorf("second make run printed another password:\n%s", strings.Join(out2, "\n"))
	}
}
