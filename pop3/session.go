package pop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/postkit/postkit/maillog"
)

type state int

const (
	stateAuthorization state = iota // RFC 1939 §4
	stateTransaction                // RFC 1939 §5
)

// maxDiscard is how much of an overlong line is skipped before the
// connection is closed: an -ERR answers a line somewhat too long, a client
// streaming megabytes without a line ending is not talking POP3.
const maxDiscard = 64 << 10

var (
	errLineTooLong = errors.New("pop3: line too long")
	errFlood       = errors.New("pop3: overlong line without end")
)

// session is one connection, from greeting to close.
type session struct {
	srv      *Server
	raw      net.Conn // as accepted; STLS layers TLS over it
	conn     net.Conn // raw, or TLS over raw
	r        *bufio.Reader
	w        *bufio.Writer
	tls      bool
	loopback bool

	state       state
	pendingUser string // from USER, waiting for PASS
	user        string // after login
	mbox        Mailbox
	msgs        []Message
	deleted     []bool
	failures    int // failed logins
	bad         int // unknown, malformed or refused commands
	end         bool

	copyBuf []byte // RETR and TOP read messages with it

	retrieved int    // RETR commands answered
	expunged  int    // messages removed at QUIT
	result    string // how the session ended, for the log
}

func newSession(srv *Server, c net.Conn) *session {
	s := &session{srv: srv, raw: c, conn: c, result: "dropped"}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		s.loopback = a.IP.IsLoopback()
	}
	s.setConn(c)
	return s
}

// setConn makes c the connection commands are read from and replies written to.
func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.r = bufio.NewReader(c)
	s.w = bufio.NewWriterSize(deadlineWriter{c, s.srv.idleTimeout()}, writeBufSize)
}

// writeBufSize is the size of a session's output buffer: a typical message
// goes out in one write.
const writeBufSize = 64 << 10

// deadlineWriter bounds every write: a client that stops reading a RETR is
// dropped after the idle timeout.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

func (s *session) run() {
	defer s.finish()
	if tc, ok := s.raw.(*tls.Conn); ok {
		// Implicit TLS (port 995, RFC 8314 §3.3): handshake before the greeting.
		tc.SetDeadline(time.Now().Add(s.srv.idleTimeout()))
		if err := tc.Handshake(); err != nil {
			s.result = "tls-error error=" + quote(err.Error())
			return
		}
		tc.SetDeadline(time.Time{})
		s.tls = true
	}
	s.reply("+OK %s POP3 server ready", s.srv.Hostname)
	for !s.end {
		line, err := s.readLine(MaxCommandLine)
		switch {
		case errors.Is(err, errLineTooLong):
			s.badCommand("-ERR line too long (RFC 2449 §4: at most %d octets)", MaxCommandLine)
			continue
		case err != nil:
			s.readFailed(err)
			return
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			s.badCommand("-ERR syntax error")
			continue
		}
		s.dispatch(cmd)
	}
}

// readFailed ends the session after a read error, telling an idle client why.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939 §3 autologout: close without entering UPDATE.
		s.result = "timeout"
		s.reply("-ERR disconnected for inactivity")
	case errors.Is(err, errFlood):
		s.result = "line-flood"
		s.reply("-ERR line too long, closing")
	case errors.Is(err, io.EOF):
		s.result = "dropped"
	default:
		s.result = "dropped error=" + quote(err.Error())
	}
}

func (s *session) finish() {
	if s.mbox != nil {
		// Without QUIT in TRANSACTION there is no UPDATE state: nothing is
		// removed (RFC 1939 §6). Closing releases the lock.
		if err := s.mbox.Close(); err != nil {
			s.logError("closing mailbox", err)
		}
	}
	s.w.Flush()
	user := s.user
	if user == "" {
		user = "-"
	}
	s.srv.logger().Printf("session client=%s user=%s tls=%t retrieved=%d deleted=%d result=%s",
		s.raw.RemoteAddr(), quote(user), s.tls, s.retrieved, s.expunged, s.result)
}

func (s *session) logError(what string, err error) {
	user := s.user
	if user == "" {
		user = "-"
	}
	s.srv.logger().Printf("error client=%s user=%s what=%s error=%s",
		s.raw.RemoteAddr(), quote(user), quote(what), quote(err.Error()))
}

// quote returns s as a log value (maillog.Quote), so that a log line
// always splits into key=value pairs.
func quote(s string) string { return maillog.Quote(s) }

// clientIP is the IP address of a client, without the port.
func clientIP(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// reply writes one response line. Replies are buffered and sent before the
// session waits for more input, so pipelined commands (RFC 2449 §6.6) are
// answered in order with few writes.
func (s *session) reply(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.w.WriteString("\r\n")
}

// badCommand answers a command that is unknown, malformed or not allowed
// now, and closes a connection that sends too many of them.
func (s *session) badCommand(format string, args ...any) {
	s.bad++
	if s.bad >= maxBadCommands {
		s.reply("-ERR too many bad commands, closing")
		s.result = "too-many-bad-commands"
		s.end = true
		return
	}
	s.reply(format, args...)
}

// readLine reads one line of at most max octets, line ending included. It
// first sends the buffered replies unless a complete next line is already
// buffered (pipelining). A longer line is skipped and errLineTooLong
// returned; the time to read a line is bounded by the idle timeout.
func (s *session) readLine(max int) (string, error) {
	if !s.lineBuffered() {
		if err := s.w.Flush(); err != nil {
			return "", err
		}
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(s.srv.idleTimeout())); err != nil {
		return "", err
	}
	var line []byte
	tooLong := false
	skipped := 0
	for {
		frag, err := s.r.ReadSlice('\n')
		if !tooLong && len(line)+len(frag) > max {
			tooLong, line = true, nil
		}
		if tooLong {
			skipped += len(frag)
			if skipped > maxDiscard {
				return "", errFlood
			}
		} else {
			line = append(line, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	return string(line), nil
}

func (s *session) lineBuffered() bool {
	buf, _ := s.r.Peek(s.r.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

func (s *session) dispatch(cmd Command) {
	if cmd.Name == "CAPA" {
		s.cmdCAPA(cmd)
		return
	}
	if s.state == stateAuthorization {
		switch cmd.Name {
		case "USER":
			s.cmdUSER(cmd)
		case "PASS":
			s.cmdPASS(cmd)
		case "AUTH":
			s.cmdAUTH(cmd)
		case "STLS":
			s.cmdSTLS(cmd)
		case "QUIT":
			s.cmdQUIT(cmd)
		case "APOP":
			// Passwords are stored hashed: the shared secret APOP needs
			// (RFC 1939 §7) is not available.
			s.badCommand("-ERR APOP not supported")
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
			s.badCommand("-ERR log in first")
		default:
			s.badCommand("-ERR unknown command")
		}
		return
	}
	switch cmd.Name {
	case "STAT":
		s.cmdSTAT(cmd)
	case "LIST":
		s.cmdLIST(cmd)
	case "UIDL":
		s.cmdUIDL(cmd)
	case "RETR":
		s.cmdRETR(cmd)
	case "TOP":
		s.cmdTOP(cmd)
	case "DELE":
		s.cmdDELE(cmd)
	case "NOOP":
		if s.noArgs(cmd) {
			s.reply("+OK")
		}
	case "RSET":
		s.cmdRSET(cmd)
	case "QUIT":
		s.cmdQUIT(cmd)
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		s.badCommand("-ERR already logged in")
	default:
		s.badCommand("-ERR unknown command")
	}
}

// noArgs answers -ERR and returns false when cmd has arguments.
func (s *session) noArgs(cmd Command) bool {
	if len(cmd.Args) > 0 {
		s.badCommand("-ERR %s takes no arguments", cmd.Name)
		return false
	}
	return true
}

// cmdCAPA lists the capabilities (RFC 2449 §5). USER and SASL PLAIN are only
// listed where a login is allowed, as Dovecot does: before STLS on a
// connection that must use TLS they would only invite a refused login. The
// list depends on the connection, not the state, because RFC 2449 §5 wants
// AUTHORIZATION capabilities announced in both states.
func (s *session) cmdCAPA(cmd Command) {
	if !s.noArgs(cmd) {
		return
	}
	s.reply("+OK capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	if s.loginAllowed() {
		s.reply("USER")
		s.reply("SASL PLAIN")
	}
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	if s.srv.TLSConfig != nil && !s.tls {
		s.reply("STLS")
	}
	// Messages are never deleted by the server (RFC 2449 §6.7).
	s.reply("EXPIRE NEVER")
	s.reply("IMPLEMENTATION postkit")
	s.reply(".")
}

func (s *session) cmdQUIT(cmd Command) {
	if !s.noArgs(cmd) {
		return
	}
	s.end = true
	s.result = "quit"
	if s.state != stateTransaction {
		s.reply("+OK bye")
		return
	}
	// The UPDATE state (RFC 1939 §6).
	var marked []int
	for i, d := range s.deleted {
		if d {
			marked = append(marked, i)
		}
	}
	if len(marked) > 0 {
		if err := s.mbox.Expunge(marked); err != nil {
			s.logError("removing deleted messages", err)
			s.result = "quit-expunge-failed"
			s.reply("-ERR [SYS/TEMP] some deleted messages not removed")
			return
		}
	}
	s.expunged = len(marked)
	s.reply("+OK bye, %d messages deleted", len(marked))
}
