package inetd

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

func tcpAddr(ip string, port int) net.Addr {
	return &net.TCPAddr{IP: net.ParseIP(ip), Port: port}
}

func TestSessionLimit(t *testing.T) {
	l := &SessionLimit{Max: 3, MaxPerClient: 2}
	admit := func(addr net.Addr, wantRefused string) func() {
		t.Helper()
		release, refused := l.Admit(addr)
		if !strings.HasPrefix(refused, wantRefused) || (wantRefused == "") != (release != nil) {
			t.Fatalf("Admit(%v) = release %v, refused %q; want refused %q", addr, release != nil, refused, wantRefused)
		}
		return release
	}
	a1 := admit(tcpAddr("192.0.2.1", 1000), "")
	admit(tcpAddr("192.0.2.1", 1001), "")
	// A third from the same address, whatever the port, is one too many.
	admit(tcpAddr("192.0.2.1", 1002), "too-many-sessions-from-client limit=2")
	b1 := admit(tcpAddr("192.0.2.2", 1000), "")
	admit(tcpAddr("192.0.2.3", 1000), "too-many-sessions limit=3")
	if got := l.Open(); got != 3 {
		t.Errorf("Open() = %d, want 3", got)
	}

	// A released place is free again; releasing twice frees only one.
	b1()
	b1()
	if got := l.Open(); got != 2 {
		t.Errorf("Open() after release = %d, want 2", got)
	}
	admit(tcpAddr("192.0.2.3", 1000), "")
	admit(tcpAddr("192.0.2.4", 1000), "too-many-sessions limit=3")
	a1()
	admit(tcpAddr("192.0.2.1", 1003), "")
}

func TestSessionLimitDefaults(t *testing.T) {
	var l SessionLimit
	for i := range DefaultMaxSessionsPerClient {
		if _, refused := l.Admit(tcpAddr("2001:db8::1", i)); refused != "" {
			t.Fatalf("Admit #%d = refused %q, want admitted", i+1, refused)
		}
	}
	if _, refused := l.Admit(tcpAddr("2001:db8::1", 0)); refused == "" {
		t.Fatalf("Admit #%d from one client admitted, want refused", DefaultMaxSessionsPerClient+1)
	}
	for i := DefaultMaxSessionsPerClient; i < DefaultMaxSessions; i++ {
		if _, refused := l.Admit(tcpAddr(fmt.Sprintf("192.0.2.%d", i), 1)); refused != "" {
			t.Fatalf("Admit #%d = refused %q, want admitted", i+1, refused)
		}
	}
	if _, refused := l.Admit(tcpAddr("198.51.100.1", 1)); refused != fmt.Sprintf("too-many-sessions limit=%d", DefaultMaxSessions) {
		t.Fatalf("Admit #%d = refused %q, want the total limit", DefaultMaxSessions+1, refused)
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		name string
		addr net.Addr
		want string
	}{
		{"ipv4", tcpAddr("192.0.2.1", 25), "192.0.2.1"},
		{"ipv6", tcpAddr("2001:db8::1", 25), "2001:db8::1"},
		{"unix", &net.UnixAddr{Name: "/run/x", Net: "unix"}, "/run/x"},
		{"nil", nil, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClientKey(tt.addr); got != tt.want {
				t.Errorf("ClientKey(%v) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}
