package e2e

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemon is a running smtpd, pop3d or imapd whose standard error the test
// collects, so it can wait for log lines instead of sleeping.
type daemon struct {
	cmd  *exec.Cmd
	addr string // what ready found: the address to connect to
	mu   sync.Mutex
	log  []string
	more chan struct{} // signalled when a log line arrives
	done chan struct{} // closed when stderr ends
}

// listenLine is inetd's line for a --listen socket.
var listenLine = regexp.MustCompile(`mode=listen addr=(\S+)`)

// listenAddr is a ready function for runDaemon: the address of a daemon
// started with --listen 127.0.0.1:0.
func listenAddr(line string) string {
	if m := listenLine.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// runDaemon starts cmd and waits until ready returns an address for one of
// its stderr lines. The daemon is stopped with SIGTERM when the test ends,
// and its log printed if the test failed.
func runDaemon(t *testing.T, cmd *exec.Cmd, ready func(line string) string) *daemon {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemon{cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", cmd.Path, strings.Join(p.lines(), "\n"))
		}
	})
	p.addr = p.waitLog(t, ready)
	return p
}

func (p *daemon) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

// waitLog waits for a log line for which match returns non-empty, and
// returns that.
func (p *daemon) waitLog(t *testing.T, match func(line string) string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		for _, l := range p.lines() {
			if s := match(l); s != "" {
				return s
			}
		}
		select {
		case <-p.more:
		case <-p.done:
			for _, l := range p.lines() {
				if s := match(l); s != "" {
					return s
				}
			}
			t.Fatalf("%s ended without the expected log line; log:\n%s", filepath.Base(p.cmd.Path), strings.Join(p.lines(), "\n"))
		case <-timeout:
			t.Fatalf("no expected log line after 60s; log:\n%s", strings.Join(p.lines(), "\n"))
		}
	}
}

// waitContains waits for a log line containing s and returns it.
func (p *daemon) waitContains(t *testing.T, s string) string {
	t.Helper()
	return p.waitLog(t, func(l string) string {
		if strings.Contains(l, s) {
			return l
		}
		return ""
	})
}
