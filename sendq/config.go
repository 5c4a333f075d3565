// Package sendq is what the sendq command does besides running the queue:
// it reads sendq's control files into a queue.Config, and implements the
// operator's commands on the spool (list, stats, show, flush, rm, hold,
// release), which work whether or not a queue runner is running.
//
// Control files (ROOT/etc/NAME; a missing file means the default):
//
//	retry-min                    5m   delay before the first retry
//	retry-max                    4h   longest delay between retries
//	queue-lifetime               5d   then a temporary failure bounces
//	delay-warning                4h   delay DSN after this long; 0: never
//	concurrency                  20   deliveries in parallel
//	concurrency-per-destination  5    deliveries in parallel to one destination
//	timeout-connect              30s  TCP connect and TLS handshake
//	timeout-command              5m   each SMTP reply (RFC 5321 §4.5.3.2)
//	timeout-data-block           3m   each write of message data
//	timeout-data-end             10m  the reply to the final dot
//	smtp-port                    25   TCP port of MX hosts (for tests)
//	dns                          -    resolver address; else /etc/resolv.conf's,
//	                                  else 127.0.0.1
//	routes                       -    per-domain relay hosts (package routes)
//	hostname                     -    EHLO name and DSN Reporting-MTA
//	tls-roots.pem                -    PEM CA certificates trusted instead of
//	                                  the system's for MX hosts (MTA-STS,
//	                                  REQUIRETLS) and MTA-STS policy servers
//	mta-sts-port                 443  HTTPS port of MTA-STS policy servers
//	                                  (for tests)
//
// DKIM keys are under etc/dkim/DOMAIN/ (package dkimsign); MTA-STS policies
// are cached in ROOT/cache/mta-sts/ (package mtasts).
//
// Durations are Go durations ("90s", "5m", "1h30m"), a number of days
// ("5d"), or a bare number of seconds.
package sendq

import (
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/queue"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/routes"
)

// Overrides are the command-line flags that take precedence over control
// files; zero values mean "not given".
type Overrides struct {
	Hostname string
	DNS      string // resolver address, --dns
}

// ResolvConf is where the system's name servers are listed.
const ResolvConf = "/etc/resolv.conf"

// LoadConfig reads root's control files into a queue.Config (Logf is left
// for the caller).
func LoadConfig(root control.Root, o Overrides) (queue.Config, error) {
	cfg := queue.Config{Root: root}
	var err error
	if cfg.Hostname, err = root.Hostname(o.Hostname); err != nil {
		return cfg, err
	}
	durations := []struct {
		name string
		def  time.Duration
		p    *time.Duration
	}{
		{"retry-min", queue.DefaultRetryMin, &cfg.RetryMin},
		{"retry-max", queue.DefaultRetryMax, &cfg.RetryMax},
		{"queue-lifetime", queue.DefaultLifetime, &cfg.Lifetime},
		{"delay-warning", queue.DefaultDelayWarning, &cfg.DelayWarning},
	}
	t := remote.DefaultTimeouts
	durations = append(durations, []struct {
		name string
		def  time.Duration
		p    *time.Duration
	}{
		{"timeout-connect", t.Connect, &t.Connect},
		{"timeout-command", t.Command, &t.Command},
		{"timeout-data-block", t.DataBlock, &t.DataBlock},
		{"timeout-data-end", t.DataEnd, &t.DataEnd},
	}...)
	for _, d := range durations {
		if *d.p, err = Duration(root, d.name, d.def); err != nil {
			return cfg, err
		}
	}
	ints := []struct {
		name string
		def  int64
		p    *int
	}{
		{"concurrency", queue.DefaultConcurrency, &cfg.Concurrency},
		{"concurrency-per-destination", queue.DefaultPerDestination, &cfg.PerDestination},
	}
	for _, n := range ints {
		v, err := root.Int(n.name, n.def)
		if err != nil {
			return cfg, err
		}
		if v < 1 || v > 10000 {
			return cfg, fmt.Errorf("sendq: %s: %d is not between 1 and 10000", root.Etc(n.name), v)
		}
		*n.p = int(v)
	}
	port, err := root.Int("smtp-port", 25)
	if err != nil {
		return cfg, err
	}
	if port < 1 || port > 65535 {
		return cfg, fmt.Errorf("sendq: %s: %d is not a port", root.Etc("smtp-port"), port)
	}
	if cfg.Routes, err = routes.Load(root); err != nil {
		return cfg, err
	}
	res, err := Resolver(root, o.DNS)
	if err != nil {
		return cfg, err
	}
	roots, err := Roots(root)
	if err != nil {
		return cfg, err
	}
	stsPort, err := root.Int("mta-sts-port", 443)
	if err != nil {
		return cfg, err
	}
	if stsPort < 1 || stsPort > 65535 {
		return cfg, fmt.Errorf("sendq: %s: %d is not a port", root.Etc("mta-sts-port"), stsPort)
	}
	sts := &mtasts.Fetcher{
		Resolver: dnsquery.New(res),
		CacheDir: mtasts.CacheDir(root),
		RootCAs:  roots,
		Port:     int(stsPort),
		Timeout:  min(t.Connect, mtasts.DefaultTimeout),
	}
	cfg.Remote = &remote.Client{Hostname: cfg.Hostname, Resolver: res, Port: int(port), Timeouts: t, RootCAs: roots, MTASTS: sts}
	return cfg, nil
}

// Resolver returns the DNS resolver sendq uses (dnsquery.Configured).
func Resolver(root control.Root, dnsFlag string) (*mx.Resolver, error) {
	return dnsquery.Configured(root, dnsFlag, ResolvConf)
}

// Roots reads etc/tls-roots.pem (mtasts.Roots).
func Roots(root control.Root) (*x509.CertPool, error) { return mtasts.Roots(root) }

// Duration reads a duration control file (see the package documentation).
func Duration(root control.Root, name string, def time.Duration) (time.Duration, error) {
	s, err := root.String(name, "")
	if err != nil || s == "" {
		return def, err
	}
	d, err := ParseDuration(s)
	if err != nil {
		return def, fmt.Errorf("sendq: %s: %w", root.Etc(name), err)
	}
	return d, nil
}

// ParseDuration parses "90s", "5m", "1h30m", "5d" or "300" (seconds).
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n < 1<<33 {
		return time.Duration(n) * time.Second, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil && n >= 0 && n < 1<<17 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (like 90s, 5m, 4h, 5d, or seconds)", s)
	}
	return d, nil
}
