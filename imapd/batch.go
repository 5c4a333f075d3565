package imapd

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// go-imap flushes its buffered writer at the end of every response line,
// so FETCH 1:* of 10,000 messages costs 10,000 write calls, and the
// client as many wake-ups. batchConn gathers those writes and sends them
// together: when it holds batchSize bytes, before the connection is read
// (the client needs everything before the server waits for it: the
// tagged answer, a continuation request, a STARTTLS handshake), when it
// is closed, and otherwise batchDelay after the first unsent write
// (updates during IDLE, a slow FETCH).
const (
	batchSize  = 32 << 10
	batchDelay = time.Millisecond
	// batchWriteTimeout bounds each send, as go-imap's own deadlines
	// (30 s per response, 5 minutes per literal) did.
	batchWriteTimeout = 5 * time.Minute
)

type batchConn struct {
	net.Conn

	mu      sync.Mutex
	buf     []byte
	err     error // from an earlier send
	timer   *time.Timer
	pending bool // the timer is set
}

// batchListener hands out its connections wrapped in batchConn, except
// TLS connections: go-imap and the session recognise those by their type.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		return c, nil
	}
	return &batchConn{Conn: c}, nil
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) >= batchSize {
		// Send what is gathered and p in one writev(2), without
		// copying p.
		if err := c.sendLocked(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	if !c.pending {
		c.pending = true
		if c.timer == nil {
			c.timer = time.AfterFunc(batchDelay, c.flush)
		} else {
			c.timer.Reset(batchDelay)
		}
	}
	return len(p), nil
}

func (c *batchConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendLocked(nil)
}

// sendLocked sends what is gathered, then more; c.mu is held.
func (c *batchConn) sendLocked(more []byte) error {
	if c.pending {
		c.pending = false
		c.timer.Stop()
	}
	if c.err != nil || len(c.buf)+len(more) == 0 {
		return c.err
	}
	c.Conn.SetWriteDeadline(time.Now().Add(batchWriteTimeout))
	bufs := net.Buffers{c.buf, more}
	_, err := bufs.WriteTo(c.Conn)
	c.Conn.SetWriteDeadline(time.Time{})
	c.buf = c.buf[:0]
	c.err = err
	return err
}

func (c *batchConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.sendLocked(nil)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *batchConn) Close() error {
	c.mu.Lock()
	c.sendLocked(nil)
	c.mu.Unlock()
	return c.Conn.Close()
}

// SetDeadline sets the read deadline only: sends have their own.
func (c *batchConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// SetWriteDeadline is ignored: writes only gather, and each send sets its
// own deadline.
func (c *batchConn) SetWriteDeadline(time.Time) error { return nil }
