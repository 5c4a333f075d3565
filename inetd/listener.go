package inetd

import (
	"context"
	"net"
	"sync"
)

// ConnListener presents one established connection as a net.Listener: the
// first Accept returns it, later calls block until it is closed and then
// return net.ErrClosed. Server libraries that have only Serve(net.Listener)
// (go-smtp, go-imap) thus serve a connection inherited from inetd, tcpserver
// or systemd Accept=yes, and return when the session is over.
//
// Closing the listener before the connection was accepted closes the
// connection; afterwards it only makes Accept return, leaving the session to
// finish (as closing a real listener would).
func ConnListener(c net.Conn) net.Listener {
	return &connListener{conn: c, addr: c.LocalAddr(), done: make(chan struct{})}
}

type connListener struct {
	mu       sync.Mutex
	conn     net.Conn // nil once accepted or closed
	addr     net.Addr
	done     chan struct{} // closed when the connection or the listener is closed
	doneOnce sync.Once
}

func (l *connListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return &hookConn{Conn: c, onClose: l.finish}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *connListener) finish() { l.doneOnce.Do(func() { close(l.done) }) }

func (l *connListener) Close() error {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	l.finish()
	if c != nil {
		return c.Close()
	}
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// hookConn calls onClose once the connection has been closed.
type hookConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *hookConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}

// sessions keeps the connections accepted through Serve's listeners, so that
// the ones still open when the grace period ends can be closed.
type sessions struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	changed chan struct{} // closed and replaced whenever a connection ends
	closed  bool          // closeAll was called: close newcomers at once
}

func newSessions() *sessions {
	return &sessions{conns: map[*trackedConn]struct{}{}, changed: make(chan struct{})}
}

func (s *sessions) add(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.conns[tc] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		c.Close()
	}
	return tc
}

func (s *sessions) remove(tc *trackedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[tc]; ok {
		delete(s.conns, tc)
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// wait returns when no session is open or ctx is done.
func (s *sessions) wait(ctx context.Context) {
	for {
		s.mu.Lock()
		n, changed := len(s.conns), s.changed
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// closeAll closes every open session and any accepted later, and returns
// how many were open.
func (s *sessions) closeAll() int {
	s.mu.Lock()
	s.closed = true
	open := make([]*trackedConn, 0, len(s.conns))
	for tc := range s.conns {
		open = append(open, tc)
	}
	s.mu.Unlock()
	for _, tc := range open {
		tc.Close()
	}
	return len(open)
}

type trackedConn struct {
	net.Conn
	s *sessions
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.s.remove(c)
	return err
}

// trackedListener registers accepted connections with sessions. Close is
// idempotent and returns nil after the first call: Serve closes its listeners
// itself before calling the server's shutdown, which closes them again
// (go-smtp's Shutdown would report the second close's error).
type trackedListener struct {
	net.Listener
	s         *sessions
	closeOnce sync.Once
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.add(c), nil
}

func (l *trackedListener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.Listener.Close() })
	return err
}
