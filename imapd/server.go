package imapd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/inetd"
)

// Defaults for the Server's zero-valued fields.
const (
	// DefaultFailureDelay is the pause before answering the first failed
	// login; it doubles with each further failure.
	DefaultFailureDelay = time.Second
	// DefaultAppendLimit is the largest message APPEND accepts (RFC 7889
	// APPENDLIMIT), in bytes as the client sends them.
	DefaultAppendLimit = 50 << 20
	// MaxLoginFailures is how many failed logins a connection gets before
	// it is closed with BYE.
	MaxLoginFailures = 3
	// MinAppendLimit is the smallest APPENDLIMIT. Clients may send
	// literals up to 4096 bytes without waiting for the server (LITERAL-,
	// RFC 7888), and go-imap does not read such a literal when it refuses
	// it as too big, so smaller limits would let message data be read as
	// commands.
	MinAppendLimit = 4096
	// maxAppendLimit is what APPENDLIMIT can express (go-imap's uint32).
	maxAppendLimit = 1<<32 - 1
	// greetingTimeout bounds the implicit TLS handshake that writing the
	// greeting (or the refusal) starts: go-imap sets its first read
	// deadline only after the greeting, as long as its command timeout.
	greetingTimeout = 30 * time.Second
)

// Capabilities are what the server advertises besides what go-imap adds
// by itself (SASL-IR, LITERAL-, UNSELECT, ENABLE, IDLE, UTF8=ACCEPT,
// STARTTLS, AUTH=PLAIN or LOGINDISABLED, APPENDLIMIT=N). IMAP4rev2
// (RFC 9051) includes NAMESPACE, UIDPLUS, ESEARCH, SEARCHRES,
// LIST-EXTENDED, LIST-STATUS, MOVE, BINARY, STATUS=SIZE and CHILDREN; they
// are listed so that go-imap names them to IMAP4rev1 clients too.
var Capabilities = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIMAP4rev2:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapESearch:          {},
	imap.CapSearchRes:        {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapMove:             {},
	imap.CapStatusSize:       {},
	imap.CapBinary:           {},
	imap.CapChildren:         {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
}

// A Server serves the Maildirs of a postkit root over IMAP. Set the
// exported fields before calling Serve and do not change them afterwards.
type Server struct {
	// Root is the postkit root: logins are checked against etc/users and
	// etc/app-passwords, mail is under mail/.
	Root control.Root
	// Hostname goes into the names of the files APPEND, COPY and MOVE
	// create (maildir.DeliverOptions.Hostname); empty means the system's.
	Hostname string
	// TLSConfig enables STARTTLS (RFC 9051 §6.2.1) when not nil.
	// Connections that arrive as *tls.Conn (implicit TLS, port 993) are
	// TLS from the start.
	TLSConfig *tls.Config
	// AllowPlaintextLoopback allows LOGIN and AUTHENTICATE without TLS
	// from loopback addresses. Other clients must use TLS.
	AllowPlaintextLoopback bool
	// FailureDelay is the pause before answering a failed login, doubled
	// for each further failure. Zero means DefaultFailureDelay.
	FailureDelay time.Duration
	// AppendLimit is the largest message APPEND accepts, in bytes. Zero
	// means DefaultAppendLimit; less than MinAppendLimit counts as
	// MinAppendLimit.
	AppendLimit int64
	// MaxSessions caps the concurrent sessions of all of Serve's
	// listeners, MaxSessionsPerClient those from one IP address; more get
	// "* BYE" instead of the greeting. Zero means inetd.DefaultMaxSessions
	// and inetd.DefaultMaxSessionsPerClient.
	MaxSessions, MaxSessionsPerClient int
	// Log receives one line per session and errors. Nil means
	// log.Default().
	Log *log.Logger

	// sleep waits before a failed login is answered; tests replace it.
	sleep func(time.Duration)

	folders  folders // shared between sessions
	limit    inetd.SessionLimit
	once     sync.Once
	secure   *imapserver.Server // logins need TLS
	loopback *imapserver.Server // plain-text logins allowed
}

func (s *Server) logger() *log.Logger {
	if s.Log != nil {
		return s.Log
	}
	return log.Default()
}

func (s *Server) failureDelay() time.Duration {
	if s.FailureDelay > 0 {
		return s.FailureDelay
	}
	return DefaultFailureDelay
}

func (s *Server) appendLimit() int64 {
	switch {
	case s.AppendLimit <= 0:
		return DefaultAppendLimit
	case s.AppendLimit < MinAppendLimit:
		return MinAppendLimit
	case s.AppendLimit > maxAppendLimit:
		return maxAppendLimit
	}
	return s.AppendLimit
}

func (s *Server) init() {
	s.once.Do(func() {
		s.limit.Max = s.MaxSessions
		s.limit.MaxPerClient = s.MaxSessionsPerClient
		newServer := func(insecureAuth bool) *imapserver.Server {
			return imapserver.New(&imapserver.Options{
				NewSession:   s.newSession,
				Caps:         Capabilities,
				Logger:       logAdapter{s.logger()},
				TLSConfig:    s.TLSConfig,
				InsecureAuth: insecureAuth,
			})
		}
		s.secure = newServer(false)
		if s.AllowPlaintextLoopback {
			s.loopback = newServer(true)
		}
	})
}

// Serve answers the connections of ln until Accept fails, as
// inetd.Serve wants: with inetd's one-connection listener it returns once
// that connection is over. go-imap decides whether LOGIN is allowed per
// server, not per connection, so with AllowPlaintextLoopback the
// connections from loopback addresses go to a second go-imap server that
// allows it.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	ln = batchListener{ln}
	if s.loopback == nil {
		return s.secure.Serve(ln)
	}
	secure, loop := newChanListener(ln), newChanListener(ln)
	done := make(chan error, 2)
	go func() { done <- s.secure.Serve(secure) }()
	go func() { done <- s.loopback.Serve(loop) }()
	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !errors.Is(aerr, net.ErrClosed) {
				err = aerr
			}
			break
		}
		if isLoopback(c.RemoteAddr()) {
			loop.push(c)
		} else {
			secure.push(c)
		}
	}
	secure.Close()
	loop.Close()
	<-done
	<-done
	return err
}

// newSession admits a connection before go-imap greets it. One over the
// session limits is answered with BYE in place of the greeting and closed
// (RFC 9051 §7.1.5: the server refuses to accept the connection); go-imap
// writes the BYE and closes the connection when NewSession fails with it.
func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc := c.NetConn()
	nc.SetReadDeadline(time.Now().Add(greetingTimeout))
	release, refused := s.limit.Admit(nc.RemoteAddr())
	if release == nil {
		s.logger().Printf("refused client=%s reason=%s", nc.RemoteAddr(), refused)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "too many connections"}
	}
	sess := newSession(s, c)
	sess.release = release
	return sess, nil, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// chanListener hands the connections pushed to it to go-imap's Serve.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(ln net.Listener) *chanListener {
	return &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// logAdapter makes go-imap's own messages log lines of their own.
type logAdapter struct{ l *log.Logger }

func (a logAdapter) Printf(format string, args ...any) {
	a.l.Printf("library error=%s", quote(fmt.Sprintf(format, args...)))
}
