// Package smtpd is postkit's SMTP server: it receives mail and puts it into
// the spool, and does nothing else (sendq delivers). The protocol is
// github.com/emersion/go-smtp's; this package holds every policy decision.
//
// Two modes:
//
//   - MX mode (the default, port 25) accepts mail for local domains, checking
//     each RCPT against users, aliases and catch-alls when it is given (550
//     5.1.1 for unknown users). Mail for other domains (relaying) is refused
//     with 554 5.7.1 unless the client's address is in etc/relay-clients or
//     the client authenticated (AUTH is offered under TLS in this mode too,
//     so that users whose client speaks only to port 25 can send).
//   - Submission mode (Config.Submission; ports 587, and 465 with implicit
//     TLS, RFC 6409 and RFC 8314) requires AUTH before MAIL (530 5.7.0); an
//     authenticated user may send only as an address they own (553 5.7.1
//     otherwise) and to anyone. Message-ID and Date are added when missing
//     (RFC 6409 §8).
//
// In both modes AUTH PLAIN and LOGIN are offered only over TLS, users and
// aliases are read afresh at every MAIL, every accepted message gets a
// Received header (RFC 5321 §4.4), and the reply to the end of the data is
// 250 only once spool.Enqueue has returned: the message is on disk. A spool
// failure is 451 4.3.0, never a permanent error.
//
// The connection (see conn) enforces what go-smtp does not: command line
// limits, timeouts, error counting, STARTTLS and the SMTP smuggling defence
// (a message with a bare CR or LF is refused, RFC 5321 §2.3.8). The listener
// caps sessions overall and per client address.
//
// Sender authentication (package msgauth), in MX mode for clients that
// neither authenticated nor are relay clients: every message is checked for
// SPF, DKIM and DMARC once it is received, and gets one
// Authentication-Results field (RFC 8601) below the Received field. A DMARC
// policy of reject is refused with 550 5.7.1 at the end of the data (or
// goes to Junk if etc/dmarc-reject says junk), quarantine goes to Junk (the
// spool envelope's junk key, which local delivery follows); an SPF fail on
// its own changes nothing unless etc/spf-fail says junk or refuse. From
// every client, Authentication-Results fields that claim our host name are
// removed (RFC 8601 §5: forgeries). Messages being checked are held in
// memory up to 1 MiB, beyond that in an unlinked file in $TMPDIR.
//
// DNSBLs (package dnsbl): the client's address is looked up in the zones of
// etc/dnsbl-zones as soon as it connects, in MX mode unless it is a relay
// client. A listed client is refused at MAIL (554 5.7.1 with the zone's TXT
// reason), not at connect, and only if it has not authenticated: our users
// on listed networks (home and mobile addresses often are) can still log in
// and send.
//
// Content filters (package milter; milter.go): once a message is in, it
// goes through the milters of etc/milters (incoming mail: the sessions
// sender authentication checks) or etc/submission-milters (everything
// else), in order. A filter may refuse it (its 5xx or 550 5.7.1), defer
// it (its 4xx or 451 4.7.1), discard it (250, and nothing is stored),
// add, insert, change or delete header fields, or quarantine it (the spool
// envelope's junk key "milter": local delivery files it into Junk). A
// filter that cannot be asked gives 451 4.7.1, or is skipped when
// etc/milter-failure says accept. The fields etc/spam-header names, which
// make local delivery file a message into Junk, are removed from incoming
// mail before the filters see it, so that only a filter can set them.
//
// Rate limits (package ratelimit; ratelimit.go), counted in files under
// ROOT/spool/ratelimit/ that every smtpd process of the root shares:
// connections per client address (an IPv6 client's /64) per minute, over
// which a connection gets 421 4.7.0 instead of the greeting (relay clients
// are exempt), and messages per authenticated user per hour, over which
// MAIL, or the end of the data of a transaction that passed MAIL just
// before, gets 451 4.7.1.
//
// Control files read (ROOT/etc/): size-limit (default 50M), recipient-limit
// (default 100), relay-clients (IP addresses and CIDR prefixes, one a line;
// default none, read at every session), dns (the resolver for SPF, DKIM,
// DMARC and DNSBL lookups, unless Config.DNS is set; default
// /etc/resolv.conf's), dnsbl-zones (one zone a line; default none, read at
// every connection), spf-fail (accept, junk or refuse; default accept) and
// dmarc-reject (refuse or junk; default refuse), both read at every
// message, rate-connections-per-minute (default 0: no limit) and
// rate-messages-per-hour (default 500), read at every use, milters and
// submission-milters (one filter a line; default none), milter-failure
// (tempfail or accept; default tempfail) and spam-header (default none),
// read at every message, users, app-passwords and aliases (through
// packages users and resolve).
package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/dnsbl"
	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/msgauth"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/spool"
)

// Defaults of the Config fields left zero.
const (
	DefaultMaxMessageBytes      = 50 << 20
	DefaultMaxRecipients        = 100
	DefaultCommandTimeout       = 5 * time.Minute  // RFC 5321 §4.5.3.2.7
	DefaultDataTimeout          = 10 * time.Minute // RFC 5321 §4.5.3.2.6
	DefaultMaxSessions          = 100
	DefaultMaxSessionsPerClient = 10
	DefaultMaxErrors            = 10
	DefaultAuthFailureDelay     = time.Second
	// MaxAuthFailures failed AUTH attempts end the session.
	MaxAuthFailures = 3
)

// Config configures a Server. Zero values mean the defaults above, or the
// control file where one is named.
type Config struct {
	Root     control.Root
	Hostname string // the name in greetings and Received headers
	// Submission selects submission mode instead of MX mode.
	Submission bool
	// TLS enables STARTTLS (and is what implicit TLS listeners use); nil
	// means no TLS, and then no AUTH either.
	TLS *tls.Config
	// MaxMessageBytes defaults to etc/size-limit, else 50 MiB;
	// MaxRecipients to etc/recipient-limit, else 100.
	MaxMessageBytes int64
	MaxRecipients   int
	// CommandTimeout bounds the wait for each command line, DataTimeout the
	// transfer of each DATA block or BDAT chunk.
	CommandTimeout, DataTimeout time.Duration
	// MaxSessions caps concurrent sessions, MaxSessionsPerClient those from
	// one IP address.
	MaxSessions, MaxSessionsPerClient int
	// MaxErrors error replies end a session with 421.
	MaxErrors int
	// AuthFailureDelay is the wait before answering the first failed AUTH;
	// it doubles with each further failure.
	AuthFailureDelay time.Duration
	// DNS is the address of the DNS resolver for the SPF, DKIM, DMARC and
	// DNSBL lookups of MX mode ("192.0.2.53", "[::1]:5353"); empty means
	// etc/dns, else the name servers of /etc/resolv.conf.
	DNS string
	// Log receives the log lines; nil means log.Default().
	Log *log.Logger

	sleep func(time.Duration) // time.Sleep unless a test sets it
}

// Server is an SMTP server over one postkit root.
type Server struct {
	root           control.Root
	hostname       string
	submission     bool
	tlsConf        *tls.Config
	smtp           *smtp.Server
	log            *log.Logger
	commandTimeout time.Duration
	dataTimeout    time.Duration
	maxErrors      int
	authDelay      time.Duration
	sleep          func(time.Duration)
	checker        *msgauth.Checker
	dnsbl          *dnsbl.Checker

	// limit caps the sessions of this process, overall and per client
	// address (the same counter pop3d and imapd use).
	limit inetd.SessionLimit

	// users reads etc/users, etc/aliases and etc/domains again only when
	// they change, not at every MAIL.
	users resolve.Cache
	// etc reads the control files that apply at every session or message
	// (relay-clients, dnsbl-zones, the rate limits, the sender checks, the
	// milter lists) again only when they change: a read is some ten
	// syscalls, a stat(2) one.
	etc control.Cache
	// spool is opened at the first message (see New) and kept.
	spoolMu sync.Mutex
	spool   *spool.Spool
}

// openSpool returns the spool, opening it at the first call that succeeds.
func (srv *Server) openSpool() (*spool.Spool, error) {
	srv.spoolMu.Lock()
	defer srv.spoolMu.Unlock()
	if srv.spool == nil {
		sp, err := spool.Open(srv.root.SpoolDir())
		if err != nil {
			return nil, err
		}
		srv.spool = sp
	}
	return srv.spool, nil
}

// New returns a Server for cfg; it reads the size and recipient limits from
// the control files. The spool is opened at the first message, after a
// daemon started as root has switched to its --user, so that a spool created
// on the way belongs to that user.
func New(cfg Config) (*Server, error) {
	if cfg.Hostname == "" {
		return nil, fmt.Errorf("smtpd: no host name")
	}
	if cfg.CommandTimeout < 0 || cfg.DataTimeout < 0 || cfg.AuthFailureDelay < 0 {
		return nil, fmt.Errorf("smtpd: negative timeout or delay")
	}
	if cfg.MaxSessions < 0 || cfg.MaxSessionsPerClient < 0 || cfg.MaxErrors < 0 {
		return nil, fmt.Errorf("smtpd: negative limit")
	}
	var err error
	if cfg.MaxMessageBytes == 0 {
		if cfg.MaxMessageBytes, err = cfg.Root.Size("size-limit", DefaultMaxMessageBytes); err != nil {
			return nil, fmt.Errorf("smtpd: %w", err)
		}
	}
	if cfg.MaxRecipients == 0 {
		n, err := cfg.Root.Int("recipient-limit", DefaultMaxRecipients)
		if err != nil {
			return nil, fmt.Errorf("smtpd: %w", err)
		}
		if n < 1 || n > 1<<20 {
			return nil, fmt.Errorf("smtpd: %s: %d is not a recipient limit (1 to %d)", cfg.Root.Etc("recipient-limit"), n, 1<<20)
		}
		cfg.MaxRecipients = int(n)
	}
	if cfg.MaxMessageBytes < 1 {
		return nil, fmt.Errorf("smtpd: size limit %d is not positive", cfg.MaxMessageBytes)
	}
	dns, err := dnsquery.Configured(cfg.Root, cfg.DNS, mx.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("smtpd: %w", err)
	}
	resolver := dns.NetResolver()
	s := &Server{
		users:          resolve.Cache{Root: cfg.Root},
		etc:            control.Cache{Root: cfg.Root},
		root:           cfg.Root,
		hostname:       cfg.Hostname,
		submission:     cfg.Submission,
		tlsConf:        cfg.TLS,
		log:            cfg.Log,
		commandTimeout: orDefault(cfg.CommandTimeout, DefaultCommandTimeout),
		dataTimeout:    orDefault(cfg.DataTimeout, DefaultDataTimeout),
		maxErrors:      orDefault(cfg.MaxErrors, DefaultMaxErrors),
		authDelay:      orDefault(cfg.AuthFailureDelay, DefaultAuthFailureDelay),
		sleep:          cfg.sleep,
		limit: inetd.SessionLimit{
			Max:          orDefault(cfg.MaxSessions, DefaultMaxSessions),
			MaxPerClient: orDefault(cfg.MaxSessionsPerClient, DefaultMaxSessionsPerClient),
		},
		checker: &msgauth.Checker{Resolver: resolver},
		dnsbl:   &dnsbl.Checker{Resolver: resolver},
	}
	if s.log == nil {
		s.log = log.Default()
	}
	if s.sleep == nil {
		s.sleep = time.Sleep
	}
	srv := smtp.NewServer(&backend{srv: s})
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	// conn limits command lines; message lines are limited only by the
	// message size, so long HTML lines are never refused, split or cut.
	srv.MaxLineLength = 0
	// The session refuses AUTH without TLS: go-smtp cannot tell, since its
	// net.Conn is a conn, never a *tls.Conn. For the same reason STARTTLS and
	// REQUIRETLS are advertised by conn, and TLSConfig stays nil here.
	srv.AllowInsecureAuth = true
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.EnableREQUIRETLS = true
	srv.ErrorLog = log.New(&prefixWriter{s}, "", 0)
	s.smtp = srv
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Serve serves the connections of l until l is closed or Shutdown is called.
// Connections from a listener made by tls.NewListener are implicit TLS.
func (s *Server) Serve(l net.Listener) error {
	return s.smtp.Serve(newListener(s, l))
}

// Shutdown stops accepting connections and waits for the sessions to end or
// ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if err == smtp.ErrServerClosed {
		err = nil
	}
	return err
}

// Close closes the listeners and every session at once.
func (s *Server) Close() error {
	err := s.smtp.Close()
	if err == smtp.ErrServerClosed {
		err = nil
	}
	return err
}

// admit wraps a new connection in a conn, or refuses it with 421 when the
// session limits are reached.
func (s *Server) admit(l *listener, c net.Conn) *conn {
	info := newConnInfo(c.RemoteAddr())
	release, refused := s.limit.Admit(c.RemoteAddr())
	if refused != "" {
		s.logf("refused conn=%s client=%s reason=%s", info.id, info.client, refused)
		go func() {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "421 4.7.0 %s Too many connections, try again later\r\n", s.hostname)
			c.Close()
		}()
		return nil
	}
	info.release = release
	if !s.submission {
		s.startDNSBL(info)
	}
	return newConn(s, l, c, info)
}

// ended logs the session line and frees the connection's place.
func (s *Server) ended(info *connInfo) {
	info.release()
	s.logf("%s", info.logLine())
}

func (s *Server) logf(format string, args ...any) {
	s.log.Printf(format, args...)
}

// prefixWriter sends go-smtp's own error log lines to the server's log.
type prefixWriter struct{ s *Server }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.s.logf("go-smtp error=%s", logValue(trimLine(string(p))))
	return len(p), nil
}
