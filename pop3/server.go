package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/postkit/postkit/inetd"
)

// Defaults for the Server's zero-valued fields.
const (
	// DefaultIdleTimeout is RFC 1939 §3's inactivity autologout timer: at
	// least 10 minutes.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultFailureDelay is the pause before answering the first failed
	// login; it doubles with each further failure.
	DefaultFailureDelay = time.Second
	// MaxLoginFailures is how many failed logins a connection gets before
	// it is closed.
	MaxLoginFailures = 3
	// maxBadCommands is how many unknown, malformed or refused commands a
	// connection gets before it is closed.
	maxBadCommands = 20
	// refuseTimeout bounds the refusal sent to a connection over the
	// session limits, TLS handshake included.
	refuseTimeout = 10 * time.Second
)

// ErrBadCredentials is returned by an Authenticator when the address or the
// password is wrong. Other errors are temporary failures ([SYS/TEMP]).
var ErrBadCredentials = errors.New("pop3: invalid credentials")

// ErrInUse is returned by an Opener when another session holds the mailbox
// (RFC 1939 §8, RFC 2449 §8.1.1 [IN-USE]).
var ErrInUse = errors.New("pop3: mailbox in use by another session")

// An Authenticator checks a login name and password and returns the
// canonical name of the user, which is then passed to the Opener and logged.
type Authenticator func(login, password string) (user string, err error)

// An Opener opens and locks the mailbox of an authenticated user.
type Opener func(user string) (Mailbox, error)

// A Server answers POP3 connections. Set the exported fields before calling
// Serve or ServeConn and do not change them afterwards.
type Server struct {
	// Hostname is named in the greeting.
	Hostname string
	// TLSConfig enables STLS (RFC 2595) when not nil. Connections that
	// arrive as *tls.Conn (implicit TLS, port 995) are TLS from the start.
	TLSConfig *tls.Config
	// AllowPlaintextLoopback allows logins without TLS from loopback
	// addresses. Other clients must use TLS.
	AllowPlaintextLoopback bool
	// IdleTimeout closes a connection that sends no complete command for
	// this long, without entering the UPDATE state. Zero means
	// DefaultIdleTimeout. It also bounds each write.
	IdleTimeout time.Duration
	// FailureDelay is the pause before answering a failed login, doubled
	// for each further failure. Zero means DefaultFailureDelay.
	FailureDelay time.Duration
	// Authenticate checks credentials.
	Authenticate Authenticator
	// Open opens the mailbox after a successful login.
	Open Opener
	// MaxSessions caps the concurrent sessions of all of Serve's and
	// ServeConn's connections, MaxSessionsPerClient those from one IP
	// address; more get "-ERR [SYS/TEMP]" and are closed. Zero means
	// inetd.DefaultMaxSessions and inetd.DefaultMaxSessionsPerClient.
	MaxSessions, MaxSessionsPerClient int
	// Log receives one key=value line per session, and one per error or
	// warning. Nil means log.Default().
	Log *log.Logger

	// sleep waits before a failed login is answered; tests replace it.
	sleep func(time.Duration)

	limitOnce sync.Once
	limit     inetd.SessionLimit

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	sessions  sync.WaitGroup
	closing   bool
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3: server closed")

// Serve accepts connections on ln and serves each in its own goroutine. It
// returns when Accept fails, after the sessions it started have ended, so
// that a listener handing out a single inherited connection (inetd mode)
// makes Serve return when that session is over. After Shutdown it returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var mine sync.WaitGroup
	defer mine.Wait()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Running out of file descriptors and the like pass: wait a
			// little, as net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger().Printf("accept error=%s retry=%s", quote(err.Error()), backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		mine.Add(1)
		go func() {
			defer mine.Done()
			s.ServeConn(c)
		}()
	}
}

// ServeConn runs one POP3 session on c and closes c when it ends.
func (s *Server) ServeConn(c net.Conn) {
	release, refused := s.sessionLimit().Admit(c.RemoteAddr())
	if release == nil {
		s.refuse(c, refused)
		return
	}
	if !s.track(c) {
		release()
		c.Close()
		return
	}
	defer s.untrack(c)
	// Before untrack, so that a session no longer tracked holds no place.
	defer release()
	newSession(s, c).run()
}

func (s *Server) sessionLimit() *inetd.SessionLimit {
	s.limitOnce.Do(func() {
		s.limit.Max = s.MaxSessions
		s.limit.MaxPerClient = s.MaxSessionsPerClient
	})
	return &s.limit
}

// refuse tells a connection over the session limits to come back later and
// closes it, in place of the greeting. [SYS/TEMP] is RFC 3206 §3's code for
// a temporary problem of the server: the client should try again later.
func (s *Server) refuse(c net.Conn, reason string) {
	s.logger().Printf("refused client=%s reason=%s", quote(c.RemoteAddr().String()), reason)
	c.SetDeadline(time.Now().Add(refuseTimeout))
	io.WriteString(c, "-ERR [SYS/TEMP] too many connections\r\n")
	c.Close()
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.sessions.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.sessions.Done()
}

// Shutdown stops accepting connections and waits for the sessions to end.
// When ctx ends first, it closes the remaining connections: those sessions
// end without the UPDATE state, so nothing is deleted (RFC 1939 §6).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) failureDelay() time.Duration {
	if s.FailureDelay > 0 {
		return s.FailureDelay
	}
	return DefaultFailureDelay
}

func (s *Server) logger() *log.Logger {
	if s.Log != nil {
		return s.Log
	}
	return log.Default()
}

// A Mailbox is a user's maildrop, locked for one session (RFC 1939 §8). Its
// listing is fixed when it is opened.
type Mailbox interface {
	// Messages returns the listing: message number n is element n-1.
	Messages() []Message
	// Open returns message i's contents with LF or CRLF line endings.
	// RETR sends every LF not preceded by CR as CRLF; the result, before
	// dot-stuffing, has Messages()[i].Size octets.
	Open(i int) (io.ReadCloser, error)
	// MarkSeen records that message i was retrieved.
	MarkSeen(i int) error
	// Expunge removes the messages with the given indices (the UPDATE
	// state, RFC 1939 §6). A message another program removed meanwhile is
	// not an error.
	Expunge(indices []int) error
	// Close releases the lock without removing anything.
	Close() error
}

// A Message is one entry of a Mailbox's listing.
type Message struct {
	// UID is the unique-id listing value (RFC 1939 §7): octets in
	// 0x21-0x7E, unique in the mailbox and stable across sessions (see
	// UIDL).
	UID string
	// Size is the message's size in octets as RETR sends it, before
	// dot-stuffing (RFC 1939 §5 LIST).
	Size int64
}
