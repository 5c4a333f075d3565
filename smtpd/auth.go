package smtpd

import (
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/users"
)

// errBadCredentials is what the SASL mechanisms report for a wrong user name
// or password; the exchange turns it into 535 5.7.8.
var errBadCredentials = errors.New("smtpd: bad credentials")

// AuthMechanisms offers PLAIN (RFC 4616) and LOGIN only over TLS: both send
// the password as it is.
func (s *session) AuthMechanisms() []string {
	if !s.conn.isTLS() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.conn.isTLS() {
		// RFC 4954 §6.
		return nil, smtpError(538, smtp.EnhancedCode{5, 7, 11}, "Encryption required for requested authentication mechanism")
	}
	s.mu.Lock()
	inTx := s.tx != nil
	s.mu.Unlock()
	if inTx {
		// RFC 4954 §4: not during a mail transaction.
		return nil, smtpError(503, smtp.EnhancedCode{5, 5, 1}, "AUTH not permitted during a mail transaction")
	}
	switch mech {
	case sasl.Plain:
		return &authExchange{s: s, mech: mech, inner: sasl.NewPlainServer(func(identity, username, password string) error {
			// No proxy authorisation: the identity, if any, must be the user.
			if identity != "" && identity != username {
				s.authUser = username
				return errBadCredentials
			}
			return s.checkPassword(username, password)
		})}, nil
	case sasl.Login:
		return &authExchange{s: s, mech: mech, inner: &loginServer{check: s.checkPassword}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// checkPassword checks a user's password or app password.
func (s *session) checkPassword(username, password string) error {
	s.authUser = username
	user, ok, err := users.Login(s.srv.root, username, password)
	if err != nil {
		s.srv.logf("error conn=%s user=%s what=%s error=%q", s.conn.info.id, logValue(username), logValue("checking the password"), err)
		if !ok {
			return smtpError(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
		}
	}
	if !ok {
		return errBadCredentials
	}
	// From here on the user is known by its canonical address, whatever
	// spelling the client logged in with.
	s.user = user
	if a, err := address.Parse(user); err == nil {
		s.userAddr = a
	}
	s.conn.info.setUser(user)
	return nil
}

// authExchange wraps a SASL mechanism: every failure other than a temporary
// one counts as a failed attempt (authFailed).
type authExchange struct {
	s     *session
	mech  string
	inner sasl.Server
}

func (a *authExchange) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := a.inner.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Temporary() {
		return nil, false, err
	}
	return nil, false, a.s.authFailed(a.mech)
}

// authFailed logs a failed AUTH, waits longer after each failure (1, 2, 4
// times AuthFailureDelay), and after MaxAuthFailures ends the session with
// 421 once the 535 is sent. The log line starts
//
//	auth-failed client=IP
//
// for fail2ban.
func (s *session) authFailed(mech string) error {
	info := s.conn.info
	n := info.addAuthFailure()
	s.srv.logf("auth-failed client=%s conn=%s mech=%s user=%s failures=%d",
		info.client, info.id, mech, logValue(s.authUser), n)
	s.srv.sleep(s.srv.authDelay << (n - 1))
	if n >= MaxAuthFailures {
		s.conn.endAfterReply("too-many-auth-failures",
			fmt.Sprintf("421 4.7.0 %s Too many failed authentications, closing connection", s.srv.hostname))
	}
	return smtp.ErrAuthFailed
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl lacks: the server asks
// "Username:" (unless the client gave it as the initial response), then
// "Password:".
type loginServer struct {
	step  int
	user  string
	check func(username, password string) error
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if len(response) > 0 {
			l.user, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		l.step = 1
		return []byte("Username:"), false, nil
	case 1:
		l.user, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
