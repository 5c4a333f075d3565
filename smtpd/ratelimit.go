package smtpd

import (
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/ratelimit"
)

// Rate limits (package ratelimit), shared by every smtpd process of the
// root through files under ROOT/spool/ratelimit/ (under inetd or systemd's
// Accept=yes each connection is its own process). Both control files are
// read at every use, so changes apply at once; 0 turns a limit off.
const (
	// DefaultConnectionsPerMinute is the default of
	// etc/rate-connections-per-minute: connections from one client
	// address (an IPv6 client's /64), in both modes, answered 421 4.7.0
	// beyond it. Off, as in Postfix: a legitimate sender may open many
	// connections from one address (a mailing list server, a NAT), and
	// the session caps already bound what one address holds at once.
	DefaultConnectionsPerMinute = 0
	// DefaultMessagesPerHour is the default of etc/rate-messages-per-hour:
	// messages accepted from one authenticated user, in both modes,
	// answered 451 4.7.1 beyond it. It bounds what a stolen password can
	// send, far above what a person sends.
	DefaultMessagesPerHour = 500
)

// connectionRefusal counts a new connection against
// etc/rate-connections-per-minute and returns the 421 reply line that
// refuses it, or "". Relay clients (our own hosts) are not counted.
func (s *Server) connectionRefusal(info *connInfo) string {
	n := s.rate("rate-connections-per-minute", DefaultConnectionsPerMinute)
	if n < 1 || !info.ip.IsValid() || s.relayClient(info) {
		return ""
	}
	l := s.limiter("connections", n, time.Minute)
	d, err := l.Take(ratelimit.ClientKey(info.ip))
	if err != nil {
		s.logf("error conn=%s client=%s error=%q", info.id, info.client, err)
	}
	if d.Allowed {
		return ""
	}
	s.logf("refused conn=%s client=%s reason=rate-connections limit=%d/minute", info.id, info.client, n)
	// RFC 5321 §3.8: a server that must not serve now answers 421.
	return fmt.Sprintf("421 4.7.0 %s Too many connections from %s, try again in %s",
		s.hostname, info.client, retryText(d.RetryAfter))
}

// messageRefusal checks the authenticated user's messages against
// etc/rate-messages-per-hour: at MAIL it only looks (take false), at the
// end of the data it counts the message that is about to be stored. It
// returns the 451 reply that refuses it, or nil.
func (s *session) messageRefusal(take bool) error {
	if s.user == "" {
		return nil
	}
	n := s.srv.rate("rate-messages-per-hour", DefaultMessagesPerHour)
	if n < 1 {
		return nil
	}
	info := s.conn.info
	l := s.srv.limiter("messages", n, time.Hour)
	decide := l.Peek
	if take {
		decide = l.Take
	}
	d, err := decide(s.user)
	if err != nil {
		s.srv.logf("error conn=%s user=%s error=%q", info.id, logValue(s.user), err)
	}
	if d.Allowed {
		return nil
	}
	s.srv.logf("refused conn=%s client=%s user=%s reason=rate-messages limit=%d/hour",
		info.id, info.client, logValue(s.user), n)
	// RFC 3463 X.7.1: delivery not authorized (for now).
	return smtpError(451, smtp.EnhancedCode{4, 7, 1}, "Too many messages from %s, try again in %s",
		s.user, retryText(d.RetryAfter))
}

func (s *Server) limiter(kind string, limit int, window time.Duration) *ratelimit.Limiter {
	return &ratelimit.Limiter{
		Dir:    filepath.Join(s.root.SpoolDir(), "ratelimit", kind),
		Limit:  limit,
		Window: window,
	}
}

// rate reads a rate control file: a whole number, 0 for no limit. A value
// that is no such number is logged and the default used.
func (s *Server) rate(name string, def int) int {
	n, err := s.etc.Int(name, int64(def))
	if err == nil && (n < 0 || n > math.MaxInt32) {
		err = fmt.Errorf("%d is not a rate (0 to %d)", n, math.MaxInt32)
	}
	if err != nil {
		s.logf("error file=%s error=%q using=%d", logValue(s.root.Etc(name)), err, def)
		return def
	}
	return int(n)
}

// retryText says when to try again: "20 seconds", "12 minutes".
func retryText(d time.Duration) string {
	if d < 2*time.Minute {
		return fmt.Sprintf("%d seconds", int(math.Ceil(d.Seconds())))
	}
	return fmt.Sprintf("%d minutes", int(math.Ceil(d.Minutes())))
}
