package inetd

// End-to-end tests: the test server internal/echod, which gets its
// connections through Serve, run under the real launchers (--listen,
// systemd-socket-activate in its modes, ucspi-tcp's tcpserver), with and
// without implicit TLS.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait for a process or a peer, so that a broken
// server fails the test instead of hanging it.
const waitLimit = 10 * time.Second

// logBuffer collects a process's stderr and lets the test wait for a line.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) state() (string, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// proc is a launcher (or echod itself) started by a test.
type proc struct {
	cmd    *exec.Cmd
	log    *logBuffer
	exited chan struct{}
	err    error // set when exited is closed
}

func startProc(t *testing.T, argv []string, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), log: newLogBuffer(), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %q: %v", argv, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// waitLog waits until the log contains s. It returns false if the process
// exited first without logging it.
func (p *proc) waitLog(s string) bool {
	deadline := time.After(waitLimit)
	for {
		text, changed := p.log.state()
		if strings.Contains(text, s) {
			return true
		}
		select {
		case <-changed:
		case <-p.exited:
			return strings.Contains(p.log.String(), s)
		case <-deadline:
			return false
		}
	}
}

func (p *proc) mustLog(t *testing.T, s string) {
	t.Helper()
	if !p.waitLog(s) {
		t.Fatalf("%s: no %q in its log:\n%s", p.cmd.Path, s, p.log)
	}
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(waitLimit):
		t.Fatalf("%s still running %s later; log:\n%s", p.cmd.Path, waitLimit, p.log)
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL if the process does not exit.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// launcher describes one way of starting echod.
type launcher struct {
	name string
	tool string // the program that must be installed, "" for none
	// argv returns the command line to listen on addr and run echod.
	argv func(addr string, echod []string) []string
	// ready is what the launcher logs once it listens on addr.
	ready func(addr string) string
	mode  Mode // the mode echod must log
	// oneShot: each connection gets its own echod, which exits after it.
	oneShot bool
	// echodIsLauncher: the launched process is echod itself (execs it), so
	// it exits with echod's status on SIGTERM.
	echodIsLauncher bool
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

var launchers = []launcher{
	{
		name:            "listen",
		argv:            func(addr string, e []string) []string { return append(e, "--listen", addr) },
		ready:           func(addr string) string { return "inetd: mode=listen addr=" + addr },
		mode:            Listen,
		echodIsLauncher: true,
	},
	{
		name: "systemd-socket-activate (Accept=no)",
		tool: "systemd-socket-activate",
		argv: func(addr string, e []string) []string {
			return append([]string{"systemd-socket-activate", "-l", addr, "--fdname=echo"}, e...)
		},
		ready:           func(addr string) string { return "Listening on " + addr },
		mode:            SystemdListeners,
		echodIsLauncher: true,
	},
	{
		name: "systemd-socket-activate --accept (Accept=yes)",
		tool: "systemd-socket-activate",
		argv: func(addr string, e []string) []string {
			return append([]string{"systemd-socket-activate", "--accept", "-l", addr}, e...)
		},
		ready:   func(addr string) string { return "Listening on " + addr },
		mode:    SystemdConnection,
		oneShot: true,
	},
	{
		name: "systemd-socket-activate --inetd (wait)",
		tool: "systemd-socket-activate",
		argv: func(addr string, e []string) []string {
			return append([]string{"systemd-socket-activate", "--inetd", "-l", addr}, e...)
		},
		ready:           func(addr string) string { return "Listening on " + addr },
		mode:            InetdWait,
		echodIsLauncher: true,
	},
	{
		name: "systemd-socket-activate --inetd --accept (nowait)",
		tool: "systemd-socket-activate",
		argv: func(addr string, e []string) []string {
			return append([]string{"systemd-socket-activate", "--inetd", "--accept", "-l", addr}, e...)
		},
		ready:   func(addr string) string { return "Listening on " + addr },
		mode:    Stdio,
		oneShot: true,
	},
	{
		name: "tcpserver",
		tool: "tcpserver",
		argv: func(addr string, e []string) []string {
			host, port := hostPort(addr)
			// -v logs readiness; -H, -R and -l skip DNS and ident lookups.
			return append([]string{"tcpserver", "-v", "-HR", "-l", "localhost", host, port}, e...)
		},
		ready:   func(string) string { return "tcpserver: status: 0/" },
		mode:    Stdio,
		oneShot: true,
	},
}

// tlsRoot makes a postkit root with a certificate at the default place
// (etc/tls/cert.pem, key.pem) and returns it with a pool trusting it.
func tlsRoot(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	root := t.TempDir()
	pool := writeCert(t, filepath.Join(root, "etc/tls/cert.pem"), filepath.Join(root, "etc/tls/key.pem"))
	return root, pool
}

// launch starts echod under l listening on a free port and returns the
// process and a connection to it. A launcher that cannot bind the port
// (taken in the meantime) is retried on another.
func launch(t *testing.T, l launcher, echodArgs []string, env ...string) (*proc, net.Conn) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := startProc(t, l.argv(addr, echodArgs), env...)
		if p.waitLog(l.ready(addr)) {
			c, err := net.DialTimeout("tcp", addr, waitLimit)
			if err != nil {
				t.Fatalf("%s logged readiness but dialing %s: %v; log:\n%s", l.name, addr, err, p.log)
			}
			t.Cleanup(func() { c.Close() })
			return p, c
		}
		p.stop()
		if attempt == 3 {
			t.Fatalf("%s did not get ready on %s; log:\n%s", l.name, addr, p.log)
		}
	}
}

// client speaks echod's line protocol.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func newClient(t *testing.T, raw net.Conn, pool *x509.CertPool) *client {
	c := raw
	if pool != nil {
		c = tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	}
	c.SetDeadline(time.Now().Add(waitLimit))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) readLine() string {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading from echod: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.readLine(); got != want {
		c.t.Fatalf("echod said %q, want %q", got, want)
	}
}

func (c *client) cmd(line, want string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", line); err != nil {
		c.t.Fatalf("sending %q: %v", line, err)
	}
	c.expect(want)
}

// quit ends the session and checks that the server closes the connection:
// with inetd and tcpserver that needs every copy of the socket in the server
// process closed.
func (c *client) quit() {
	c.t.Helper()
	c.cmd("QUIT", "BYE")
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		c.t.Fatalf("after BYE read %d bytes, %v, want EOF", n, err)
	}
}

func (c *client) greeting(tlsOn bool) {
	c.t.Helper()
	c.expect(fmt.Sprintf("HELLO remote=%s tls=%s", c.conn.LocalAddr(), map[bool]string{true: "yes", false: "no"}[tlsOn]))
}

func TestLaunchers(t *testing.T) {
	bin := echod(t)
	for _, l := range launchers {
		for _, tlsOn := range []bool{false, true} {
			name := l.name + map[bool]string{false: "/plain", true: "/tls-implicit"}[tlsOn]
			t.Run(name, func(t *testing.T) {
				if l.tool != "" {
					if _, err := exec.LookPath(l.tool); err != nil {
						t.Skipf("%s not installed: %v", l.tool, err)
					}
				}
				t.Parallel()
				root, pool := tlsRoot(t)
				args := []string{bin, "--root", root}
				if tlsOn {
					args = append(args, "--tls-implicit")
				} else {
					pool = nil
				}
				p, raw := launch(t, l, args)
				c := newClient(t, raw, pool)
				// The remote address is the client's: the socket, not a pipe,
				// reached the server; TLS reached it as a *tls.Conn.
				c.greeting(tlsOn)
				c.cmd("hello world", "ECHO hello world")
				c.cmd("ENV LISTEN_FDS", "ENV LISTEN_FDS unset")
				c.cmd("ENV LISTEN_PID", "ENV LISTEN_PID unset")
				c.cmd("ENV LISTEN_FDNAMES", "ENV LISTEN_FDNAMES unset")
				c.cmd("UMASK", "UMASK 0077")
				c.quit()

				modeLine := "inetd: mode=" + l.mode.String() + " "
				p.mustLog(t, modeLine)
				if tlsOn {
					p.mustLog(t, "tls=implicit")
				}
				if l.mode == SystemdListeners {
					p.mustLog(t, "name=echo")
				}
				if l.oneShot {
					// The per-connection echod returned from Serve and exited.
					p.mustLog(t, "echod: exit status=0")
					return
				}
				// A persistent server serves a second connection.
				raw2, err := net.DialTimeout("tcp", raw.RemoteAddr().String(), waitLimit)
				if err != nil {
					t.Fatal(err)
				}
				defer raw2.Close()
				c2 := newClient(t, raw2, pool)
				c2.greeting(tlsOn)
				c2.quit()
				if l.echodIsLauncher {
					p.cmd.Process.Signal(syscall.SIGTERM)
					if err := p.wait(t); err != nil {
						t.Errorf("echod after SIGTERM: %v, want exit status 0; log:\n%s", err, p.log)
					}
				}
			})
		}
	}
}

// TestGracefulShutdown: on SIGTERM in --listen mode the server stops
// accepting at once but lets an open session finish, then exits 0.
func TestGracefulShutdown(t *testing.T) {
	bin := echod(t)
	p, raw := launch(t, launchers[0], []string{bin, "--root", t.TempDir(), "--grace", "1h"})
	c := newClient(t, raw, nil)
	c.greeting(false)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.mustLog(t, "inetd: signal=terminated action=stopping listening=no sessions=1")
	if c2, err := net.Dial("tcp", raw.RemoteAddr().String()); err == nil {
		c2.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}
	c.cmd("still there?", "ECHO still there?")
	c.quit()
	if err := p.wait(t); err != nil {
		t.Errorf("echod: %v, want exit status 0; log:\n%s", err, p.log)
	}
	if strings.Contains(p.log.String(), "closed sessions") {
		t.Errorf("a session was closed by force:\n%s", p.log)
	}
}

// TestShutdownClosesSessions: sessions still open when the grace period ends,
// or when a second signal comes, are closed and the server exits 0.
func TestShutdownClosesSessions(t *testing.T) {
	bin := echod(t)
	for _, tt := range []struct {
		name, grace  string
		secondSignal bool
	}{
		{"grace period over", "50ms", false},
		{"second signal", "1h", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, raw := launch(t, launchers[0], []string{bin, "--root", t.TempDir(), "--grace", tt.grace})
			c := newClient(t, raw, nil)
			c.greeting(false)
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.mustLog(t, "inetd: signal=terminated action=stopping")
			if tt.secondSignal {
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.mustLog(t, "inetd: signal=terminated action=closing-sessions reason=second-signal")
			}
			if n, err := c.r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("open session after shutdown: read %d bytes, %v, want the connection closed", n, err)
			}
			if err := p.wait(t); err != nil {
				t.Errorf("echod: %v, want exit status 0; log:\n%s", err, p.log)
			}
			p.mustLog(t, "inetd: action=closing-sessions reason=grace-period-over sessions=1")
		})
	}
}

// TestNoMode: without --listen, systemd or inetd, the server says what to do.
// LISTEN_FDS meant for another process is ignored even with a listening
// socket at fd 3.
func TestNoMode(t *testing.T) {
	bin := echod(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, "--root", t.TempDir())
	cmd.ExtraFiles = []*os.File{f} // fd 3
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_PID=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("echod without a mode: %v, want exit status 1; output:\n%s", err, out)
	}
	if want := "stdin is not a socket: use --listen ADDR, or run under systemd or inetd"; !strings.Contains(string(out), want) {
		t.Errorf("echod without a mode said:\n%s\nwant %q", out, want)
	}
}

// TestStderrIsConnection runs echod as classic inetd does, with the
// connection on stdin, stdout and stderr: no log line may reach the client.
func TestStderrIsConnection(t *testing.T) {
	bin := echod(t)
	raw, server := tcpPair(t)
	f, err := server.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--root", t.TempDir())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	// Only the server keeps the connection open from here.
	f.Close()
	server.Close()
	c := newClient(t, raw, nil)
	c.greeting(false)
	c.cmd("hello", "ECHO hello")
	c.quit()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("echod: %v, want exit status 0", err)
		}
	case <-time.After(waitLimit):
		t.Errorf("echod still running %s after the session ended", waitLimit)
	}
}

// TestUser: with --user, the server binds as root and serves as that user.
func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("--user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	bin := echod(t)
	root, pool := tlsRoot(t) // keys readable only by root: loaded before the switch
	p, raw := launch(t, launchers[0], []string{bin, "--root", root, "--user", "nobody", "--tls-implicit"})
	c := newClient(t, raw, pool)
	c.greeting(true)
	c.cmd("ID", fmt.Sprintf("ID uid=%s euid=%s gid=%s egid=%s groups=%s", nobody.Uid, nobody.Uid, nobody.Gid, nobody.Gid, nobody.Gid))
	c.quit()
	p.mustLog(t, "inetd: privileges=dropped user=nobody")
}
