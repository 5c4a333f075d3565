package domaincheck

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"

	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/mx"
)

// Finding is the outcome of one check.
type Finding struct {
	Check string // mx, address, ptr, spf, dkim, dmarc, mta-sts, tls, dnsbl
	OK    bool
	Text  string // what was found
	Fix   string // for a problem: what to do
}

// CertWarning is how long before its expiry a certificate is reported.
const CertWarning = 14 * 24 * time.Hour

// Check runs every check and returns the findings in a fixed order.
func Check(ctx context.Context, cfg *Config) []Finding {
	c := &checker{cfg: cfg}
	c.mx(ctx)
	addrs := c.addresses(ctx)
	c.ptr(ctx, addrs)
	c.spf(ctx, addrs)
	c.dkim(ctx)
	c.dmarc(ctx)
	c.mtaSTS(ctx)
	c.tls()
	c.dnsbl(ctx, addrs)
	return c.out
}

type checker struct {
	cfg *Config
	out []Finding
}

func (c *checker) ok(check, format string, args ...any) {
	c.out = append(c.out, Finding{Check: check, OK: true, Text: fmt.Sprintf(format, args...)})
}

func (c *checker) fail(check, fix, format string, args ...any) {
	c.out = append(c.out, Finding{Check: check, Text: fmt.Sprintf(format, args...), Fix: fix})
}

// publish is the fix "publish RECORD".
func publish(r Record) string { return "publish  " + r.String() }

func (c *checker) mx(ctx context.Context) {
	d, host := c.cfg.Domain, c.cfg.Hostname
	want := Record{Name: d, Type: "MX", Value: "10 " + host + "."}
	hosts, err := c.cfg.Resolver.Hosts(ctx, d)
	switch {
	case errors.Is(err, mx.ErrNullMX):
		c.fail("mx", "replace it:  "+want.String(), "%s publishes a null MX (RFC 7505): it says it takes no mail", d)
		return
	case err != nil && !mx.Permanent(err):
		c.fail("mx", "check the DNS server (--dns)", "could not look up the MX records of %s: %v", d, err)
		return
	case err != nil:
		c.fail("mx", publish(want), "%s has no MX record: %v", d, err)
		return
	case hosts[0].Implicit:
		c.fail("mx", publish(want), "%s has no MX record (senders fall back to its own address)", d)
		return
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	if !slices.Contains(names, host) {
		c.fail("mx", publish(want)+"  (or give this server's name with --hostname)", "the MX hosts of %s are %s, not this server (%s)", d, strings.Join(names, ", "), host)
		return
	}
	c.ok("mx", "the MX hosts of %s are %s", d, strings.Join(names, ", "))
}

// addresses checks that the server's name has its addresses and returns
// them.
func (c *checker) addresses(ctx context.Context) []netip.Addr {
	host := c.cfg.Hostname
	found, err := c.cfg.Resolver.Addrs(ctx, host)
	if len(c.cfg.Addrs) == 0 {
		if err != nil {
			c.fail("address", "publish  "+host+". A (and AAAA) records with the server's addresses", "%s has no address in DNS: %v", host, err)
			return nil
		}
		c.ok("address", "%s has the addresses %s", host, joinAddrs(found))
		return found
	}
	for _, a := range c.cfg.Addrs {
		if !slices.Contains(found, a) {
			typ := "A"
			if a.Is6() {
				typ = "AAAA"
			}
			c.fail("address", publish(Record{Name: host, Type: typ, Value: a.String()}), "%s does not have the address %s in DNS (it has %s)", host, a, joinAddrs(found))
			continue
		}
		c.ok("address", "%s has the address %s", host, a)
	}
	return c.cfg.Addrs
}

func joinAddrs(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "none"
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

func (c *checker) ptr(ctx context.Context, addrs []netip.Addr) {
	host := c.cfg.Hostname
	for _, a := range addrs {
		rev, _ := dns.ReverseAddr(a.String())
		fix := fmt.Sprintf("ask the provider of %s for the record  %s", a, Record{Name: strings.TrimSuffix(rev, "."), Type: "PTR", Value: host + "."})
		names, err := c.cfg.Resolver.PTR(ctx, a)
		switch {
		case err != nil || len(names) == 0:
			c.fail("ptr", fix, "%s has no PTR record (many receivers refuse mail from such addresses)", a)
		case !slices.Contains(names, host):
			c.fail("ptr", fix, "the PTR record of %s names %s, not %s", a, strings.Join(names, ", "), host)
		default:
			c.ok("ptr", "%s is %s", a, host)
		}
	}
}

func (c *checker) spf(ctx context.Context, addrs []netip.Addr) {
	d := c.cfg.Domain
	want := Record{Name: d, Type: "TXT", Value: quoteTXT(SPF)}
	txts, err := c.cfg.Resolver.TXT(ctx, d)
	if err != nil && !mx.Permanent(err) {
		c.fail("spf", "check the DNS server (--dns)", "could not look up the SPF record of %s: %v", d, err)
		return
	}
	var records []string
	for _, t := range txts {
		if strings.EqualFold(t, "v=spf1") || len(t) > 7 && strings.EqualFold(t[:7], "v=spf1 ") {
			records = append(records, t)
		}
	}
	switch len(records) {
	case 0:
		c.fail("spf", publish(want), "%s has no SPF record: receivers cannot tell its mail from forgeries", d)
		return
	case 1:
	default:
		// RFC 7208 §4.5: more than one record is a permanent error.
		c.fail("spf", "merge them into one", "%s has %d SPF records (RFC 7208 §4.5: that is an error)", d, len(records))
		return
	}
	for _, a := range addrs {
		res, err := spf.CheckHostWithSender(net.IP(a.AsSlice()), c.cfg.Hostname, "postmaster@"+d,
			spf.WithResolver(spfResolver{c.cfg.Resolver}), spf.WithContext(ctx))
		if res != spf.Pass {
			why := ""
			if err != nil {
				why = " (" + err.Error() + ")"
			}
			c.fail("spf", fmt.Sprintf("let the record allow %s, for example  %s", a, want), "the SPF record of %s (%q) gives %s for this server's address %s%s", d, records[0], res, a, why)
			continue
		}
		c.ok("spf", "the SPF record of %s allows %s", d, a)
	}
	if len(addrs) == 0 {
		c.ok("spf", "%s has an SPF record: %s", d, records[0])
	}
}

// spfResolver lets package spf look up through dnsquery, with the errors it
// expects: *net.DNSError, IsNotFound for names without records.
type spfResolver struct{ r *dnsquery.Resolver }

func spfErr(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case mx.Permanent(err):
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, err := s.r.TXT(ctx, name)
	return txt, spfErr(name, err)
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := s.r.Query(ctx, name, dns.TypeMX)
	var out []*net.MX
	for _, rr := range rrs {
		m := rr.(*dns.MX)
		out = append(out, &net.MX{Host: m.Mx, Pref: m.Preference})
	}
	return out, spfErr(name, err)
}

func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	addrs, err := s.r.Addrs(ctx, host)
	var out []net.IPAddr
	for _, a := range addrs {
		out = append(out, net.IPAddr{IP: net.IP(a.AsSlice())})
	}
	return out, spfErr(host, err)
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr}
	}
	names, err := s.r.PTR(ctx, a)
	for i := range names {
		names[i] += "."
	}
	return names, spfErr(addr, err)
}

func (c *checker) dkim(ctx context.Context) {
	d := c.cfg.Domain
	keys, err := dkimsign.Load(c.cfg.Root, d)
	if err != nil {
		c.fail("dkim", "fix or remove the key file, then run mkuser domain dkim-keygen "+d, "%v", err)
		return
	}
	if len(keys) == 0 {
		c.fail("dkim", "run  mkuser domain dkim-keygen "+d+"  and publish the records mkuser domain dns "+d+" prints", "%s has no DKIM keys: its mail goes out unsigned", d)
		return
	}
	for _, k := range keys {
		want := Record{Name: k.RecordName(), Type: "TXT", Value: quoteTXT(k.Record())}
		txts, err := c.cfg.Resolver.TXT(ctx, k.RecordName())
		if err != nil && !mx.Permanent(err) {
			c.fail("dkim", "check the DNS server (--dns)", "could not look up %s: %v", k.RecordName(), err)
			continue
		}
		var found []dkimsign.Record
		var bad []string
		for _, t := range txts {
			r, err := dkimsign.ParseRecord(t)
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			found = append(found, r)
		}
		switch {
		case len(found) == 0 && len(bad) == 0:
			c.fail("dkim", publish(want), "no DKIM record at %s for the %s key: signatures with it cannot be checked", k.RecordName(), k.Algorithm)
		case len(found) == 0:
			c.fail("dkim", "replace it:  "+want.String(), "the DKIM record at %s is malformed: %s", k.RecordName(), strings.Join(bad, "; "))
		case len(found) > 1 || len(bad) > 0:
			c.fail("dkim", "keep only:  "+want.String(), "%s has %d TXT records; a verifier needs exactly one", k.RecordName(), len(txts))
		case !found[0].Matches(k):
			c.fail("dkim", "replace it:  "+want.String(), "the DKIM record at %s holds another key than %s: signatures with it fail", k.RecordName(), k.Path)
		default:
			c.ok("dkim", "%s publishes the %s key", k.RecordName(), k.Algorithm)
		}
	}
}

func (c *checker) dmarc(ctx context.Context) {
	name := "_dmarc." + c.cfg.Domain
	want := Record{Name: name, Type: "TXT", Value: quoteTXT(DMARC)}
	txts, err := c.cfg.Resolver.TXT(ctx, name)
	if err != nil && !mx.Permanent(err) {
		c.fail("dmarc", "check the DNS server (--dns)", "could not look up %s: %v", name, err)
		return
	}
	var records []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=DMARC1") {
			records = append(records, t)
		}
	}
	if len(records) != 1 {
		c.fail("dmarc", publish(want), "%s has %d DMARC records, want 1: receivers do not know what to do with mail that fails SPF and DKIM", name, len(records))
		return
	}
	r, err := dmarc.Parse(records[0])
	if err != nil {
		c.fail("dmarc", "replace it:  "+want.String(), "the DMARC record %q is malformed: %v", records[0], err)
		return
	}
	c.ok("dmarc", "%s says p=%s", name, r.Policy)
}

func (c *checker) mtaSTS(ctx context.Context) {
	d, host := c.cfg.Domain, c.cfg.Hostname
	txts, err := c.cfg.Resolver.TXT(ctx, "_mta-sts."+d)
	if (err != nil && mx.Permanent(err)) || err == nil && len(txts) == 0 {
		c.ok("mta-sts", "%s publishes no MTA-STS policy (optional; see mkuser domain dns)", d)
		return
	}
	if err != nil {
		c.fail("mta-sts", "check the DNS server (--dns)", "could not look up _mta-sts.%s: %v", d, err)
		return
	}
	id, err := mtasts.RecordID(txts)
	if err != nil {
		c.fail("mta-sts", `publish one record:  _mta-sts.`+d+`. TXT "v=STSv1; id=ID"`, "the _mta-sts.%s record is not usable: %v", d, err)
		return
	}
	f := &mtasts.Fetcher{Resolver: c.cfg.Resolver, RootCAs: c.cfg.RootCAs, Port: c.cfg.MTASTSPort, Timeout: 20 * time.Second}
	_, p, err := f.Fetch(ctx, d)
	switch {
	case err != nil:
		c.fail("mta-sts", "serve the policy at https://mta-sts."+d+"/.well-known/mta-sts.txt with a certificate for mta-sts."+d, "policy %s of %s cannot be fetched: %v", id, d, err)
	case p.Mode != mtasts.None && !p.Match(host):
		c.fail("mta-sts", "add the line  mx: "+host+"  to the policy and change the id of _mta-sts."+d, "the MTA-STS policy of %s (%s) does not allow this server %s: senders that enforce it will not deliver", d, p, host)
	default:
		c.ok("mta-sts", "the MTA-STS policy %s of %s is %s", id, d, p)
	}
}

func (c *checker) tls() {
	host := c.cfg.Hostname
	path := c.cfg.Root.Etc("tls/cert.pem")
	getOne := "get a certificate for " + host + " (ACME, Let's Encrypt) and install it as " + path + " with its key in " + c.cfg.Root.Etc("tls/key.pem")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.fail("tls", getOne, "there is no certificate: STARTTLS is not offered")
		return
	}
	if err != nil {
		c.fail("tls", getOne, "%v", err)
		return
	}
	var chain []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			c.fail("tls", getOne, "%s: %v", path, err)
			return
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		c.fail("tls", getOne, "%s holds no PEM certificate", path)
		return
	}
	leaf, now := chain[0], c.cfg.Now
	problems := false
	if err := leaf.VerifyHostname(host); err != nil {
		c.fail("tls", getOne, "the certificate is not for %s: %v", host, err)
		problems = true
	}
	switch {
	case now.After(leaf.NotAfter):
		c.fail("tls", "renew it: "+getOne, "the certificate expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
		return
	case leaf.NotAfter.Sub(now) < CertWarning:
		c.fail("tls", "renew it now: "+getOne, "the certificate expires on %s, in %d days", leaf.NotAfter.UTC().Format(time.DateOnly), int(leaf.NotAfter.Sub(now).Hours()/24))
		problems = true
	case now.Before(leaf.NotBefore):
		c.fail("tls", "check the clock, or wait", "the certificate is valid only from %s", leaf.NotBefore.UTC().Format(time.DateOnly))
		return
	}
	opts := x509.VerifyOptions{Roots: c.cfg.RootCAs, Intermediates: x509.NewCertPool(), CurrentTime: now}
	for _, ic := range chain[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := leaf.Verify(opts); err != nil {
		c.fail("tls", getOne, "the certificate is not from a trusted CA (%v): senders that check (MTA-STS enforce, REQUIRETLS) will not deliver", err)
		return
	}
	if !problems {
		c.ok("tls", "the certificate is valid for %s until %s", host, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
}

func (c *checker) dnsbl(ctx context.Context, addrs []netip.Addr) {
	for _, a := range addrs {
		var clean []string
		for _, zone := range c.cfg.DNSBLs {
			name := dnsblName(a, zone)
			got, err := c.cfg.Resolver.A(ctx, name)
			switch {
			case err != nil && mx.Permanent(err), err == nil && len(got) == 0:
				clean = append(clean, zone)
			case err != nil:
				c.fail("dnsbl", "check the DNS server (--dns)", "could not ask %s about %s: %v", zone, a, err)
			case got[0].As4()[0] == 127 && got[0].As4()[1] == 255 && got[0].As4()[2] == 255:
				// Spamhaus's 127.255.255.x: the query itself was refused.
				c.fail("dnsbl", "ask through a resolver of your own (--dns, etc/dns), not a public one", "%s refused the query about %s (%s)", zone, a, got[0])
			default:
				c.fail("dnsbl", "find out why (an open relay, a hacked account, a previous user of the address), then ask "+zone+" to delist it on its web site",
					"%s is listed on %s (%s): many receivers refuse its mail", a, zone, joinAddrs(got))
			}
		}
		if len(clean) > 0 {
			c.ok("dnsbl", "%s is not listed on %s", a, strings.Join(clean, ", "))
		}
	}
}

// dnsblName is the name to ask zone about a: the address reversed, in
// octets for IPv4 and nibbles for IPv6 (RFC 5782 §2.1, §2.4).
func dnsblName(a netip.Addr, zone string) string {
	rev, _ := dns.ReverseAddr(a.Unmap().String())
	rev = strings.TrimSuffix(strings.TrimSuffix(rev, ".in-addr.arpa."), ".ip6.arpa.")
	return rev + "." + strings.TrimSuffix(zone, ".")
}
