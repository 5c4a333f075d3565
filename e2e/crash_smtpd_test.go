package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// crashSMTPd is how the crash tests run smtpd and kill it.
type crashSMTPd interface {
	// addr is where the clients connect.
	addr() string
	// kill kills smtpd processes with SIGKILL (one of them, when there
	// are several) and reports whether there was one to kill; what it
	// killed is serving again when it returns.
	kill(rng *rand.Rand) bool
	// lines returns the log lines of every smtpd process so far.
	lines() []string
	// usage describes the resources of what is running, for the log.
	usage() string
}

// standaloneSMTPd is one smtpd with --listen, serving every session; a
// kill kills it and starts another (on another port).
type standaloneSMTPd struct {
	t       *testing.T
	root    string
	args    []string
	cur     *daemon
	servers []*daemon
	address atomic.Value
}

func newStandaloneSMTPd(t *testing.T, root string) crashSMTPd {
	s := &standaloneSMTPd{t: t, root: root, args: []string{"--max-sessions-per-client", "100"}}
	s.start()
	return s
}

func (s *standaloneSMTPd) start() {
	s.cur = startSMTPd(s.t, s.root, s.args...)
	s.servers = append(s.servers, s.cur)
	s.address.Store(s.cur.addr)
}

func (s *standaloneSMTPd) addr() string { return s.address.Load().(string) }

func (s *standaloneSMTPd) kill(*rand.Rand) bool {
	s.cur.cmd.Process.Kill()
	<-s.cur.done
	s.cur.cmd.Wait()
	s.start()
	return true
}

func (s *standaloneSMTPd) lines() []string {
	var all []string
	for _, d := range s.servers {
		all = append(all, d.lines()...)
	}
	return all
}

func (s *standaloneSMTPd) usage() string { return "smtpd " + procUsage(s.cur.cmd.Process.Pid) }

// perConnectionSMTPd serves the way inetd "nowait", tcpserver and systemd
// Accept=yes do: the test accepts the connections on a loopback listener
// and starts one smtpd per connection, with the connection as its standard
// input and output (inetd's Stdio mode). A kill kills one live session's
// process; the listener goes on accepting.
type perConnectionSMTPd struct {
	t    *testing.T
	root string
	l    net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	sessions map[*exec.Cmd]chan struct{} // live, with a channel closed when it has exited
	started  int
	failed   []string // processes that could not be started
	log      []string
}

func newPerConnectionSMTPd(t *testing.T, root string) crashSMTPd {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &perConnectionSMTPd{t: t, root: root, l: l, sessions: map[*exec.Cmd]chan struct{}{}}
	bin := Bin(t, "smtpd")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.serve(bin, c.(*net.TCPConn))
		}
	}()
	t.Cleanup(s.stop)
	return s
}

// serve starts the smtpd of connection c.
func (s *perConnectionSMTPd) serve(bin string, c *net.TCPConn) {
	defer c.Close()
	f, err := c.File()
	if err != nil {
		s.fail(err)
		return
	}
	defer f.Close()
	cmd := exec.Command(bin, "--root", s.root, "--hostname", "mx.test", "--auth-failure-delay", "1ms")
	cmd.Stdin, cmd.Stdout = f, f
	stderr := &crashLog{s: s}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		s.fail(err)
		return
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.sessions[cmd] = done
	s.started++
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		cmd.Wait()
		s.mu.Lock()
		if len(stderr.partial) > 0 {
			s.log = append(s.log, string(stderr.partial))
		}
		delete(s.sessions, cmd)
		s.mu.Unlock()
		close(done)
	}()
}

func (s *perConnectionSMTPd) fail(err error) {
	s.mu.Lock()
	s.failed = append(s.failed, err.Error())
	s.mu.Unlock()
}

// crashLog collects the log lines of one session process into the
// shared log: its standard error is copied in by exec's goroutine, in
// writes that need not end with whole lines, so each process has its own
// unfinished line.
type crashLog struct {
	s       *perConnectionSMTPd
	partial []byte // guarded by s.mu
}

func (l *crashLog) Write(p []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte("\n"))
		if !ok {
			break
		}
		l.s.log = append(l.s.log, string(line))
		l.partial = rest
	}
	return len(p), nil
}

func (s *perConnectionSMTPd) addr() string { return s.l.Addr().String() }

func (s *perConnectionSMTPd) kill(rng *rand.Rand) bool {
	s.mu.Lock()
	var live []*exec.Cmd
	for cmd := range s.sessions {
		live = append(live, cmd)
	}
	// Map order is random, not the test's seeded order.
	slices.SortFunc(live, func(a, b *exec.Cmd) int { return a.Process.Pid - b.Process.Pid })
	if len(live) == 0 {
		s.mu.Unlock()
		return false
	}
	cmd := live[rng.IntN(len(live))]
	done := s.sessions[cmd]
	s.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return true
}

func (s *perConnectionSMTPd) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *perConnectionSMTPd) usage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("smtpd: one process per connection, %d started, %d running", s.started, len(s.sessions))
}

// stop closes the listener and stops the sessions left (SIGTERM), fails
// the test if a process could not be started, and prints the sessions'
// log if the test failed.
func (s *perConnectionSMTPd) stop() {
	s.l.Close()
	s.mu.Lock()
	for cmd := range s.sessions {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	failed := s.failed
	s.mu.Unlock()
	s.wg.Wait()
	if len(failed) > 0 {
		s.t.Errorf("%d smtpd sessions could not be started, the first: %s", len(failed), failed[0])
	}
	if s.t.Failed() {
		s.t.Logf("smtpd sessions' log:\n%s", strings.Join(s.lines(), "\n"))
	}
}
