package smtpd

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/spool"
)

// backend makes a session for each client that says HELO or EHLO (go-smtp
// calls NewSession then, not at connect; and again after STARTTLS).
type backend struct{ srv *Server }

func (b *backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c, ok := sc.Conn().(*conn)
	if !ok {
		return nil, errors.New("smtpd: connection not served through smtpd.Server")
	}
	return &session{srv: b.srv, sc: sc, conn: c, relay: b.srv.relayClient(c.info)}, nil
}

// session holds the policy of one SMTP session. go-smtp calls Mail and Rcpt
// whether or not the client authenticated: every check is here.
type session struct {
	srv   *Server
	sc    *smtp.Conn
	conn  *conn
	relay bool // the client's address is in etc/relay-clients

	// user is the authenticated user (the address as etc/users spells it,
	// or a plain login name), userAddr the parsed address if it is one.
	user     string
	userAddr address.Address
	authUser string // the user name of the last AUTH attempt, for the log

	mu sync.Mutex // tx: Data runs on its own goroutine under BDAT
	tx *transaction
}

// transaction is one mail transaction, from MAIL to the end of the data or
// RSET.
type transaction struct {
	from     address.Address
	opts     smtp.MailOptions
	helo     string            // the HELO or EHLO argument
	resolver *resolve.Resolver // users and aliases as of MAIL
	rcpts    []spool.Recipient
	seen     map[string]bool
}

func smtpError(code int, enhanced smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: fmt.Sprintf(format, args...)}
}

// errTempLocal is the reply to failures of our own files: temporary, so the
// client tries again (RFC 3463 X.3.0).
var errTempLocal = smtpError(451, smtp.EnhancedCode{4, 3, 0}, "Local error, try again later")

func (s *session) Mail(_ string, opts *smtp.MailOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tx != nil {
		// RFC 5321 §4.1.4: MAIL inside a transaction is out of sequence.
		return smtpError(503, smtp.EnhancedCode{5, 5, 1}, "Nested MAIL command")
	}
	if s.srv.submission && s.user == "" {
		// RFC 6409 §4.3 (submission needs authentication), RFC 4954 §6.
		return smtpError(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	}
	if err := s.dnsblRefusal(); err != nil {
		return err
	}
	if err := s.messageRefusal(false); err != nil {
		return err
	}
	if opts.RequireTLS && !s.conn.isTLS() {
		// RFC 8689 §4: REQUIRETLS is only offered, and only valid, over TLS.
		return smtpError(530, smtp.EnhancedCode{5, 7, 10}, "REQUIRETLS needs a TLS session")
	}
	from, err := s.path("FROM:", opts.UTF8)
	if err != nil {
		return err
	}
	r, err := s.srv.users.Load()
	if err != nil {
		s.srv.logf("error conn=%s what=%s error=%q", s.conn.info.id, logValue("reading users and aliases"), err)
		return errTempLocal
	}
	if s.user != "" && !owns(r, s.userAddr, from) {
		s.srv.logf("refused conn=%s client=%s user=%s from=%s reason=sender-not-owned",
			s.conn.info.id, s.conn.info.client, logValue(s.user), logValue("<"+from.String()+">"))
		return smtpError(553, smtp.EnhancedCode{5, 7, 1}, "Sender address <%s> is not yours (%s)", from, s.user)
	}
	s.tx = &transaction{from: from, opts: *opts, helo: s.sc.Hostname(), resolver: r, seen: map[string]bool{}}
	return nil
}

// path parses the path of the MAIL or RCPT command being run from the raw
// command line, so that quoting and source routes are read by package
// address and not by go-smtp (see pathArg).
func (s *session) path(prefix string, utf8 bool) (address.Address, error) {
	enh := smtp.EnhancedCode{5, 1, 7} // RFC 3463: bad sender's address syntax
	if prefix == "TO:" {
		enh = smtp.EnhancedCode{5, 1, 3} // bad destination address syntax
	}
	raw, ok := pathArg(s.conn.lastArg, prefix)
	if !ok {
		return address.Address{}, smtpError(501, smtp.EnhancedCode{5, 5, 4}, "Syntax: %s<address>", prefix)
	}
	if !utf8 && !isASCII(raw) {
		// RFC 6531 §3.4: non-ASCII addresses only with SMTPUTF8.
		return address.Address{}, smtpError(553, smtp.EnhancedCode{5, 6, 7}, "Non-ASCII address needs SMTPUTF8")
	}
	a, err := address.ParsePath(raw)
	if err != nil {
		return address.Address{}, smtpError(553, enh, "Bad address syntax: %s", strings.TrimPrefix(err.Error(), "address: "))
	}
	return a, nil
}

// recipient returns the recipient of the RCPT command being run: its path,
// or for "<Postmaster>" (RFC 5321 §4.1.1.3) postmaster@ the domain
// postmasterDomain picks, which is local, so that it is never relayed.
func (s *session) recipient(tx *transaction) (address.Address, error) {
	if raw, ok := pathArg(s.conn.lastArg, "TO:"); !ok || !address.IsBarePostmaster(raw) {
		return s.path("TO:", tx.opts.UTF8)
	}
	domain, err := postmasterDomain(s.srv.root, s.srv.hostname, tx.resolver)
	if err != nil {
		s.srv.logf("error conn=%s what=%s error=%q", s.conn.info.id, logValue("choosing the postmaster's domain"), err)
		return address.Address{}, errTempLocal
	}
	if domain == "" {
		return address.Address{}, smtpError(550, smtp.EnhancedCode{5, 1, 1}, "No postmaster here: no local domain")
	}
	to, err := address.Parse("postmaster@" + domain)
	if err != nil {
		s.srv.logf("error conn=%s what=%s error=%q", s.conn.info.id, logValue("choosing the postmaster's domain"), err)
		return address.Address{}, errTempLocal
	}
	return to, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// owns reports whether user may send as from: it is the user's own address,
// one of its subaddresses, or an alias (or catch-all) that delivers to the
// user.
func owns(r *resolve.Resolver, user, from address.Address) bool {
	if user.IsZero() || from.IsZero() {
		return false
	}
	if from.Key() == user.Key() {
		return true
	}
	targets, err := r.Resolve(from)
	if err != nil {
		return false
	}
	for _, t := range targets {
		if t.Kind == resolve.Local && t.Address.Key() == user.Key() {
			return true
		}
	}
	return false
}

func (s *session) Rcpt(_ string, opts *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.tx
	if tx == nil {
		return smtpError(503, smtp.EnhancedCode{5, 5, 1}, "MAIL first")
	}
	to, err := s.recipient(tx)
	if err != nil {
		return err
	}
	if to.IsZero() {
		return smtpError(553, smtp.EnhancedCode{5, 1, 3}, "The null path is no recipient")
	}
	if tx.resolver.IsLocalDomain(to.Domain) {
		_, err := tx.resolver.Resolve(to)
		switch {
		case errors.Is(err, resolve.ErrUnknownUser):
			return smtpError(550, smtp.EnhancedCode{5, 1, 1}, "No such user <%s>", to)
		case errors.Is(err, resolve.ErrAliasLoop):
			s.srv.logf("error conn=%s rcpt=%s error=%q", s.conn.info.id, logValue("<"+to.String()+">"), err)
			return smtpError(550, smtp.EnhancedCode{5, 4, 6}, "Alias loop for <%s>", to)
		case err != nil:
			s.srv.logf("error conn=%s rcpt=%s error=%q", s.conn.info.id, logValue("<"+to.String()+">"), err)
			return errTempLocal
		}
	} else if !s.relay && s.user == "" {
		// Not ours, and the client may not relay: address literals, and
		// anything whose domain is not a local one however it is spelled,
		// end here.
		s.srv.logf("refused conn=%s client=%s rcpt=%s reason=relay-denied",
			s.conn.info.id, s.conn.info.client, logValue("<"+to.String()+">"))
		return smtpError(554, smtp.EnhancedCode{5, 7, 1}, "Relaying denied for <%s>", to)
	}
	if tx.seen[to.String()] {
		return nil
	}
	tx.seen[to.String()] = true
	rcpt := spool.Recipient{Address: to.String()}
	if len(opts.Notify) > 0 {
		n := make([]string, len(opts.Notify))
		for i, v := range opts.Notify {
			n[i] = strings.ToUpper(string(v))
		}
		rcpt.Notify = strings.Join(n, ",")
	}
	if opts.OriginalRecipient != "" {
		rcpt.ORCPT = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
	}
	tx.rcpts = append(tx.rcpts, rcpt)
	return nil
}

func (s *session) Reset() {
	s.mu.Lock()
	s.tx = nil
	s.mu.Unlock()
}

func (s *session) Logout() error { return nil }

// relayClient reports whether the client's address is in etc/relay-clients,
// which is read at every session so that changes apply at once. Lines that
// are neither an IP address nor a CIDR prefix are logged and skipped.
func (s *Server) relayClient(info *connInfo) bool {
	if !info.ip.IsValid() {
		return false
	}
	lines, err := s.etc.Lines("relay-clients")
	if err != nil {
		s.logf("error conn=%s what=%s error=%q", info.id, logValue("reading relay-clients"), err)
		return false
	}
	prefixes, bad := parseRelayClients(lines)
	for _, b := range bad {
		s.logf("error file=%s value=%s error=%q", logValue(s.root.Etc("relay-clients")), logValue(b), "is neither an IP address nor a CIDR prefix; skipped")
	}
	for _, p := range prefixes {
		if p.Contains(info.ip) {
			return true
		}
	}
	return false
}

// parseRelayClients parses the lines of etc/relay-clients: IP addresses
// ("127.0.0.1", "::1") and CIDR prefixes ("192.0.2.0/24"). IPv4-mapped IPv6
// forms are unmapped, as client addresses are.
func parseRelayClients(lines []string) (prefixes []netip.Prefix, bad []string) {
	for _, l := range lines {
		if p, err := netip.ParsePrefix(l); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			prefixes = append(prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(l); err == nil {
			a = a.Unmap()
			prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad = append(bad, l)
	}
	return prefixes, bad
}
