// Package mx finds the hosts that receive mail for a domain, the way RFC 5321
// §5.1 describes: its MX records in order of preference (shuffled among equal
// preferences), or the domain itself (the implicit MX) when it has no MX
// records but an address; a null MX (RFC 7505) means the domain accepts no
// mail at all. It also looks up the IPv6 and IPv4 addresses of a host.
//
// Queries go with github.com/miekg/dns to the recursive resolvers named by
// a --dns flag or etc/dns, else to those of /etc/resolv.conf
// (dnsquery.Configured), so that temporary failures (SERVFAIL, timeouts: try
// again later) are told apart from answers (NXDOMAIN, no records: give up).
// NetResolver gives Go's own DNS client the same servers.
package mx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

var (
	// ErrNullMX is wrapped by the error for a domain that publishes a null
	// MX: it accepts no mail (RFC 7505 §3; reply 556 5.1.10).
	ErrNullMX = errors.New("mx: domain accepts no mail (null MX)")
	// ErrNotFound is wrapped by the errors for a name that does not exist
	// (NXDOMAIN) or has no address: a permanent failure.
	ErrNotFound = errors.New("mx: no such domain or host")
)

// Permanent reports whether err is an answer rather than a failure to get
// one: ErrNullMX or ErrNotFound. Everything else is worth a retry.
func Permanent(err error) bool {
	return errors.Is(err, ErrNullMX) || errors.Is(err, ErrNotFound)
}

// DefaultTimeout bounds one query to one server.
const DefaultTimeout = 5 * time.Second

// Resolver sends queries to recursive DNS resolvers.
type Resolver struct {
	Servers []string // host:port, tried in order
	Timeout time.Duration
}

// NewResolver returns a Resolver for the server at addr ("192.0.2.53",
// "[::1]:5353"; the port defaults to 53).
func NewResolver(addr string) *Resolver {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "53")
	}
	return &Resolver{Servers: []string{addr}, Timeout: DefaultTimeout}
}

// SystemResolver returns a Resolver for the name servers in resolvConf
// (normally /etc/resolv.conf).
func SystemResolver(resolvConf string) (*Resolver, error) {
	cfg, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("mx: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("mx: %s names no name server", resolvConf)
	}
	r := &Resolver{Timeout: DefaultTimeout}
	for _, s := range cfg.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cfg.Port))
	}
	return r, nil
}

// ResolvConf is where the system's name servers are listed.
const ResolvConf = "/etc/resolv.conf"

// NetResolver returns a *net.Resolver (Go's own DNS client) whose queries go
// to r's servers, for code that takes one, such as the SPF, DKIM and DMARC
// libraries: each connection it opens goes to the next server in turn (Go
// tries each query twice, with resolv.conf's timeout, 5s by default). Its
// errors are *net.DNSError,
// which tell NXDOMAIN (IsNotFound) from a failure (IsTemporary, IsTimeout).
// Names without a final dot may still get resolv.conf's search domains
// appended: pass fully qualified names.
func (r *Resolver) NetResolver() *net.Resolver {
	servers := r.Servers
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53"}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			server := servers[int(next.Add(1)-1)%len(servers)]
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, network, server)
		},
	}
}

// Host is one mail exchanger of a domain.
type Host struct {
	Name       string // without the trailing dot
	Preference int
	// Implicit is set when the domain has no MX records and Name is the
	// domain itself (RFC 5321 §5.1).
	Implicit bool
}

// Hosts returns the mail exchangers of domain (ASCII, A-labels), most
// preferred first, in random order among equal preferences. A domain with
// no MX records but an address is its own implicit MX.
func (r *Resolver) Hosts(ctx context.Context, domain string) ([]Host, error) {
	in, err := r.Exchange(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var hosts []Host
	null := false
	for _, rr := range in.Answer {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		if mx.Mx == "." {
			null = true
			continue
		}
		hosts = append(hosts, Host{Name: strings.TrimSuffix(strings.ToLower(mx.Mx), "."), Preference: int(mx.Preference)})
	}
	switch {
	case null && len(hosts) == 0:
		// RFC 7505 §3: a single MX with the root as exchange. A null MX
		// beside real ones is a misconfiguration; the real ones are used.
		return nil, fmt.Errorf("%w: %s", ErrNullMX, domain)
	case len(hosts) == 0:
		// RFC 5321 §5.1: no MX records, so the domain is its own MX if
		// it has an address.
		if _, err := r.Addrs(ctx, domain); err != nil {
			return nil, err
		}
		return []Host{{Name: domain, Implicit: true}}, nil
	}
	// §5.1: try in order of preference, and spread the load randomly
	// over hosts of equal preference.
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Preference < hosts[j].Preference })
	return hosts, nil
}

// Addrs returns the addresses of host: IPv6 first, then IPv4 (RFC 5321
// §5.1 lets the client try them all). An IP address is returned as is.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	var addrs []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		in, err := r.Exchange(ctx, host, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range in.Answer {
			switch rr := rr.(type) {
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok && qtype == dns.TypeAAAA {
					addrs = append(addrs, a)
				}
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok && qtype == dns.TypeA {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, err := range errs {
		if !Permanent(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %s has no IPv6 or IPv4 address", ErrNotFound, host)
}

// Exchange asks r's servers in turn, over UDP and again over TCP when the
// answer is truncated, until one answers: NOERROR (possibly with no records
// of the type), or NXDOMAIN, which wraps ErrNotFound. SERVFAIL, REFUSED and
// network errors move on to the next server; when none answers, the last
// failure is returned (temporary: not Permanent). Package dnsquery builds its
// TXT, PTR and A lookups on it.
func (r *Resolver) Exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if len(r.Servers) == 0 {
		return nil, errors.New("mx: no name server configured")
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var last error
	for _, server := range r.Servers {
		in, err := exchange(ctx, m, server, "udp", timeout)
		if err == nil && in.Truncated {
			in, err = exchange(ctx, m, server, "tcp", timeout)
		}
		if err != nil {
			last = fmt.Errorf("mx: %s %s at %s: %w", dns.TypeToString[qtype], name, server, err)
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
			return in, nil
		case dns.RcodeNameError:
			return nil, fmt.Errorf("%w: %s (NXDOMAIN)", ErrNotFound, name)
		}
		last = fmt.Errorf("mx: %s %s at %s: %s", dns.TypeToString[qtype], name, server, dns.RcodeToString[in.Rcode])
	}
	return nil, last
}

func exchange(ctx context.Context, m *dns.Msg, server, network string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	in, _, err := c.ExchangeContext(ctx, m, server)
	return in, err
}
