package imapd

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maillog"
)

// session is one IMAP connection's state behind go-imap's command parsing.
// go-imap calls its methods one at a time (IDLE's goroutine ends before
// the next command), so it needs no lock.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	client string
	start  time.Time
	// release frees the session's place under the server's limits.
	release func()

	// After a successful login:
	user string
	root maildir.Dir

	failures int
	sel      *selected

	// For the log line.
	result                     string
	appended, copied, expunged int
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func newSession(srv *Server, c *imapserver.Conn) *session {
	return &session{srv: srv, conn: c, client: c.NetConn().RemoteAddr().String(), start: time.Now()}
}

// Close ends the session and logs its one line.
func (s *session) Close() error {
	s.closeSelected()
	_, isTLS := s.conn.NetConn().(*tls.Conn)
	result := s.result
	if result == "" {
		result = "ok"
		if s.user == "" {
			result = "no-login"
		}
	}
	user := s.user
	if user == "" {
		user = "-"
	}
	// Before the log line, so that whoever sees the line finds the place
	// free.
	if s.release != nil {
		s.release()
	}
	s.srv.logger().Printf("session client=%s user=%s tls=%t appended=%d copied=%d expunged=%d duration=%s result=%s",
		s.client, quote(user), isTLS, s.appended, s.copied, s.expunged, time.Since(s.start).Round(time.Millisecond), result)
	return nil
}

// logError records a failure the client only sees as a short NO.
func (s *session) logError(what string, err error) {
	user := s.user
	if user == "" {
		user = "-"
	}
	s.srv.logger().Printf("error client=%s user=%s what=%s error=%s", s.client, quote(user), quote(what), quote(err.Error()))
}

// serverError logs err and returns the generic answer for faults of the
// server or its disk: NO [SERVERBUG] for the unexpected, NO
// [UNAVAILABLE] for a full disk and other temporary conditions.
func (s *session) serverError(what string, err error) error {
	s.logError(what, err)
	code := imap.ResponseCodeServerBug
	text := "Internal error, see the server log"
	if maildir.IsTemporary(err) {
		code, text = imap.ResponseCodeUnavailable, "Temporary failure, try again later"
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

// AppendLimit is the APPENDLIMIT capability's value (RFC 7889).
func (s *session) AppendLimit() uint32 { return uint32(s.srv.appendLimit()) }

// Namespace answers NAMESPACE (RFC 2342): one personal namespace, the
// user's own mailboxes, with "/" between levels.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}

// quote makes a log value safe for key=value lines (maillog.Quote).
func quote(v string) string { return maillog.Quote(v) }

// clientIP is the IP address of a client's HOST:PORT address.
func clientIP(hostPort string) string {
	if host, _, err := net.SplitHostPort(hostPort); err == nil {
		return host
	}
	return hostPort
}

func noError(code imap.ResponseCode, text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

func badError(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: text}
}
