package sendmail

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/spool"
)

// MaxMessageSize bounds a message, read from standard input or received
// with -bs: the largest message the spool's maildrop takes.
const MaxMessageSize = spool.MaxDropMessage

// ServeSMTP speaks SMTP on in and out (sendmail -bs) until QUIT or the end
// of input, enqueueing each message like the -bm mode does. The local user
// is trusted as with -bm: no authentication, any sender.
func ServeSMTP(in io.Reader, out io.Writer, env Env) error {
	conn := &stdioConn{r: in, w: out, closed: make(chan struct{})}
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

// stdioConn is a net.Conn over standard input and output.
type stdioConn struct {
	r    io.Reader
	w    io.Writer
	once sync.Once
	// closed is closed by Close, which go-smtp calls at QUIT or after a
	// read error.
	closed chan struct{}
}

func (c *stdioConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.w.Write(p) }
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
