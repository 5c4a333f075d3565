// Package routes reads etc/routes, the per-domain overrides of sendq's
// remote delivery: instead of looking up the MX hosts of a domain, send its
// mail to a fixed host, or send all remote mail through a smarthost (the
// usual setup for a home server whose provider blocks outgoing port 25).
//
// # Format
//
// One route per line; blank lines and lines starting with '#' are ignored.
// Fields are separated by white space:
//
//	DOMAIN HOST[:PORT] [OPTION...]
//
// DOMAIN is a domain name (any case, UTF-8 or A-labels) or "*", the route
// for every domain without a route of its own. HOST is a host name, an IPv4
// address or a bracketed IPv6 address ("[2001:db8::1]:587"); PORT defaults
// to 25. HOST is looked up with A and AAAA queries, never MX. Options:
//
//	tls=may       STARTTLS when the host offers it, certificate not checked
//	              (the default, as for MX hosts)
//	tls=require   STARTTLS with a certificate valid for HOST, or no delivery
//	tls=implicit  TLS from the first byte (port 465), certificate checked
//	auth=FILE     log in with SMTP AUTH (PLAIN, else LOGIN); FILE holds the
//	              user name on its first line and the password on the second.
//	              auth implies tls=require unless tls=implicit is given:
//	              credentials never travel in the clear
//	ca=FILE       PEM certificates to trust for HOST instead of the system's
//	              roots (a self-signed smarthost, a private CA)
//
// A relative FILE is relative to ROOT/etc. Example:
//
//	# mail for the office goes straight to its server
//	office.example.org  mail.office.example.org:2525
//	# everything else through the provider's submission port
//	*  smtp.provider.example:587  auth=smarthost-auth  tls=require
package routes

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// TLSMode says how a route uses TLS.
type TLSMode int

// The TLS modes of a route; see the package documentation.
const (
	TLSMay TLSMode = iota
	TLSRequire
	TLSImplicit
)

var tlsModeNames = [...]string{TLSMay: "may", TLSRequire: "require", TLSImplicit: "implicit"}

func (m TLSMode) String() string {
	if m < 0 || int(m) >= len(tlsModeNames) {
		return "TLSMode(" + strconv.Itoa(int(m)) + ")"
	}
	return tlsModeNames[m]
}

// Default is the DOMAIN of the route that applies to every other domain.
const Default = "*"

// Route is one line of etc/routes.
type Route struct {
	Domain string // normalised domain, or Default
	Host   string // host name or IP address, without brackets
	Port   int
	TLS    TLSMode
	// AuthFile and CAFile are as written in the file (empty when not given).
	AuthFile, CAFile string

	// Filled in by Load from AuthFile and CAFile.
	Username, Password string
	RootCAs            *x509.CertPool
}

// Addr is HOST:PORT for net.Dial.
func (r *Route) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// String formats r as a line of etc/routes that parses back to r.
func (r *Route) String() string {
	var b strings.Builder
	b.WriteString(r.Domain)
	b.WriteByte(' ')
	b.WriteString(r.Addr())
	if r.TLS != TLSMay && !(r.TLS == TLSRequire && r.AuthFile != "") {
		b.WriteString(" tls=" + r.TLS.String())
	}
	if r.AuthFile != "" {
		b.WriteString(" auth=" + r.AuthFile)
	}
	if r.CAFile != "" {
		b.WriteString(" ca=" + r.CAFile)
	}
	return b.String()
}

// Table is the parsed etc/routes.
type Table struct {
	routes map[string]*Route
	lines  []*Route // in file order
}

// Lookup returns the route for domain (normalised, as in address.Address),
// or nil when its mail goes to its MX hosts.
func (t *Table) Lookup(domain string) *Route {
	if t == nil {
		return nil
	}
	if r, ok := t.routes[domain]; ok {
		return r
	}
	return t.routes[Default]
}

// Routes returns the routes in file order.
func (t *Table) Routes() []*Route {
	if t == nil {
		return nil
	}
	return t.lines
}

// Parse parses the contents of a routes file. Errors name the line.
func Parse(data string) (*Table, error) {
	t := &Table{routes: map[string]*Route{}}
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("routes: line %d: %w", i+1, err)
		}
		if _, dup := t.routes[r.Domain]; dup {
			return nil, fmt.Errorf("routes: line %d: a second route for %s", i+1, r.Domain)
		}
		t.routes[r.Domain] = r
		t.lines = append(t.lines, r)
	}
	return t, nil
}

func parseLine(line string) (*Route, error) {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return nil, fmt.Errorf("want %q, got %.60q", "DOMAIN HOST[:PORT] [OPTION...]", line)
	}
	r := &Route{Domain: Default, Port: 25}
	if fields[0] != Default {
		d, err := address.ParseDomain(fields[0])
		if err != nil || address.IsLiteral(d) {
			return nil, fmt.Errorf("%.60q is not a domain name", fields[0])
		}
		r.Domain = d
	}
	if err := r.parseHost(fields[1]); err != nil {
		return nil, err
	}
	tlsGiven := false
	for _, opt := range fields[2:] {
		key, value, ok := strings.Cut(opt, "=")
		if !ok || value == "" {
			return nil, fmt.Errorf("option %.60q: want KEY=VALUE", opt)
		}
		switch key {
		case "tls":
			if tlsGiven {
				return nil, errors.New("tls= given twice")
			}
			tlsGiven = true
			switch value {
			case "may":
				r.TLS = TLSMay
			case "require":
				r.TLS = TLSRequire
			case "implicit":
				r.TLS = TLSImplicit
			default:
				return nil, fmt.Errorf("tls=%.30q: want may, require or implicit", value)
			}
		case "auth", "ca":
			p := &r.AuthFile
			if key == "ca" {
				p = &r.CAFile
			}
			if *p != "" {
				return nil, fmt.Errorf("%s= given twice", key)
			}
			*p = value
		default:
			return nil, fmt.Errorf("unknown option %.30q (want tls=, auth= or ca=)", key)
		}
	}
	if r.AuthFile != "" {
		if r.TLS == TLSMay && tlsGiven {
			return nil, errors.New("auth= with tls=may would send the password in the clear")
		}
		if r.TLS == TLSMay {
			r.TLS = TLSRequire
		}
	}
	return r, nil
}

// parseHost parses HOST[:PORT] with a bracketed IPv6 literal.
func (r *Route) parseHost(s string) error {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fmt.Errorf("host %.60q: no closing ']'", s)
		}
		host, port = s[1:end], s[end+1:]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return fmt.Errorf("host %.60q: brackets hold only IPv6 addresses", s)
		}
		if port != "" && port[0] != ':' {
			return fmt.Errorf("host %.60q: want [IPv6]:PORT", s)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(s, ":") {
			return fmt.Errorf("host %.60q: empty port", s)
		}
	} else if h, p, ok := strings.Cut(s, ":"); ok {
		host, port = h, p
		if port == "" {
			return fmt.Errorf("host %.60q: empty port", s)
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("host %.60q: port must be 1 to 65535", s)
		}
		r.Port = n
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() == nil && !strings.HasPrefix(s, "[") {
			return fmt.Errorf("host %.60q: write IPv6 addresses in brackets", s)
		}
		r.Host = ip.String()
		return nil
	}
	d, err := address.ParseDomain(host)
	if err != nil || address.IsLiteral(d) {
		return fmt.Errorf("host %.60q is not a host name or IP address", host)
	}
	r.Host = d
	return nil
}

// Load reads root's etc/routes (missing: no routes) and the auth and CA
// files its routes name.
func Load(root control.Root) (*Table, error) {
	data, err := os.ReadFile(root.Etc("routes"))
	if errors.Is(err, os.ErrNotExist) {
		return &Table{routes: map[string]*Route{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	t, err := Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", root.Etc("routes"), err)
	}
	for _, r := range t.lines {
		if err := r.loadFiles(root); err != nil {
			return nil, fmt.Errorf("routes: route %s: %w", r.Domain, err)
		}
	}
	return t, nil
}

func (r *Route) loadFiles(root control.Root) error {
	path := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return root.Etc(p)
	}
	if r.AuthFile != "" {
		data, err := os.ReadFile(path(r.AuthFile))
		if err != nil {
			return fmt.Errorf("auth file: %w", err)
		}
		lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\n")
		if len(lines) < 2 || strings.TrimSpace(lines[0]) == "" {
			return fmt.Errorf("auth file %s: want the user name on line 1 and the password on line 2", path(r.AuthFile))
		}
		r.Username = strings.TrimSpace(lines[0])
		r.Password = strings.TrimRight(lines[1], "\r")
	}
	if r.CAFile != "" {
		pem, err := os.ReadFile(path(r.CAFile))
		if err != nil {
			return fmt.Errorf("ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca file %s: no PEM certificate in it", path(r.CAFile))
		}
		r.RootCAs = pool
	}
	return nil
}
