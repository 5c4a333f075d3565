package imapd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/users"
)

// errBadCredentials is what authenticate returns for a wrong address or
// password.
var errBadCredentials = errors.New("imapd: invalid credentials")

// Login checks a LOGIN or AUTHENTICATE PLAIN (go-imap turns the latter
// into a Login call; it has already refused both without TLS unless this
// server allows plain text). A failed login is answered after a delay
// that doubles with each failure, and the third closes the connection
// with BYE.
func (s *session) Login(username, password string) error {
	if s.failures >= MaxLoginFailures {
		// The connection is being closed.
		return imapserver.ErrAuthFailed
	}
	user, root, err := s.srv.authenticate(username, password)
	if errors.Is(err, errBadCredentials) {
		return s.loginFailed(username)
	}
	if err != nil {
		s.logError("login "+username, err)
		return noError(imap.ResponseCodeUnavailable, "Authentication temporarily unavailable")
	}
	s.user, s.root = user, root
	// The password check's garbage need not stay while the session
	// waits for its first command.
	go releaseMemory(&loginRelease)
	return nil
}

// loginFailed logs a failed login, with the client's IP address (without
// the port) first for fail2ban (imapd(8)), and answers it after a delay.
func (s *session) loginFailed(login string) error {
	s.failures++
	if login == "" {
		login = "-"
	}
	s.srv.logger().Printf("auth-failed client=%s user=%s failures=%d", clientIP(s.client), quote(login), s.failures)
	sleep := time.Sleep
	if s.srv.sleep != nil {
		sleep = s.srv.sleep
	}
	sleep(s.srv.failureDelay() << (s.failures - 1))
	if s.failures >= MaxLoginFailures {
		s.result = "too-many-login-failures"
		// go-imap holds its writer lock while AUTHENTICATE runs, so the
		// BYE (which closes the connection) can only be written once the
		// command's tagged NO is out: from another goroutine.
		go s.conn.Bye("Too many failed logins")
	}
	return imapserver.ErrAuthFailed
}

// authenticate checks the login (a full address, so "Alice@Example.ORG"
// logs in alice@example.org) and password against etc/users and
// etc/app-passwords, and finds the user's Maildir as delivery does. It
// returns the address's key and the Maildir, creating the Maildir if
// nothing was delivered yet. Logins that are no address fail like wrong
// passwords.
func (s *Server) authenticate(login, password string) (string, maildir.Dir, error) {
	user, ok, err := users.Login(s.Root, login, password)
	if err != nil {
		return "", "", fmt.Errorf("imapd: %w", err)
	}
	if !ok {
		return "", "", errBadCredentials
	}
	dir, err := resolve.UserMaildir(s.Root, user)
	if err != nil {
		return "", "", fmt.Errorf("imapd: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("imapd: %w", err)
		}
		if err := maildir.Create(dir); err != nil {
			return "", "", fmt.Errorf("imapd: %w", err)
		}
	}
	return user, maildir.Dir(dir), nil
}
