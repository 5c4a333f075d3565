package inetd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/syslog"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maillog"
)

// Mode is how a daemon gets its connections.
type Mode int

const (
	// Listen: the daemon listens on the --listen addresses itself.
	Listen Mode = iota
	// SystemdListeners: systemd passed listening sockets (Accept=no).
	SystemdListeners
	// SystemdConnection: systemd passed one connected socket (Accept=yes).
	SystemdConnection
	// Stdio: inetd (nowait) or tcpserver passed the connection as stdin/stdout.
	Stdio
	// InetdWait: inetd in "wait" mode (or systemd-socket-activate --inetd
	// without --accept) passed a listening socket as stdin.
	InetdWait
)

func (m Mode) String() string {
	switch m {
	case Listen:
		return "listen"
	case SystemdListeners:
		return "systemd-listeners"
	case SystemdConnection:
		return "systemd-connection"
	case Stdio:
		return "stdio"
	case InetdWait:
		return "inetd-wait"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// listenFDsStart is the first file descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// errNoMode is returned when no way to get connections applies.
var errNoMode = errors.New("inetd: no --listen given and stdin is not a socket: use --listen ADDR, or run under systemd or inetd")

// Mode tells which mode Serve would use, without taking the sockets or
// changing the environment.
func (c Config) Mode() (Mode, error) { return detectMode(c.Listen, listenFDsStart, 0) }

// detectMode is Mode with systemd's first descriptor and stdin as parameters.
func detectMode(listen []string, start, stdin int) (Mode, error) {
	if len(listen) > 0 {
		return Listen, nil
	}
	fds, _, err := systemdFDs(start, false)
	if err != nil {
		return 0, err
	}
	if len(fds) > 0 {
		return systemdMode(fds)
	}
	return stdinMode(stdin)
}

// systemdFDs returns the file descriptors passed by systemd following
// sd_listen_fds(3): LISTEN_FDS of them from fd start, provided LISTEN_PID is
// this process (otherwise they were meant for a parent and are ignored). With
// unset it removes the three variables, as sd_listen_fds(unset_environment=1)
// does, so that programs this daemon starts do not take the sockets for
// theirs.
func systemdFDs(start int, unset bool) (fds []int, names []string, err error) {
	pidVar, fdsVar, namesVar := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	if unset {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}
	if fdsVar == "" {
		return nil, nil, nil
	}
	if pid, err := strconv.Atoi(pidVar); err != nil || pid != os.Getpid() {
		return nil, nil, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 {
		return nil, nil, fmt.Errorf("inetd: LISTEN_FDS=%q is not a number of file descriptors", fdsVar)
	}
	names = make([]string, n)
	if namesVar != "" {
		if split := strings.Split(namesVar, ":"); len(split) == n {
			copy(names, split)
		}
	}
	for i := range n {
		fds = append(fds, start+i)
	}
	return fds, names, nil
}

// systemdMode tells Accept=no (all listening sockets) from Accept=yes (one
// connected stream socket) by SO_ACCEPTCONN: go-systemd's Listeners() cannot,
// and wraps a connection as a listener whose Accept fails with EINVAL.
func systemdMode(fds []int) (Mode, error) {
	listening := 0
	for _, fd := range fds {
		l, err := isListening(fd)
		if err != nil {
			return 0, fmt.Errorf("inetd: fd %d from systemd: %w", fd, err)
		}
		if l {
			listening++
		}
	}
	switch {
	case listening == len(fds):
		return SystemdListeners, nil
	case len(fds) == 1:
		if err := checkConnection(fds[0]); err != nil {
			return 0, fmt.Errorf("inetd: fd %d from systemd: %w", fds[0], err)
		}
		return SystemdConnection, nil
	}
	return 0, fmt.Errorf("inetd: systemd passed %d file descriptors of which %d are listening sockets: "+
		"use either listening stream sockets (Accept=no) or Accept=yes", len(fds), listening)
}

// isListening reports whether fd is a listening socket (SO_ACCEPTCONN).
func isListening(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return false, fmt.Errorf("not a socket: %w", err)
	}
	return v != 0, nil
}

// checkConnection checks that fd is a connected stream socket that is not
// listening: what inetd nowait, tcpserver and Accept=yes pass.
func checkConnection(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("not a socket: %w", err)
	}
	if typ != unix.SOCK_STREAM {
		return fmt.Errorf("socket of type %d is not a stream socket", typ)
	}
	if l, err := isListening(fd); err != nil {
		return err
	} else if l {
		return errors.New("is a listening socket, not a connection")
	}
	return nil
}

// stdinMode tells whether fd (stdin) is a connection from inetd "nowait" or
// tcpserver, or a listening socket from inetd "wait".
func stdinMode(fd int) (Mode, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, errNoMode
	}
	if l, err := isListening(fd); err != nil {
		return 0, fmt.Errorf("inetd: stdin: %w", err)
	} else if l {
		return InetdWait, nil
	}
	if err := checkConnection(fd); err != nil {
		return 0, fmt.Errorf("inetd: stdin: %w", err)
	}
	return Stdio, nil
}

// activation is what Serve works with: the listeners of the mode that
// applies and one log line for each.
type activation struct {
	mode      Mode
	listeners []net.Listener
	logs      []string
}

func (a *activation) close() {
	for _, l := range a.listeners {
		l.Close()
	}
}

// activate takes the sockets of the first mode that applies.
func activate(cfg Config) (*activation, error) {
	if len(cfg.Listen) > 0 {
		return listenAll(cfg.Listen)
	}
	fds, names, err := systemdFDs(listenFDsStart, true)
	if err != nil {
		return nil, err
	}
	if len(fds) > 0 {
		mode, err := systemdMode(fds)
		if err != nil {
			return nil, err
		}
		if mode == SystemdConnection {
			return fromConnFD(mode, fds[0])
		}
		return fromListenerFDs(fds, names)
	}
	mode, err := stdinMode(0)
	if err != nil {
		return nil, err
	}
	var a *activation
	if mode == InetdWait {
		a, err = fromStdinListener()
	} else {
		a, err = fromConnFD(Stdio, 0)
	}
	if err != nil {
		return nil, err
	}
	if err := releaseStdio(); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func listenAll(addrs []string) (*activation, error) {
	a := &activation{mode: Listen}
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("inetd: %w", err)
		}
		a.listeners = append(a.listeners, l)
		a.logs = append(a.logs, fmt.Sprintf("inetd: mode=%s addr=%s", a.mode, l.Addr()))
	}
	return a, nil
}

func fromListenerFDs(fds []int, names []string) (*activation, error) {
	a := &activation{mode: SystemdListeners}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd))
		// FileListener works on a close-on-exec duplicate; the original is
		// closed so that no program this daemon starts inherits it.
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			a.close()
			return nil, fmt.Errorf("inetd: fd %d from systemd: %w", fd, err)
		}
		a.listeners = append(a.listeners, l)
		a.logs = append(a.logs, fmt.Sprintf("inetd: mode=%s fd=%d name=%s addr=%s", a.mode, fd, maillog.Quote(nameOr(names[i])), l.Addr()))
	}
	return a, nil
}

// fromStdinListener takes the listening socket of inetd "wait" mode. As with
// a connection, releaseStdio then replaces stdin.
func fromStdinListener() (*activation, error) {
	l, err := net.FileListener(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("inetd: stdin: %w", err)
	}
	return &activation{
		mode:      InetdWait,
		listeners: []net.Listener{l},
		logs:      []string{fmt.Sprintf("inetd: mode=%s fd=0 addr=%s", InetdWait, l.Addr())},
	}, nil
}

func nameOr(name string) string {
	if name == "" {
		return "-"
	}
	return name
}

func fromConnFD(mode Mode, fd int) (*activation, error) {
	// FileConn works on a close-on-exec duplicate. Stdin is left open
	// (releaseStdio replaces it); systemd's fd is closed so that no program
	// this daemon starts inherits the connection.
	f := os.Stdin
	if fd != 0 {
		f = os.NewFile(uintptr(fd), "conn-fd-"+strconv.Itoa(fd))
		defer f.Close()
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("inetd: fd %d: %w", fd, err)
	}
	return &activation{
		mode:      mode,
		listeners: []net.Listener{ConnListener(c)},
		logs:      []string{fmt.Sprintf("inetd: mode=%s fd=%d remote=%s local=%s", mode, fd, c.RemoteAddr(), c.LocalAddr())},
	}, nil
}

// releaseStdio points stdin and stdout at /dev/null once the socket has been
// duplicated from them: the daemon's own copy is then the last one, so
// closing it really ends the TCP connection (or stops listening), and a stray
// write to stdout can no longer end up in the protocol stream. Classic inetd also passes the
// connection as stderr; then stderr goes to /dev/null too and the standard
// logger writes to syslog (facility mail) instead.
func releaseStdio() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("inetd: %w", err)
	}
	defer null.Close()
	stderrIsConn := sameFile(0, 2)
	fds := []int{0, 1}
	if stderrIsConn {
		fds = append(fds, 2)
	}
	for _, fd := range fds {
		if err := unix.Dup2(int(null.Fd()), fd); err != nil {
			return fmt.Errorf("inetd: redirecting fd %d to %s: %w", fd, os.DevNull, err)
		}
	}
	if stderrIsConn {
		var w io.Writer = io.Discard
		if sl, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, ""); err == nil {
			w = sl
		}
		log.SetOutput(w)
	}
	return nil
}

// sameFile reports whether two file descriptors refer to the same open file.
func sameFile(a, b int) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(a, &sa) != nil || unix.Fstat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
