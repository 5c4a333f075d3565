package inetd

import (
	"fmt"
	"net"
	"sync"
)

// Defaults for SessionLimit's zero-valued fields, also smtpd's, pop3d's and imapd's.
const (
	DefaultMaxSessions          = 100
	DefaultMaxSessionsPerClient = 10
)

// SessionLimit counts a server's open sessions, across all its listeners,
// in total and per client IP address. In --listen and systemd Accept=no
// mode one process serves every connection and SessionLimit does the
// limiting; under inetd or systemd Accept=yes each connection is a process
// of its own, and the superserver's limits (MaxConnections,
// MaxConnectionsPerSource) apply instead.
//
// The zero value is ready to use with the defaults. Set Max and
// MaxPerClient before the first Admit and do not change them afterwards.
type SessionLimit struct {
	// Max caps the open sessions; zero means DefaultMaxSessions.
	Max int
	// MaxPerClient caps the open sessions from one IP address; zero means
	// DefaultMaxSessionsPerClient.
	MaxPerClient int

	mu        sync.Mutex
	open      int
	perClient map[string]int
}

// Admit takes a place for a session from remote. It returns release, which
// gives the place back (calling it more than once does nothing), or, when a
// limit is reached, a nil release and refused, the reason as a log value
// (too-many-sessions limit=N, too-many-sessions-from-client limit=N).
func (l *SessionLimit) Admit(remote net.Addr) (release func(), refused string) {
	client := ClientKey(remote)
	maxOpen, maxClient := l.Max, l.MaxPerClient
	if maxOpen <= 0 {
		maxOpen = DefaultMaxSessions
	}
	if maxClient <= 0 {
		maxClient = DefaultMaxSessionsPerClient
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= maxOpen:
		return nil, fmt.Sprintf("too-many-sessions limit=%d", maxOpen)
	case l.perClient[client] >= maxClient:
		return nil, fmt.Sprintf("too-many-sessions-from-client limit=%d", maxClient)
	}
	if l.perClient == nil {
		l.perClient = map[string]int{}
	}
	l.open++
	l.perClient[client]++
	var once sync.Once
	return func() { once.Do(func() { l.release(client) }) }, ""
}

func (l *SessionLimit) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perClient[client]--; l.perClient[client] <= 0 {
		delete(l.perClient, client)
	}
}

// Open returns the number of sessions holding a place.
func (l *SessionLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// ClientKey is what the per-client limit counts by: the IP address of a
// TCP peer without its port, else the address as it is (a Unix socket's
// peer is usually unnamed, so all of them count as one client).
func ClientKey(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return a.String()
}
