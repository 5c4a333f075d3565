// Package dnsbl looks client addresses up in DNS blocklists (RFC 5782).
// An IPv4 address 192.0.2.99 is listed in the zone bl.example when
// 99.2.0.192.bl.example has an address record in 127.0.0.0/8; an IPv6
// address is spelled as 32 reversed nibbles instead (§2.4). The TXT record
// of the same name, if any, says why (§2.1).
//
// Answers outside 127.0.0.0/8 mean the zone is not a blocklist (a
// wildcard, or a resolver that rewrites NXDOMAIN), and 127.255.255.0/24 is
// what large lists answer for queries they refuse (through a public
// resolver, say, or over quota): neither counts as a listing.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver is the DNS client; *net.Resolver is one (see
// mx.Resolver.NetResolver).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// DefaultTimeout bounds the lookups of one client address.
const DefaultTimeout = 20 * time.Second

// maxReason caps the reason taken from a TXT record.
const maxReason = 200

// Listing says that a client is listed in a zone.
type Listing struct {
	Zone   string
	Answer netip.Addr // the address the zone answered (the list's code)
	Reason string     // from the zone's TXT record: printable ASCII, or ""
}

// Checker looks addresses up in zones.
type Checker struct {
	Resolver Resolver
	Timeout  time.Duration // zero means DefaultTimeout
}

// Query returns the name to look up for ip in zone (RFC 5782 §2.1, §2.4),
// with a final dot.
func Query(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", a[i])
		}
	} else {
		a := ip.As16()
		const hex = "0123456789abcdef"
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	b.WriteByte('.')
	return b.String()
}

// ValidZone reports whether zone is a domain name usable as a blocklist
// zone: dot-separated labels of letters, digits, '-' and '_', at most 253
// octets.
func ValidZone(zone string) bool {
	zone = strings.TrimSuffix(zone, ".")
	if zone == "" || len(zone) > 253 {
		return false
	}
	for _, label := range strings.Split(zone, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Check looks ip up in every zone at once and returns the listing of the
// first zone, in the order given, that lists it; nil when none does. Zones
// that could not be asked are reported in err (errors.Join), alongside any
// listing: a list that fails never blocks anyone by itself.
func (c *Checker) Check(ctx context.Context, ip netip.Addr, zones []string) (*Listing, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		l   *Listing
		err error
	}
	answers := make([]chan answer, len(zones))
	for i, zone := range zones {
		answers[i] = make(chan answer, 1)
		go func() {
			l, err := c.lookup(ctx, ip, zone)
			answers[i] <- answer{l, err}
		}()
	}
	var first *Listing
	var errs []error
	for _, ch := range answers {
		a := <-ch
		if a.err != nil {
			errs = append(errs, a.err)
		}
		if first == nil {
			first = a.l
		}
	}
	return first, errors.Join(errs...)
}

// lookup asks one zone.
func (c *Checker) lookup(ctx context.Context, ip netip.Addr, zone string) (*Listing, error) {
	name := Query(ip, zone)
	addrs, err := c.Resolver.LookupNetIP(ctx, "ip4", name)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dnsbl: %s: %w", zone, err)
	}
	listed := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 0, 0, 0}), 8)
	refused := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 255, 255, 0}), 24)
	for _, a := range addrs {
		a = a.Unmap()
		if !listed.Contains(a) {
			continue
		}
		if refused.Contains(a) {
			return nil, fmt.Errorf("dnsbl: %s: query refused by the list (answer %s)", zone, a)
		}
		l := &Listing{Zone: strings.TrimSuffix(zone, "."), Answer: a}
		// A missing TXT record only means no reason is given.
		if txts, err := c.Resolver.LookupTXT(ctx, name); err == nil {
			l.Reason = printable(strings.Join(txts, " "))
		}
		return l, nil
	}
	return nil, nil
}

// printable keeps the printable ASCII of s, with runs of anything else as
// one space, at most maxReason octets: the reason goes into an SMTP reply.
func printable(s string) string {
	var b strings.Builder
	space := false
	for _, c := range s {
		if c <= ' ' || c >= 0x7f {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if b.Len() >= maxReason {
			break
		}
		b.WriteRune(c)
	}
	return b.String()
}
