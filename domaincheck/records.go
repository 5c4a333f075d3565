// Package domaincheck is what mkuser domain dns and mkuser domain check do:
// it says which DNS records a local domain needs for its mail to be
// delivered and trusted (MX, SPF, DKIM, DMARC, optionally MTA-STS, and the
// PTR record of the server's address), and checks them against DNS, along
// with the server's TLS certificate and whether its address is on DNS block
// lists.
//
// Every finding names what is wrong and how to fix it; Check's findings
// with OK false are problems, and mkuser exits 1 when there is one.
package domaincheck

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mtasts"
)

// DefaultDNSBLs are the block lists Check asks when etc/check-dnsbls does
// not exist: widely used ones that are free to query at low volume.
var DefaultDNSBLs = []string{"zen.spamhaus.org", "bl.spamcop.net", "psbl.surriel.com"}

// TTL is the time to live of the records Records proposes.
const TTL = 3600

// Config is what a check or a record list is about.
type Config struct {
	Root     control.Root
	Domain   string // normalised, local
	Hostname string // this server's name: the MX host and the EHLO name
	// Addrs are this server's public addresses; when empty, Hostname's
	// addresses in DNS.
	Addrs    []netip.Addr
	Resolver *dnsquery.Resolver
	// DNSBLs are the block list zones to ask.
	DNSBLs []string
	// RootCAs verifies the TLS certificate and MTA-STS policy servers
	// (the system's roots when nil); MTASTSPort is the policy servers'
	// port (443 when 0).
	RootCAs    *x509.CertPool
	MTASTSPort int
	Now        time.Time
}

// Record is one DNS record to publish.
type Record struct {
	Comment string // what it is for, one line
	Name    string // without the final dot
	Type    string // "MX", "TXT", "A", "AAAA", "PTR", "CNAME"
	Value   string // in zone file syntax: TXT values quoted
	// Optional records are printed commented out.
	Optional bool
}

// String is the record as a zone file line.
func (r Record) String() string {
	s := fmt.Sprintf("%s.\t%d\tIN\t%s\t%s", r.Name, TTL, r.Type, r.Value)
	if r.Optional {
		s = "; " + s
	}
	return s
}

// quoteTXT turns text into TXT character strings of at most 255 bytes
// (RFC 1035 §3.3.14), as a long DKIM key needs.
func quoteTXT(text string) string {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	for i, p := range parts {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	return strings.Join(parts, " ")
}

// SPF is the SPF record Records proposes: the domain's MX hosts send its
// mail, nothing else does (RFC 7208 §5.4, §5.1).
const SPF = "v=spf1 mx -all"

// DMARC is the DMARC record Records proposes (RFC 7489 §6.3): quarantine
// what fails both SPF and DKIM alignment.
const DMARC = "v=DMARC1; p=quarantine"

// addrs returns the server's addresses: cfg.Addrs, else Hostname's.
func (cfg *Config) addrs(ctx context.Context) ([]netip.Addr, error) {
	if len(cfg.Addrs) > 0 {
		return cfg.Addrs, nil
	}
	return cfg.Resolver.Addrs(ctx, cfg.Hostname)
}

// Records returns the records domain needs, in the order to publish them.
// Without known addresses (no --address and none in DNS) the address and
// PTR records are left out and the second result says so.
func Records(ctx context.Context, cfg *Config) ([]Record, []string, error) {
	d, host := cfg.Domain, cfg.Hostname
	var notes []string
	recs := []Record{
		{Comment: "MX: mail for " + d + " goes to this server", Name: d, Type: "MX", Value: "10 " + host + "."},
	}
	addrs, err := cfg.addrs(ctx)
	if err != nil {
		notes = append(notes, fmt.Sprintf("the addresses of %s are unknown (%v): give them with --address to get its A, AAAA and PTR records", host, err))
	}
	for _, a := range addrs {
		typ := "A"
		if a.Is6() && !a.Is4In6() {
			typ = "AAAA"
		}
		recs = append(recs, Record{Comment: "the server's address", Name: host, Type: typ, Value: a.Unmap().String()})
	}
	recs = append(recs, Record{Comment: "SPF (RFC 7208): only the MX hosts send mail for " + d, Name: d, Type: "TXT", Value: quoteTXT(SPF)})
	keys, err := dkimsign.Load(cfg.Root, d)
	if err != nil {
		return nil, nil, err
	}
	if len(keys) == 0 {
		notes = append(notes, "no DKIM keys: make them with mkuser domain dkim-keygen "+d+", then run this again")
	}
	for _, k := range keys {
		recs = append(recs, Record{Comment: "DKIM (RFC 6376), " + k.Algorithm + " key " + k.Path, Name: k.RecordName(), Type: "TXT", Value: quoteTXT(k.Record())})
	}
	recs = append(recs, Record{Comment: "DMARC (RFC 7489)", Name: "_dmarc." + d, Type: "TXT", Value: quoteTXT(DMARC)})
	policyID := cfg.Now.UTC().Format("20060102T150405")
	recs = append(recs,
		Record{Comment: "MTA-STS (RFC 8461), optional: serve https://mta-sts." + d + "/.well-known/mta-sts.txt (text/plain, a certificate for mta-sts." + d + ") holding: " +
			strings.ReplaceAll(Policy(host), "\n", `\n`) + "; change the id whenever the policy changes",
			Name: "_mta-sts." + d, Type: "TXT", Value: quoteTXT("v=STSv1; id=" + policyID), Optional: true},
		Record{Comment: "MTA-STS policy host, optional", Name: "mta-sts." + d, Type: "CNAME", Value: host + ".", Optional: true},
	)
	for _, a := range addrs {
		rev, err := dns.ReverseAddr(a.Unmap().String())
		if err != nil {
			continue
		}
		recs = append(recs, Record{Comment: "PTR: ask the provider of " + a.Unmap().String() + " to publish it (receivers check that the address names " + host + ")",
			Name: strings.TrimSuffix(rev, "."), Type: "PTR", Value: host + "."})
	}
	return recs, notes, nil
}

// Policy is the MTA-STS policy Records proposes: testing mode first, to
// see in TLS reports that all is well before switching to enforce.
func Policy(host string) string {
	return "version: STSv1\nmode: testing\nmx: " + host + "\nmax_age: 604800\n"
}

// Load makes the Config for domain from root's control files and the
// flags: hostname (--hostname, else etc/hostname, else the system's name),
// addrs (--address), dnsFlag (--dns, else sendq's resolvers: etc/dns, else
// /etc/resolv.conf). The block lists are the lines of etc/check-dnsbls, else
// DefaultDNSBLs; the trusted CAs those of etc/tls-roots.pem, as for sendq.
func Load(root control.Root, domain, hostname string, addrs []string, dnsFlag string) (*Config, error) {
	cfg := &Config{Root: root, Domain: domain, Now: time.Now()}
	var err error
	if cfg.Hostname, err = root.Hostname(hostname); err != nil {
		return nil, err
	}
	cfg.Hostname = strings.ToLower(strings.TrimSuffix(cfg.Hostname, "."))
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("domaincheck: --address %q: %w", s, err)
		}
		cfg.Addrs = append(cfg.Addrs, a.Unmap())
	}
	res, err := dnsquery.Configured(root, dnsFlag, "/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	cfg.Resolver = dnsquery.New(res)
	if cfg.DNSBLs, err = root.Lines("check-dnsbls"); err != nil {
		return nil, err
	}
	if len(cfg.DNSBLs) == 0 {
		cfg.DNSBLs = DefaultDNSBLs
	}
	if cfg.RootCAs, err = mtasts.Roots(root); err != nil {
		return nil, err
	}
	port, err := root.Int("mta-sts-port", 443)
	if err != nil {
		return nil, err
	}
	cfg.MTASTSPort = int(port)
	return cfg, nil
}
