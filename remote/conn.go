package remote

import (
	"net"
	"strings"
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
// With ehlo set, it also answers the client's first command, when that is
// exactly ehlo, with ehloReply instead of sending it: the session's EHLO
// has been said and answered already, and saying it twice on one
// plain-text connection costs a round trip (RFC 5321 §4.1.4 allows it, as
// a reset, but there is nothing to reset).
type greetedConn struct {
	net.Conn
	greeting *strings.Reader // what Read gives before the connection's data
	// ehlo is the command the client is expected to write first ("EHLO
	// name\r\n"), ehloReply the reply to give it; "" once used or not
	// wanted.
	ehlo, ehloReply string
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if c.greeting.Len() > 0 {
		return c.greeting.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *greetedConn) Write(p []byte) (int, error) {
	if c.ehlo != "" {
		ehlo := c.ehlo
		c.ehlo = ""
		if string(p) == ehlo && c.greeting.Len() == 0 {
			c.greeting.Reset(c.ehloReply)
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// ehloReplyText turns the message of an EHLO reply as net/textproto's
// ReadResponse returns it (lines joined by "\n", codes removed) back into
// a 250 reply.
func ehloReplyText(message string) string {
	lines := strings.Split(message, "\n")
	var b strings.Builder
	for i, line := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + line + "\r\n")
	}
	return b.String()
}
