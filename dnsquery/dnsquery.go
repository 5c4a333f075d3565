// Package dnsquery asks the recursive resolvers of an mx.Resolver for the
// records package mx does not look up: TXT (SPF, DKIM, DMARC, MTA-STS), PTR,
// and the A records of DNS block lists. Like package mx it tells an answer
// (a name without records: mx.ErrNotFound) from a failure to get one
// (SERVFAIL, a timeout: try again later).
package dnsquery

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/mx"
)

// Resolver is an mx.Resolver that also answers TXT and PTR questions.
type Resolver struct {
	*mx.Resolver
}

// Configured returns the resolver postkit's outgoing side uses: the one at
// dnsFlag (--dns) if given, else etc/dns's, else those of resolvConf
// (/etc/resolv.conf), else 127.0.0.1.
func Configured(root control.Root, dnsFlag, resolvConf string) (*mx.Resolver, error) {
	addr := dnsFlag
	if addr == "" {
		var err error
		if addr, err = root.String("dns", ""); err != nil {
			return nil, err
		}
	}
	if addr != "" {
		return mx.NewResolver(addr), nil
	}
	res, err := mx.SystemResolver(resolvConf)
	if err != nil {
		// resolv.conf(5): without name servers, the one on the local
		// machine is used.
		res = mx.NewResolver("127.0.0.1")
	}
	return res, nil
}

// New returns a Resolver asking the servers of r.
func New(r *mx.Resolver) *Resolver { return &Resolver{Resolver: r} }

// Query returns the answer records of type qtype for name, asked with
// mx.Resolver.Exchange. NXDOMAIN wraps mx.ErrNotFound; a name with no records
// of the type gives none and no error.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	in, err := r.Exchange(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out, nil
}

// TXT returns the TXT records of name, each one's strings joined (RFC 7208
// §3.3, RFC 6376 §3.6.2.2 read a record that way).
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// PTR returns the names (without the final dot) that the reverse zone
// gives for addr.
func (r *Resolver) PTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	name, err := dns.ReverseAddr(addr.String())
	if err != nil {
		return nil, fmt.Errorf("dnsquery: %w", err)
	}
	rrs, err := r.Query(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(strings.ToLower(rr.(*dns.PTR).Ptr), "."))
	}
	return out, nil
}

// A returns the IPv4 addresses of name, for DNS block list queries.
func (r *Resolver) A(ctx context.Context, name string) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.A).A.To4()); ok {
			out = append(out, a)
		}
	}
	return out, nil
}
