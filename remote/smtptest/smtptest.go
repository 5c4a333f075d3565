// Package smtptest runs a go-smtp server on loopback for tests of sendq: it
// records every transaction it accepts and answers as the test scripts it
// (451 then 250, 550 for one recipient, a size limit, STARTTLS, AUTH).
package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted transaction.
type Message struct {
	Helo       string
	TLS        bool
	AuthUser   string
	From       string
	MailOpts   smtp.MailOptions
	To         []string
	RcptOpts   []smtp.RcptOptions
	Data       []byte // as received, CRLF line endings, dots unstuffed
	ServerAddr string
}

// Options configures a Server. Every hook is optional; a nil hook accepts.
type Options struct {
	// Listen is the address to listen on (default 127.0.0.1:0).
	Listen string
	// TLS enables STARTTLS, or implicit TLS with Implicit.
	TLS      *tls.Config
	Implicit bool
	// Users, when not nil, enables AUTH PLAIN with these passwords.
	Users map[string]string
	// MaxSize is advertised with SIZE (0: no SIZE limit advertised).
	MaxSize int64
	// DSN, RequireTLS and SMTPUTF8 advertise those extensions.
	DSN, RequireTLS, SMTPUTF8 bool
	// Mail, Rcpt and Data may refuse with an *smtp.SMTPError. Data gets
	// the number of earlier Data calls of the server.
	Mail func(from string) error
	Rcpt func(to string) error
	Data func(n int) error
}

// Server is a running test SMTP server.
type Server struct {
	Addr string
	opts Options

	mu       sync.Mutex
	messages []Message
	dataN    int
	arrived  chan struct{}
	sessions int
	conns    []*recordedConn // in the order accepted
}

// Start serves until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	tcp, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: tcp.Addr().String(), opts: opts, arrived: make(chan struct{}, 1000)}
	var ln net.Listener = &recordingListener{Listener: tcp, s: s}
	if opts.Implicit {
		// TLS outside the recording, so that go-smtp sees a *tls.Conn.
		ln = tls.NewListener(ln, opts.TLS)
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtptest.example"
	if !opts.Implicit {
		srv.TLSConfig = opts.TLS
	}
	srv.MaxMessageBytes = opts.MaxSize
	srv.EnableDSN = opts.DSN
	srv.EnableREQUIRETLS = opts.RequireTLS
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = quietLog{}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

// Messages returns the transactions accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Sessions returns how many sessions said EHLO or HELO.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Conns returns how many connections the server has accepted.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Input returns what the client sent on connection i (0 for the first
// accepted), as read from the socket: readable for plain-text sessions
// only.
func (s *Server) Input(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[i].in.String()
}

// CloseConns closes every connection from the server's side, as a server
// does when a session has been idle too long.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// Wait waits up to limit for at least n accepted transactions and returns
// them all; it fails the test if they do not arrive.
func (s *Server) Wait(t testing.TB, n int, limit time.Duration) []Message {
	t.Helper()
	deadline := time.After(limit)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("smtptest %s: %d messages after %v, want %d", s.Addr, len(s.Messages()), limit, n)
		}
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &session{s: s, msg: Message{Helo: c.Hostname(), TLS: isTLS, ServerAddr: s.Addr}}, nil
}

type session struct {
	s    *Server
	msg  Message
	user string
}

func (ss *session) Reset() {
	ss.msg = Message{Helo: ss.msg.Helo, TLS: ss.msg.TLS, AuthUser: ss.user, ServerAddr: ss.s.Addr}
}

func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.s.opts.Users == nil {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if want, ok := ss.s.opts.Users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		ss.user, ss.msg.AuthUser = user, user
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.opts.Users != nil && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	if f := ss.s.opts.Mail; f != nil {
		if err := f(from); err != nil {
			return err
		}
	}
	ss.msg.From = from
	if opts != nil {
		ss.msg.MailOpts = *opts
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if f := ss.s.opts.Rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.msg.To = append(ss.msg.To, to)
	if opts == nil {
		opts = &smtp.RcptOptions{}
	}
	ss.msg.RcptOpts = append(ss.msg.RcptOpts, *opts)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	n := s.dataN
	s.dataN++
	s.mu.Unlock()
	if f := s.opts.Data; f != nil {
		if err := f(n); err != nil {
			return err
		}
	}
	if len(ss.msg.To) == 0 {
		return errors.New("smtptest: DATA without recipients")
	}
	ss.msg.Data = data
	s.mu.Lock()
	s.messages = append(s.messages, ss.msg)
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	return nil
}

// Refuse returns an SMTP error reply for hooks.
func Refuse(code int, enhanced smtp.EnhancedCode, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// recordingListener counts connections and keeps what each one reads.
type recordingListener struct {
	net.Listener
	s *Server
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns = append(l.s.conns, rc)
	l.s.mu.Unlock()
	return rc, nil
}

type recordedConn struct {
	net.Conn
	s  *Server
	in bytes.Buffer // under s.mu
}

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	c.in.Write(p[:n])
	c.s.mu.Unlock()
	return n, err
}
