package remote

import (
	"io"
	"net"
	"time"
)

// deadlineConn gives every write its own deadline: the data phase has no
// command whose reply go-smtp would time, so a server that stops reading
// would otherwise hold the connection forever (RFC 5321 §4.5.3.2.5: 3
// minutes per data block).
type deadlineConn struct {
	net.Conn
	write time.Duration
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.write)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// greetedConn replays a greeting before the connection's own data, for a
// go-smtp client that takes over a session whose greeting has been read.
type greetedConn struct {
	net.Conn
	greeting io.Reader
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if c.greeting != nil {
		n, err := c.greeting.Read(p)
		if err != io.EOF || n > 0 {
			return n, nil
		}
		c.greeting = nil
	}
	return c.Conn.Read(p)
}
