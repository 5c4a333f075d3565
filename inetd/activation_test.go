package inetd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// socketFD returns a file descriptor of its own for the socket or file x;
// the test closes it at the end.
func socketFD(t *testing.T, x interface{ File() (*os.File, error) }) int {
	t.Helper()
	f, err := x.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// sockets are one of each kind of file descriptor the activation code can
// meet, as file descriptors.
type sockets struct {
	tcpListener, unixListener, dialed, accepted, pair, udp, file int
}

func newSockets(t *testing.T) sockets {
	t.Helper()
	var s sockets
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	s.tcpListener = socketFD(t, tl.(*net.TCPListener))
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ul.Close() })
	s.unixListener = socketFD(t, ul.(*net.UnixListener))
	client, server := tcpPair(t)
	s.dialed = socketFD(t, client.(*net.TCPConn))
	s.accepted = socketFD(t, server.(*net.TCPConn))
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	s.pair = fds[0]
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	s.udp = socketFD(t, udp.(*net.UDPConn))
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s.file = int(f.Fd())
	return s
}

func TestIsListening(t *testing.T) {
	s := newSockets(t)
	tests := []struct {
		name    string
		fd      int
		want    bool
		wantErr bool
	}{
		{"tcp listener", s.tcpListener, true, false},
		{"unix listener", s.unixListener, true, false},
		{"dialed tcp connection", s.dialed, false, false},
		{"accepted tcp connection", s.accepted, false, false},
		{"unix socketpair", s.pair, false, false},
		{"udp socket", s.udp, false, false},
		{"regular file", s.file, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := isListening(tt.fd)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("isListening(%s) = %v, %v, want %v, error %v", tt.name, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSystemdMode(t *testing.T) {
	s := newSockets(t)
	tests := []struct {
		name    string
		fds     []int
		want    Mode
		wantErr bool
	}{
		{"one listener (Accept=no)", []int{s.tcpListener}, SystemdListeners, false},
		{"two listeners (Accept=no)", []int{s.tcpListener, s.unixListener}, SystemdListeners, false},
		{"one connection (Accept=yes)", []int{s.accepted}, SystemdConnection, false},
		{"one unix connection (Accept=yes)", []int{s.pair}, SystemdConnection, false},
		{"listener and connection", []int{s.tcpListener, s.accepted}, 0, true},
		{"two connections", []int{s.accepted, s.dialed}, 0, true},
		{"datagram socket", []int{s.udp}, 0, true},
		{"regular file (ListenFIFO-like)", []int{s.file}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := systemdMode(tt.fds)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("systemdMode(%s) = %v, %v, want %v, error %v", tt.name, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStdinMode(t *testing.T) {
	s := newSockets(t)
	tests := []struct {
		name      string
		fd        int
		want      Mode
		wantNoMod bool // the "use --listen" error
		wantErr   bool
	}{
		{"connection (inetd nowait, tcpserver)", s.accepted, Stdio, false, false},
		{"unix connection", s.pair, Stdio, false, false},
		{"listener (inetd wait)", s.tcpListener, InetdWait, false, false},
		{"regular file", s.file, 0, true, true},
		{"closed fd", 1 << 20, 0, true, true},
		{"datagram socket", s.udp, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := stdinMode(tt.fd)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) || errors.Is(err, errNoMode) != tt.wantNoMod {
				t.Errorf("stdinMode(%s) = %v, %v, want %v, error %v (no-mode error %v)", tt.name, got, err, tt.want, tt.wantErr, tt.wantNoMod)
			}
		})
	}
	if !strings.Contains(errNoMode.Error(), "use --listen ADDR, or run under systemd or inetd") {
		t.Errorf("errNoMode = %q, want it to say what to do", errNoMode)
	}
}

func setListenEnv(t *testing.T, pid, fds, names string) {
	t.Helper()
	for name, v := range map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": fds, "LISTEN_FDNAMES": names} {
		t.Setenv(name, v) // restores the old value after the test
		if v == "" {
			os.Unsetenv(name)
		}
	}
}

func TestSystemdFDs(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		name           string
		pid, fds, nams string
		wantFDs        []int
		wantNames      []string
		wantErr        bool
	}{
		{"not activated", "", "", "", nil, nil, false},
		{"meant for another process", strconv.Itoa(os.Getpid() + 1), "2", "a:b", nil, nil, false},
		{"no LISTEN_PID", "", "2", "", nil, nil, false},
		{"LISTEN_PID not a number", "x", "2", "", nil, nil, false},
		{"two named", me, "2", "smtp:submission", []int{100, 101}, []string{"smtp", "submission"}, false},
		{"unnamed", me, "1", "", []int{100}, []string{""}, false},
		{"names do not match the count", me, "2", "smtp", []int{100, 101}, []string{"", ""}, false},
		{"zero", me, "0", "", nil, nil, false},
		{"LISTEN_FDS not a number", me, "two", "", nil, nil, true},
		{"LISTEN_FDS negative", me, "-1", "", nil, nil, true},
	}
	for _, tt := range tests {
		for _, unset := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "/keep", true: "/unset"}[unset], func(t *testing.T) {
				setListenEnv(t, tt.pid, tt.fds, tt.nams)
				fds, names, err := systemdFDs(100, unset)
				if (err != nil) != tt.wantErr || !slices.Equal(fds, tt.wantFDs) || !slices.Equal(names, tt.wantNames) {
					t.Errorf("systemdFDs() = %v, %q, %v, want %v, %q, error %v", fds, names, err, tt.wantFDs, tt.wantNames, tt.wantErr)
				}
				_, stillSet := os.LookupEnv("LISTEN_FDS")
				if want := tt.fds != "" && !unset; stillSet != want {
					t.Errorf("after systemdFDs(unset=%v) LISTEN_FDS set: %v, want %v", unset, stillSet, want)
				}
			})
		}
	}
}

func TestDetectMode(t *testing.T) {
	s := newSockets(t)
	me, other := strconv.Itoa(os.Getpid()), strconv.Itoa(os.Getpid()+1)
	tests := []struct {
		name       string
		listen     []string
		pid, fds   string
		start      int
		stdin      int
		want       Mode
		wantNoMode bool
	}{
		{"--listen wins over systemd", []string{":2525"}, me, "1", s.tcpListener, s.accepted, Listen, false},
		{"systemd listener", nil, me, "1", s.tcpListener, s.file, SystemdListeners, false},
		{"systemd connection", nil, me, "1", s.accepted, s.file, SystemdConnection, false},
		{"systemd fds of another process ignored", nil, other, "1", s.tcpListener, s.file, 0, true},
		{"systemd fds of another process, stdin connection", nil, other, "1", s.tcpListener, s.accepted, Stdio, false},
		{"stdin connection", nil, "", "", s.tcpListener, s.accepted, Stdio, false},
		{"stdin listener", nil, "", "", s.tcpListener, s.tcpListener, InetdWait, false},
		{"nothing", nil, "", "", s.tcpListener, s.file, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setListenEnv(t, tt.pid, tt.fds, "")
			got, err := detectMode(tt.listen, tt.start, tt.stdin)
			if errors.Is(err, errNoMode) != tt.wantNoMode || (!tt.wantNoMode && (err != nil || got != tt.want)) {
				t.Errorf("detectMode() = %v, %v, want %v (no-mode error %v)", got, err, tt.want, tt.wantNoMode)
			}
			if os.Getenv("LISTEN_FDS") != tt.fds {
				t.Error("detectMode changed the environment")
			}
		})
	}
}

func TestFromListenerFDs(t *testing.T) {
	var fds []int
	for i := range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		// Move the socket to consecutive high descriptors, as systemd
		// passes them from 3.
		fd := 200 + i
		if err := unix.Dup2(socketFD(t, l.(*net.TCPListener)), fd); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	a, err := fromListenerFDs(fds, []string{"smtp", ""})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if a.mode != SystemdListeners || len(a.listeners) != 2 {
		t.Fatalf("fromListenerFDs() = mode %v with %d listeners, want systemd-listeners with 2", a.mode, len(a.listeners))
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			t.Errorf("fd %d still open after fromListenerFDs: children would inherit it", fd)
		}
	}
	if !strings.Contains(a.logs[0], "mode=systemd-listeners fd=200 name=smtp addr=127.0.0.1:") ||
		!strings.Contains(a.logs[1], "fd=201 name=- ") {
		t.Errorf("log lines = %q", a.logs)
	}
	for _, l := range a.listeners {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatalf("Accept on the listener from systemd: %v", err)
		}
		s.Close()
		c.Close()
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Listen: "listen", SystemdListeners: "systemd-listeners",
		SystemdConnection: "systemd-connection", Stdio: "stdio", InetdWait: "inetd-wait", Mode(42): "mode(42)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}
