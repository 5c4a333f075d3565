// Package milter passes received messages through content filters that
// speak the milter protocol of Sendmail and Postfix: rspamd, spamass-milter,
// clamav-milter and the like. The protocol is
// github.com/emersion/go-milter's client; this package chooses what is sent
// and turns the filter's answers into one Result.
//
// A filter is named by one line of a control file (see ParseFilter):
//
//	unix:/run/rspamd/milter.sock
//	inet:127.0.0.1:11332 timeout=60s connect-timeout=5s
//
// Check runs one whole milter session per message, once the message has
// been received: connect, HELO, MAIL, each RCPT, each header field, end of
// header, the body in chunks of at most 64 KiB, end of message, with the
// Sendmail macros filters commonly read (j, i, {daemon_name},
// {client_addr}, {client_name}, {tls_version}, {cipher}, {auth_authen},
// {mail_addr}, {rcpt_addr}). The filter may answer at any step; a reject
// or temporary failure of one recipient applies to the whole message, since
// the SMTP server answers only once, after the data. Offered actions are
// adding, inserting, changing and deleting header fields and quarantine;
// a filter that changes the body, the sender or the recipients anyway has
// those changes ignored (Result.Ignored says so).
//
// Filters speaking protocol version 6 (libmilter, rspamd) are offered
// every step they may skip or leave unanswered; an older filter (version
// 2, such as go-milter's own server) is asked again on a new connection
// with the masks version 2 knows.
package milter

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Defaults of a filter's timeouts.
const (
	DefaultConnectTimeout = 10 * time.Second
	// DefaultTimeout bounds the wait for each answer of the filter.
	DefaultTimeout = 30 * time.Second
)

// maxTimeout caps the timeouts a control file may set.
const maxTimeout = 10 * time.Minute

// Filter is one milter: where it listens, and how long to wait for it.
type Filter struct {
	Spec    string // the address as written in the control file, for logs
	Network string // "unix" or "tcp"
	Address string // a socket path, or host:port
	// ConnectTimeout bounds the connection, Timeout each answer of the
	// filter (the option negotiation's too).
	ConnectTimeout, Timeout time.Duration
}

// ParseFilter parses one line naming a filter: an address, "unix:PATH"
// ("local:PATH" is the same; PATH absolute), "inet:HOST:PORT" or
// "inet6:HOST:PORT" (an IPv6 HOST in brackets, "inet:[::1]:11332"),
// followed by options separated by white space: "timeout=DURATION" (each
// answer; default 30s) and "connect-timeout=DURATION" (default 10s), as Go
// durations of at most 10m.
func ParseFilter(line string) (Filter, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return Filter{}, fmt.Errorf("milter: empty filter line")
	}
	f := Filter{Spec: fields[0], ConnectTimeout: DefaultConnectTimeout, Timeout: DefaultTimeout}
	kind, addr, ok := strings.Cut(fields[0], ":")
	if !ok {
		return Filter{}, fmt.Errorf("milter: %.80q: want unix:PATH or inet:HOST:PORT", fields[0])
	}
	switch strings.ToLower(kind) {
	case "unix", "local":
		if !strings.HasPrefix(addr, "/") || strings.ContainsRune(addr, 0) {
			return Filter{}, fmt.Errorf("milter: %.80q: the socket path must be absolute", fields[0])
		}
		// sockaddr_un holds 108 octets with the final NUL.
		if len(addr) > 107 {
			return Filter{}, fmt.Errorf("milter: %.80q: socket path longer than 107 octets", fields[0])
		}
		f.Network, f.Address = "unix", addr
	case "inet", "inet6":
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || !validPort(port) || !validHost(host) {
			return Filter{}, fmt.Errorf("milter: %.80q: want inet:HOST:PORT", fields[0])
		}
		f.Network, f.Address = "tcp", net.JoinHostPort(host, port)
	default:
		return Filter{}, fmt.Errorf("milter: %.80q: unknown socket type %.20q (unix or inet)", fields[0], kind)
	}
	for _, opt := range fields[1:] {
		name, value, _ := strings.Cut(opt, "=")
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 || d > maxTimeout {
			return Filter{}, fmt.Errorf("milter: %.80q: %.40q is no duration from 1ns to %v", fields[0], opt, maxTimeout)
		}
		switch name {
		case "timeout":
			f.Timeout = d
		case "connect-timeout":
			f.ConnectTimeout = d
		default:
			return Filter{}, fmt.Errorf("milter: %.80q: unknown option %.40q (timeout, connect-timeout)", fields[0], opt)
		}
	}
	return f, nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// validHost accepts an IP address or a host name of letters, digits,
// hyphens and dots.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
