package sendmail

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/smtpcmd"
	"github.com/postkit/postkit/spool"
)

// MaxMessageSize bounds a message, read from standard input or received
// with -bs: the largest message the spool's maildrop takes.
const MaxMessageSize = spool.MaxDropMessage

// ServeSMTP speaks SMTP on in and out (sendmail -bs) until QUIT or the end
// of input, enqueueing each message like the -bm mode does. The local user
// is trusted as with -bm: no authentication, any sender.
func ServeSMTP(in io.Reader, out io.Writer, env Env) error {
	conn := &stdioConn{br: bufio.NewReader(in), w: out, hostname: env.Hostname, lineStart: true, closed: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{env: env}, nil
	}))
	srv.Domain = env.Hostname
	srv.MaxMessageBytes = MaxMessageSize
	srv.MaxRecipients = 1000
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ReadTimeout = 10 * time.Minute
	srv.ErrorLog = discardLog{}
	err := srv.Serve(&oneConnListener{conn: conn})
	if errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// session is one -bs SMTP session.
type session struct {
	env Env
	e   *spool.Envelope
}

func (s *session) Reset()        { s.e = nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	e := &spool.Envelope{}
	if from != "" {
		a, err := address.Parse(from)
		if err != nil {
			return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address"}
		}
		e.From = a.String()
	}
	if opts != nil {
		e.Ret, e.EnvID = string(opts.Return), opts.EnvelopeID
		e.RequireTLS = opts.RequireTLS
	}
	s.e = e
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.e == nil {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "MAIL first"}
	}
	a, err := qualify(to, s.env.Hostname)
	if err != nil {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address"}
	}
	r := spool.Recipient{Address: a.String()}
	if opts != nil {
		for i, n := range opts.Notify {
			if i > 0 {
				r.Notify += ","
			}
			r.Notify += string(n)
		}
		if opts.OriginalRecipient != "" {
			r.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	s.e.Recipients = append(s.e.Recipients, r)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if s.e == nil || len(s.e.Recipients) == 0 {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "RCPT first"}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := parseMessage(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
	headerFrom := s.e.From
	if headerFrom == "" {
		if a, err := qualify(s.env.User, s.env.Hostname); err == nil {
			headerFrom = a.String()
		}
	}
	m.complete(headerFrom, "", s.env.Hostname, s.env.now())
	if _, err := enqueue(s.env.Root, s.e, m.bytes()); err != nil {
		if errors.Is(err, ErrData) {
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Cannot queue the message now, try again later"}
	}
	return nil
}

// stdioConn is a net.Conn over standard input and output. It hands go-smtp
// the input one line at a time, so go-smtp has run each command, and written
// its reply, before stdioConn reads the next line: stdioConn thus knows which
// lines go-smtp will read as commands, and rewrites "RCPT TO:<Postmaster>"
// in those (see command).
type stdioConn struct {
	br       *bufio.Reader
	w        io.Writer
	hostname string // the domain of "<Postmaster>"
	pending  []byte // the rest of the line being handed to go-smtp

	lineStart bool  // the next byte of input starts a line
	inData    bool  // go-smtp's last reply was 354: lines are the message's until its next reply
	chunkLeft int64 // octets of a BDAT chunk still to hand on as they are

	once sync.Once
	// closed is closed by Close, which go-smtp calls at QUIT or after a
	// read error.
	closed chan struct{}
}

func (c *stdioConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 && c.chunkLeft > 0 {
		// RFC 3030 §2: a BDAT chunk is octets, not lines.
		n, err := c.br.Read(p[:min(int64(len(p)), c.chunkLeft)])
		c.chunkLeft -= int64(n)
		return n, err
	}
	if len(c.pending) == 0 {
		// A line, or the part of a long line that fits the buffer.
		frag, err := c.br.ReadSlice('\n')
		if len(frag) == 0 {
			return 0, err
		}
		c.pending = frag
		if c.lineStart && !c.inData && frag[len(frag)-1] == '\n' {
			c.pending = c.command(frag)
		}
		c.lineStart = frag[len(frag)-1] == '\n'
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// command returns the line to hand go-smtp for a command line, splitting
// it into verb and argument as go-smtp does. RFC 5321 §4.1.1.3: go-smtp's
// parser wants a domain in every path and would answer 501 to the bare
// "<Postmaster>", which every SMTP receiver must take, so the path becomes
// postmaster@ the host name, as "sendmail postmaster" qualifies it. A BDAT
// command is followed by a chunk whenever go-smtp accepts its arguments,
// even if it refuses the command: smtpcmd.ParseBDAT says how long.
func (c *stdioConn) command(line []byte) []byte {
	text := strings.TrimRight(string(line), "\r\n")
	if len(text) < 5 || text[4] != ' ' {
		return line
	}
	verb, arg := strings.ToUpper(text[:4]), strings.TrimSpace(text[5:])
	switch verb {
	case "RCPT":
		if pm, ok := address.QualifyPostmasterRCPT(verb, arg, c.hostname); ok {
			return []byte(pm)
		}
	case "BDAT":
		// No chunk follows a BDAT whose argument go-smtp refuses.
		if size, _, err := smtpcmd.ParseBDAT(arg); err == nil {
			c.chunkLeft = size
		}
	}
	return line
}

// Write writes a reply line of go-smtp's (each comes in a Write of its own)
// and notes whether it is the 354 that starts a DATA message.
func (c *stdioConn) Write(p []byte) (int, error) {
	c.inData = bytes.HasPrefix(p, []byte("354"))
	return c.w.Write(p)
}

func (c *stdioConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *stdioConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (c *stdioConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (c *stdioConn) SetDeadline(time.Time) error      { return nil }
func (c *stdioConn) SetReadDeadline(time.Time) error  { return nil }
func (c *stdioConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "stdio" }
func (stdioAddr) String() string  { return "stdin" }

// oneConnListener hands go-smtp's Serve the one connection, then blocks
// until it is closed: go-smtp has no way to serve a single connection.
type oneConnListener struct {
	conn   *stdioConn
	served bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.served {
		l.served = true
		return l.conn, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return l.conn.Close() }
func (l *oneConnListener) Addr() net.Addr { return stdioAddr{} }
