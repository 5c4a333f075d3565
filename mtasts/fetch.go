package mtasts

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/safefile"
)

// Resolver looks up the TXT record and the policy host's addresses;
// *dnsquery.Resolver is one.
type Resolver interface {
	TXT(ctx context.Context, name string) ([]string, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// DefaultTimeout bounds one policy fetch (RFC 8461 §3.3 suggests a short
// one, since the sender waits for it).
const DefaultTimeout = 30 * time.Second

// Fetcher finds the policies of destination domains.
type Fetcher struct {
	Resolver Resolver
	// CacheDir holds the cache files (CacheDir(root) for sendq).
	CacheDir string
	// RootCAs verifies policy servers (the system's roots when nil).
	RootCAs *x509.CertPool
	// Port is the HTTPS port of policy servers; 0 means 443.
	Port    int
	Timeout time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// CacheDir is the cache directory of root: ROOT/cache/mta-sts.
func CacheDir(root control.Root) string {
	return filepath.Join(string(root), "cache", "mta-sts")
}

// Roots reads ROOT/etc/tls-roots.pem: the CA certificates to trust instead
// of the system's when checking the certificates of MTA-STS policy servers
// and MX hosts (sendq) and of this server (mkuser domain check). nil (the
// system's roots) when the file is missing.
func Roots(root control.Root) (*x509.CertPool, error) {
	data, err := os.ReadFile(root.Etc("tls-roots.pem"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mtasts: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("mtasts: %s holds no PEM certificate", root.Etc("tls-roots.pem"))
	}
	return pool, nil
}

// Result is the policy in force for a domain.
type Result struct {
	// Policy is nil when the domain has none (or mode none).
	Policy *Policy
	// ID is the policy's id, from its TXT record.
	ID string
	// Fetched says the policy was fetched now, not taken from the cache.
	Fetched bool
	// Note says what went wrong on the way, for the log: a failed TXT
	// lookup or fetch. Empty when all went well.
	Note string
}

// Policy returns the policy in force for domain (see the package
// documentation for the rules). It never fails: what went wrong is in
// Result.Note, and the outcome is what RFC 8461 asks for in that case.
func (f *Fetcher) Policy(ctx context.Context, domain string) Result {
	d, err := address.ParseDomain(domain)
	if err != nil || address.IsLiteral(d) || control.SafeElement(d) != nil {
		return Result{}
	}
	now := f.now()
	cached, cacheErr := f.load(d, now)
	var notes []string
	if cacheErr != nil {
		notes = append(notes, cacheErr.Error())
	}
	txts, lookupErr := f.Resolver.TXT(ctx, "_mta-sts."+d)
	var id string
	var recordErr error
	if lookupErr == nil {
		id, recordErr = RecordID(txts)
	}
	if lookupErr != nil || recordErr != nil {
		if cached == nil {
			// No record is the usual case of a domain without
			// MTA-STS; a failed lookup is worth a note.
			if lookupErr != nil && !mx.Permanent(lookupErr) {
				return Result{Note: lookupErr.Error() + "; no cached policy: delivering as without MTA-STS"}
			}
			return Result{}
		}
		// §5.1: a cached policy stays in force until it expires, whatever
		// happens to the TXT record.
		return Result{Policy: cached.usable(), ID: cached.id, Note: strings.Join(notes, "; ")}
	}
	if cached != nil && cached.id == id {
		return Result{Policy: cached.usable(), ID: id, Note: strings.Join(notes, "; ")}
	}
	raw, p, err := f.Fetch(ctx, d)
	if err != nil {
		notes = append(notes, err.Error())
		if cached != nil {
			notes = append(notes, "using the cached policy "+cached.id)
			return Result{Policy: cached.usable(), ID: cached.id, Note: strings.Join(notes, "; ")}
		}
		notes = append(notes, "no cached policy: delivering as without MTA-STS")
		return Result{Note: strings.Join(notes, "; ")}
	}
	if err := f.store(d, id, now, raw); err != nil {
		notes = append(notes, err.Error())
	}
	c := &cacheEntry{id: id, policy: p}
	return Result{Policy: c.usable(), ID: id, Fetched: true, Note: strings.Join(notes, "; ")}
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Fetch gets and parses the policy of domain over HTTPS, without the cache
// (mkuser domain check uses it to see what senders see).
func (f *Fetcher) Fetch(ctx context.Context, domain string) ([]byte, *Policy, error) {
	host := "mta-sts." + domain
	port := f.Port
	if port == 0 {
		port = 443
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	transport := &http.Transport{
		// The policy host is looked up with sendq's resolvers, like
		// MX hosts; its certificate is checked for its name (§3.3).
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addrs, err := f.Resolver.Addrs(ctx, host)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			var last error
			for _, a := range addrs {
				c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
		TLSClientConfig:   &tls.Config{RootCAs: f.RootCAs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		// §3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := "https://" + host + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mtasts: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("mtasts: fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("mtasts: fetching %s: %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, nil, fmt.Errorf("mtasts: %s has media type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("mtasts: fetching %s: %w", url, err)
	}
	p, err := ParsePolicy(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (in %s)", err, url)
	}
	return raw, p, nil
}

// cacheEntry is a cached policy.
type cacheEntry struct {
	id      string
	fetched time.Time
	policy  *Policy
}

// usable is the policy to apply: nil for mode none.
func (c *cacheEntry) usable() *Policy {
	if c.policy.Mode == None {
		return nil
	}
	return c.policy
}

// load returns the cached policy of domain if it has not expired at now.
func (f *Fetcher) load(domain string, now time.Time) (*cacheEntry, error) {
	data, err := os.ReadFile(filepath.Join(f.CacheDir, domain))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mtasts: %w", err)
	}
	c, err := parseCache(data)
	if err != nil {
		return nil, fmt.Errorf("mtasts: cache file %s: %w", filepath.Join(f.CacheDir, domain), err)
	}
	if !now.Before(c.fetched.Add(c.policy.MaxAge)) {
		return nil, nil
	}
	return c, nil
}

// store writes the cache file of domain.
func (f *Fetcher) store(domain, id string, fetched time.Time, raw []byte) error {
	if err := os.MkdirAll(f.CacheDir, 0o700); err != nil {
		return fmt.Errorf("mtasts: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "id %s\nfetched %s\n\n", id, fetched.UTC().Format(time.RFC3339))
	b.Write(raw)
	if err := safefile.WriteFile(filepath.Join(f.CacheDir, domain), b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("mtasts: caching the policy of %s: %w", domain, err)
	}
	return nil
}

// parseCache parses a cache file (see the package documentation).
func parseCache(data []byte) (*cacheEntry, error) {
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, errors.New("no empty line after the header")
	}
	c := &cacheEntry{}
	for line := range strings.SplitSeq(string(head), "\n") {
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case "id":
			if _, err := ParseRecord("v=STSv1; id=" + value); err != nil {
				return nil, err
			}
			c.id = value
		case "fetched":
			t, err := time.Parse(time.RFC3339, value)
			if err != nil {
				return nil, fmt.Errorf("fetched: %w", err)
			}
			c.fetched = t
		default:
			return nil, fmt.Errorf("unknown line %q", line)
		}
	}
	if c.id == "" || c.fetched.IsZero() {
		return nil, errors.New("id or fetched missing")
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return nil, err
	}
	c.policy = p
	return c, nil
}

// String describes the policy for logs: "enforce mx=a,b max_age=86400".
func (p *Policy) String() string {
	return string(p.Mode) + " mx=" + strings.Join(p.MX, ",") + " max_age=" + strconv.Itoa(int(p.MaxAge.Seconds()))
}
