// Package remote sends one queued message to the recipients of one
// destination over SMTP: a domain's MX hosts (RFC 5321 §5.1, package mx), or
// the host that etc/routes names for it (package routes).
//
// One attempt carries all the recipients in one transaction and returns a
// result per recipient. Hosts are tried in order, each of their addresses
// (IPv6 first) in turn; the next host gets the recipients that are still
// open when a host cannot be reached, fails TLS, or answers 4xx to the
// greeting, EHLO, MAIL, RCPT or DATA. A 5xx answer is final for the
// recipients it concerns. After the end of data has been sent, a lost
// connection or a missing reply is not retried elsewhere: the host may have
// accepted the message, so the next try is left to the queue (the one case in
// which a recipient may get a message twice).
//
// TLS follows RFC 3207 and RFC 7435: STARTTLS whenever the server offers
// it, without checking its certificate (an unverified encrypted session
// beats plain text); plain text only when STARTTLS is not offered; a failed
// handshake moves on to the next host. A route may require a verified
// certificate or implicit TLS, and a message sent with REQUIRETLS (RFC 8689)
// goes only to hosts with a verified certificate that offer REQUIRETLS.
//
// MTA-STS (RFC 8461, package mtasts) applies to MX delivery, not to routes:
// when the destination domain has a policy in enforce mode, only the MX
// hosts that match its mx patterns are tried, each only with STARTTLS and a
// certificate valid for the MX host's name (§4); when none qualifies the
// recipients are deferred, and the reply says why. In testing mode delivery
// goes on as usual, and what enforce mode would have refused is reported in
// Report.Notes for the log.
//
// Every network operation has a deadline (RFC 5321 §4.5.3.2): connecting,
// each command's reply, each write of the message data, and the reply to
// the final dot.
//
// A Client reuses connections, as Postfix's connection cache does, to save
// the TCP, TLS and AUTH handshakes per message. After a transaction whose
// end of data the server answered, it sends RSET (RFC 5321 §4.1.1.5)
// instead of QUIT and, on 250, keeps the connection idle; the next
// delivery that suits it starts with MAIL. Connections are kept by
// destination (the domain, or the route), host and address, TLS state
// (encrypted, certificate verified under which roots) and AUTH identity: a
// connection opened for one domain never carries mail for another, even
// through the same MX host, because MTA-STS and the choice of hosts are
// per domain; a message that needs a verified certificate (REQUIRETLS, a
// route's or MTA-STS's required TLS) takes only a connection that has one;
// the checks of what the message needs (SIZE, SMTPUTF8, REQUIRETLS) run
// on a reused connection as on a new one. A connection carries at most 1
// + ConnCache.ReuseLimit transactions (100 reuses), waits at most
// ConnCache.IdleTime (2 s), at most ConnCache.MaxIdle (20) wait per key;
// Client.Close sends QUIT on those waiting. A cached connection that the
// server closed meanwhile (an I/O error or 421 in reply to MAIL) is dropped
// and the delivery goes on over a new connection to the same address, as
// if the cache had been empty.
package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/routes"
)

// Status is the outcome of a delivery attempt for one recipient.
type Status int

// The statuses of Result.
const (
	Delivered Status = iota + 1
	TempFail
	PermFail
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case TempFail:
		return "deferred"
	case PermFail:
		return "bounced"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Recipient is one envelope recipient with its DSN parameters (RFC 3461).
type Recipient struct {
	Address string
	Notify  string // "NEVER" or SUCCESS,FAILURE,DELAY; empty if not given
	ORCPT   string // "addr-type;address"; empty if not given
}

// Message is what one attempt sends.
type Message struct {
	From       string // empty for the null reverse-path
	Recipients []Recipient
	RequireTLS bool // RFC 8689
	SMTPUTF8   bool // RFC 6531
	Ret, EnvID string
	// Open returns the message as stored (LF or CRLF line endings); it is
	// called once per transaction.
	Open func() (io.ReadSeekCloser, error)
	// Header is sent in front of the stored message: header fields that
	// sendq adds on the way out (DKIM-Signature), CRLF line endings.
	Header string
}

// Result is the outcome for one recipient.
type Result struct {
	Status Status
	// Reply is the server's reply ("250 2.0.0 Ok: queued") or what went
	// wrong ("connect to mx.example.org[192.0.2.1]:25: connection refused").
	Reply string
	// Code is the RFC 3463 status code for a DSN ("2.0.0", "4.4.1", "5.1.1").
	Code string
	// Relay is the host that gave the reply, "NAME[IP]:PORT", or "" when
	// none was reached.
	Relay string
	// DSN reports that the relay offered DSN (RFC 3461) and received the
	// recipient's NOTIFY and ORCPT, so that it, not we, reports success.
	DSN bool
}

// Report is the outcome of one attempt.
type Report struct {
	Results []Result // one per Message.Recipients, in order
	// Connected reports whether an SMTP session was established with some
	// host; false means the destination could not be reached at all.
	Connected bool
	// Notes are things worth a log line that are no recipient's result:
	// MTA-STS policy problems and what a testing policy would refuse.
	Notes []string
	// Reused reports that a transaction went over a cached connection.
	Reused bool
}

// Timeouts bound every network operation; RFC 5321 §4.5.3.2 gives the
// defaults.
type Timeouts struct {
	Connect   time.Duration // TCP connect and TLS handshake
	Command   time.Duration // the reply to the greeting and to each command
	DataBlock time.Duration // each write of message data
	DataEnd   time.Duration // the reply to the final dot
}

// DefaultTimeouts are RFC 5321 §4.5.3.2's values (5 minutes for the
// greeting, MAIL, RCPT and DATA replies, 3 minutes per data block, 10 minutes
// after the final dot) and 30 seconds to connect.
var DefaultTimeouts = Timeouts{
	Connect:   30 * time.Second,
	Command:   5 * time.Minute,
	DataBlock: 3 * time.Minute,
	DataEnd:   10 * time.Minute,
}

// Resolver finds MX hosts and addresses; *mx.Resolver is one.
type Resolver interface {
	Hosts(ctx context.Context, domain string) ([]mx.Host, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// Client sends messages. Its fields must not change while it is in use.
// It keeps connections for reuse: Close ends them.
type Client struct {
	Hostname string // for EHLO
	Resolver Resolver
	Port     int // of MX hosts; 0 means 25
	Timeouts Timeouts
	// RootCAs verifies MX certificates (system roots when nil).
	RootCAs *x509.CertPool
	// Dial connects to addr ("IP:PORT"); nil means net.Dialer with
	// Timeouts.Connect.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MTASTS gives the MTA-STS policies of destination domains; nil means
	// MTA-STS is not used.
	MTASTS PolicySource
	// Cache limits the reuse of connections.
	Cache ConnCache

	cache connCache
}

// PolicySource gives the MTA-STS policy of a domain; *mtasts.Fetcher is
// one.
type PolicySource interface {
	Policy(ctx context.Context, domain string) mtasts.Result
}

// host is one server to try.
type host struct {
	name  string // host name or IP address
	port  int
	route *routes.Route // nil for MX hosts
	// sts is the MTA-STS policy (enforce or testing) that applies to the
	// host, and stsDomain the domain whose policy it is.
	sts       *mtasts.Policy
	stsDomain string
	stsMatch  bool // the host matches the policy's mx patterns
}

// Deliver sends msg to its recipients, all of the destination domain (or
// of route, when not nil), and reports on each.
func (c *Client) Deliver(ctx context.Context, domain string, route *routes.Route, msg *Message) Report {
	rep := Report{Results: make([]Result, len(msg.Recipients))}
	open := make([]int, len(msg.Recipients))
	for i := range open {
		open[i] = i
	}
	hosts, err := c.hosts(ctx, domain, route)
	if err != nil {
		r := Result{Status: TempFail, Code: "4.4.3", Reply: err.Error()}
		switch {
		case errors.Is(err, mx.ErrNullMX):
			// RFC 7505 §4.1: bounce at once with 556 5.1.10.
			r = Result{Status: PermFail, Code: "5.1.10", Reply: "556 5.1.10 " + err.Error()}
		case mx.Permanent(err):
			r = Result{Status: PermFail, Code: "5.1.2", Reply: err.Error()}
		}
		for i := range rep.Results {
			rep.Results[i] = r
		}
		return rep
	}
	last := Result{Status: TempFail, Code: "4.4.1", Reply: "no host to try"}
	if route == nil && c.MTASTS != nil && !strings.HasPrefix(domain, "[") {
		var refused *Result
		hosts, refused, rep.Notes = c.applyMTASTS(ctx, domain, hosts)
		if refused != nil {
			last = *refused
		}
	}
	// Only REQUIRETLS refusals, and no host that might have been able to
	// take the message: RFC 8689 §4.2.1 asks for a non-delivery report.
	onlyRequireTLS := true
	setLast := func(r Result) {
		last = r
		if r.Code != codeRequireTLS {
			onlyRequireTLS = false
		}
	}
	for _, h := range hosts {
		if len(open) == 0 {
			break
		}
		addrs, err := c.addrs(ctx, h.name)
		if err != nil {
			setLast(Result{Status: TempFail, Code: "4.4.3", Reply: err.Error()})
			continue
		}
		for _, a := range addrs {
			if len(open) == 0 || ctx.Err() != nil {
				break
			}
			relay := fmt.Sprintf("%s[%s]:%d", h.name, a, h.port)
			s := &session{c: c, h: h, domain: domain, relay: relay, msg: msg}
			outcomes, hostErr, reused := s.reuse(ctx, open)
			if !reused {
				conn, err := c.dial(ctx, netip.AddrPortFrom(a, uint16(h.port)).String())
				if err != nil {
					setLast(Result{Status: TempFail, Code: "4.4.1", Reply: fmt.Sprintf("connect to %s: %v", relay, err), Relay: relay})
					continue
				}
				s = &session{c: c, h: h, domain: domain, relay: relay, msg: msg}
				outcomes, hostErr = s.run(ctx, conn, open)
			}
			rep.Connected = true
			rep.Reused = rep.Reused || reused
			rep.Notes = append(rep.Notes, s.notes...)
			var next []int
			for _, i := range open {
				o, ok := outcomes[i]
				switch {
				case ok && !o.elsewhere:
					rep.Results[i] = o.Result
				case hostErr != nil && hostErr.Status == PermFail:
					rep.Results[i] = *hostErr
				default:
					if ok {
						setLast(o.Result)
					}
					next = append(next, i)
				}
			}
			if hostErr != nil && hostErr.Status == TempFail {
				setLast(*hostErr)
			}
			open = next
			if hostErr == nil || hostErr.Status == PermFail {
				// The host answered for every recipient, or refused
				// the transaction for good: its other addresses would
				// say the same.
				break
			}
		}
	}
	if onlyRequireTLS && last.Code == codeRequireTLS {
		last.Status = PermFail
		last.Reply = "550 5.7.30 " + last.Reply
	}
	for _, i := range open {
		rep.Results[i] = last
	}
	return rep
}

// codeRequireTLS is RFC 8689 §5's status for "REQUIRETLS support required".
const codeRequireTLS = "5.7.30"

// hosts lists the servers to try for domain.
func (c *Client) hosts(ctx context.Context, domain string, route *routes.Route) ([]host, error) {
	if route != nil {
		return []host{{name: route.Host, port: route.Port, route: route}}, nil
	}
	port := c.Port
	if port == 0 {
		port = 25
	}
	// An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") names the
	// host itself (RFC 5321 §4.1.3).
	if lit, ok := strings.CutPrefix(domain, "["); ok {
		lit = strings.TrimSuffix(lit, "]")
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			lit = v6
		}
		if _, err := netip.ParseAddr(lit); err != nil {
			return nil, fmt.Errorf("%w: %s is no address literal", mx.ErrNotFound, domain)
		}
		return []host{{name: lit, port: port}}, nil
	}
	if c.Resolver == nil {
		return nil, fmt.Errorf("remote: no DNS resolver to look up %s", domain)
	}
	mxs, err := c.Resolver.Hosts(ctx, domain)
	if err != nil {
		return nil, err
	}
	hosts := make([]host, len(mxs))
	for i, m := range mxs {
		hosts[i] = host{name: m.Name, port: port}
	}
	return hosts, nil
}

// applyMTASTS applies domain's MTA-STS policy, if any, to its MX hosts: in
// enforce mode it keeps those that match the policy (refused says why
// when none does); in testing mode it keeps them all and marks them, so
// that the session can report what enforce mode would refuse.
func (c *Client) applyMTASTS(ctx context.Context, domain string, hosts []host) (kept []host, refused *Result, notes []string) {
	res := c.MTASTS.Policy(ctx, domain)
	if res.Note != "" {
		notes = append(notes, fmt.Sprintf("MTA-STS policy of %s: %s", domain, res.Note))
	}
	p := res.Policy
	if p == nil {
		return hosts, nil, notes
	}
	var names []string
	for _, h := range hosts {
		h.sts, h.stsDomain, h.stsMatch = p, domain, p.Match(h.name)
		names = append(names, h.name)
		switch {
		case h.stsMatch || p.Mode != mtasts.Enforce:
			if !h.stsMatch {
				notes = append(notes, fmt.Sprintf("MTA-STS policy %s of %s (testing): MX host %s does not match %s; enforce mode would not deliver to it", res.ID, domain, h.name, strings.Join(p.MX, ",")))
			}
			kept = append(kept, h)
		}
	}
	if len(kept) == 0 {
		refused = &Result{Status: TempFail, Code: "4.7.5", Reply: fmt.Sprintf("MTA-STS policy %s of %s (enforce) allows MX hosts %s, and the domain's MX hosts are %s: not delivering",
			res.ID, domain, strings.Join(p.MX, ","), strings.Join(names, ","))}
	}
	return kept, refused, notes
}

// addrs returns the addresses of a host name, or the IP address itself.
func (c *Client) addrs(ctx context.Context, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, nil
	}
	if c.Resolver == nil {
		return nil, fmt.Errorf("remote: no DNS resolver to look up %s", name)
	}
	return c.Resolver.Addrs(ctx, name)
}

func (c *Client) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeouts().Connect)
	defer cancel()
	if c.Dial != nil {
		return c.Dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// timeouts fills in the defaults for zero fields.
func (c *Client) timeouts() Timeouts {
	t := c.Timeouts
	d := DefaultTimeouts
	for _, p := range []struct{ v, def *time.Duration }{{&t.Connect, &d.Connect}, {&t.Command, &d.Command}, {&t.DataBlock, &d.DataBlock}, {&t.DataEnd, &d.DataEnd}} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return t
}
