package pop3

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

// loginAllowed reports whether passwords may be sent on this connection:
// over TLS, or in plain text from loopback when the administrator allows it.
func (s *session) loginAllowed() bool {
	return s.tls || (s.srv.AllowPlaintextLoopback && s.loopback)
}

// refusePlaintext answers a login attempt on a connection without TLS.
// RFC 3206 §4 counts logins refused by policy as [AUTH].
func (s *session) refusePlaintext() {
	if s.srv.TLSConfig != nil {
		s.badCommand("-ERR [AUTH] login only over TLS: use STLS first")
	} else {
		s.badCommand("-ERR [AUTH] login only over TLS")
	}
}

func (s *session) cmdUSER(cmd Command) {
	// Refusing at USER keeps the password off the wire.
	if !s.loginAllowed() {
		s.refusePlaintext()
		return
	}
	if cmd.Rest == "" {
		s.badCommand("-ERR syntax: USER name")
		return
	}
	s.pendingUser = cmd.Rest
	s.reply("+OK send PASS")
}

func (s *session) cmdPASS(cmd Command) {
	if s.pendingUser == "" {
		s.badCommand("-ERR send USER first")
		return
	}
	login := s.pendingUser
	s.pendingUser = ""
	// RFC 1939 §7: the password is the whole rest of the line, spaces included.
	s.login(login, cmd.Rest, "USER")
}

// cmdAUTH implements AUTH with the PLAIN mechanism (RFC 5034, RFC 4616).
func (s *session) cmdAUTH(cmd Command) {
	s.pendingUser = ""
	if len(cmd.Args) == 0 {
		// Not in RFC 5034, but clients from the RFC 1734 era send a bare AUTH
		// to learn the mechanisms; Dovecot answers it the same way.
		if !s.loginAllowed() {
			s.refusePlaintext()
			return
		}
		s.reply("+OK")
		s.reply("PLAIN")
		s.reply(".")
		return
	}
	if len(cmd.Args) > 2 {
		s.badCommand("-ERR syntax: AUTH mechanism [initial-response]")
		return
	}
	if !strings.EqualFold(cmd.Args[0], "PLAIN") {
		s.badCommand("-ERR unsupported authentication mechanism")
		return
	}
	if !s.loginAllowed() {
		s.refusePlaintext()
		return
	}
	var response string
	if len(cmd.Args) == 2 {
		response = cmd.Args[1]
		// RFC 5034 §4: "=" is an empty initial response.
		if response == "=" {
			response = ""
		}
	} else {
		// RFC 5034 §4: an empty challenge is "+ " and the client answers
		// with one line, or "*" to cancel.
		s.reply("+ ")
		line, err := s.readLine(maxAuthLine)
		if errors.Is(err, errLineTooLong) {
			s.badCommand("-ERR authentication response too long")
			return
		}
		if err != nil {
			s.readFailed(err)
			s.end = true
			return
		}
		response = strings.TrimRight(line, "\r\n")
		if response == "*" {
			s.reply("-ERR authentication cancelled")
			return
		}
	}
	dec, err := base64.StdEncoding.DecodeString(response)
	if err != nil {
		// RFC 5034 §4: a response that is not base64 rejects the AUTH.
		s.badCommand("-ERR invalid base64 in authentication response")
		return
	}
	// RFC 4616 §2: authzid NUL authcid NUL passwd. Acting as another user
	// is not supported, so authzid must be empty or the same as authcid.
	parts := bytes.Split(dec, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
		login := ""
		if len(parts) > 1 {
			login = string(parts[1])
		}
		s.loginFailed(login, "PLAIN")
		return
	}
	s.login(string(parts[1]), string(parts[2]), "PLAIN")
}

// login checks the credentials given with mech (USER or PLAIN) and opens
// the mailbox.
func (s *session) login(login, password, mech string) {
	user, err := s.srv.Authenticate(login, password)
	if errors.Is(err, ErrBadCredentials) {
		s.loginFailed(login, mech)
		return
	}
	if err != nil {
		s.logError("authenticating "+login, err)
		s.badCommand("-ERR [SYS/TEMP] authentication temporarily unavailable")
		return
	}
	mbox, err := s.srv.Open(user)
	if errors.Is(err, ErrInUse) {
		// RFC 1939 §8: the maildrop is locked by another session.
		s.badCommand("-ERR [IN-USE] mailbox in use by another POP3 session")
		return
	}
	if err != nil {
		s.logError("opening mailbox of "+user, err)
		s.badCommand("-ERR [SYS/TEMP] cannot open mailbox")
		return
	}
	s.user = user
	s.mbox = mbox
	s.msgs = mbox.Messages()
	s.deleted = make([]bool, len(s.msgs))
	s.state = stateTransaction
	count, size := s.stat()
	s.reply("+OK %d messages (%d octets)", count, size)
}

// loginFailed logs a failed login, answers it after a delay that doubles
// with each failure, and closes the connection after MaxLoginFailures. The
// log line starts with the client's IP address, without the port, for
// fail2ban (pop3d(8)).
func (s *session) loginFailed(login, mech string) {
	s.failures++
	if login == "" {
		login = "-"
	}
	s.srv.logger().Printf("auth-failed client=%s mech=%s user=%s failures=%d", clientIP(s.raw.RemoteAddr()), mech, quote(login), s.failures)
	if err := s.w.Flush(); err != nil {
		s.end = true
		return
	}
	sleep := time.Sleep
	if s.srv.sleep != nil {
		sleep = s.srv.sleep
	}
	sleep(s.srv.failureDelay() << (s.failures - 1))
	if s.failures >= MaxLoginFailures {
		s.reply("-ERR [AUTH] invalid credentials, closing")
		s.result = "too-many-login-failures"
		s.end = true
		return
	}
	s.reply("-ERR [AUTH] invalid credentials")
}

// cmdSTLS starts TLS (RFC 2595 §4).
func (s *session) cmdSTLS(cmd Command) {
	if !s.noArgs(cmd) {
		return
	}
	if s.tls {
		s.badCommand("-ERR already using TLS")
		return
	}
	if s.srv.TLSConfig == nil {
		s.badCommand("-ERR STLS not available")
		return
	}
	s.reply("+OK begin TLS negotiation")
	if err := s.w.Flush(); err != nil {
		s.end = true
		return
	}
	// Whatever the client sent after STLS in plain text is dropped with
	// the old reader: it could have been injected by an attacker and would
	// otherwise be read as if it came over TLS (CVE-2011-0411).
	tc := tls.Server(s.raw, s.srv.TLSConfig)
	tc.SetDeadline(time.Now().Add(s.srv.idleTimeout()))
	if err := tc.Handshake(); err != nil {
		s.result = "tls-error error=" + quote(err.Error())
		s.end = true
		return
	}
	tc.SetDeadline(time.Time{})
	s.tls = true
	// RFC 2595 §4: forget what was learnt before TLS.
	s.pendingUser = ""
	s.setConn(tc)
}
