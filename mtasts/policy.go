// Package mtasts finds, checks and caches the MTA-STS policies (RFC 8461)
// of the domains sendq delivers to, so that mail to a domain that asks for
// it goes only over verified TLS to the MX hosts the domain names.
//
// # Lookup
//
// For a destination DOMAIN, Fetcher.Policy asks for the TXT record
// _mta-sts.DOMAIN ("v=STSv1; id=...", RFC 8461 §3.1). When its id differs
// from the cached policy's, or nothing valid is cached, the policy is fetched
// with HTTPS GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt (§3.3): the
// server's certificate must be valid for mta-sts.DOMAIN, redirects are not
// followed, the answer must be 200 with media type text/plain and at most
// MaxPolicySize bytes. mta-sts.DOMAIN is looked up with the same resolvers
// as MX hosts (sendq's --dns, etc/dns), and Fetcher.Port and
// Fetcher.RootCAs let tests point the fetch at a server on loopback with a
// test CA.
//
// A cached policy that has not expired (fetched + max_age) stays in force
// when the TXT record is gone or cannot be looked up, and when a new policy
// cannot be fetched (§5.1; a domain ends its policy by publishing mode none,
// §8.3). A domain with neither a cached policy nor a fetchable one has none:
// mail goes as if it had never published one (§3.3).
//
// # Cache
//
// One file per domain, ROOT/cache/mta-sts/DOMAIN (the domain in lower-case
// ASCII), mode 0600, replaced atomically:
//
//	id 20261122T101500
//	fetched 2026-11-22T10:15:03Z
//
//	version: STSv1
//	mode: enforce
//	mx: mail.example.org
//	max_age: 604800
//
// that is, the TXT record's id, the time of the fetch (RFC 3339, UTC), an
// empty line and the policy as served. Removing the directory is harmless:
// policies are fetched again.
package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

// The modes.
const (
	Enforce Mode = "enforce" // deliver only over verified TLS to matching MX hosts
	Testing Mode = "testing" // deliver as usual; report what enforce would refuse
	None    Mode = "none"    // no policy
)

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 64 << 10

// MaxMaxAge is the largest max_age allowed (RFC 8461 §3.2: 31557600, one
// year).
const MaxMaxAge = 31557600 * time.Second

// Policy is a parsed policy file (RFC 8461 §3.2).
type Policy struct {
	Mode   Mode
	MX     []string // patterns: "mail.example.org", "*.example.org"
	MaxAge time.Duration
}

// ParsePolicy parses a policy file: "key: value" lines with CRLF or LF
// endings. version (STSv1), mode and max_age must appear once; mx at least
// once unless the mode is none. Unknown keys are extensions and are
// ignored (§3.2).
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("mtasts: policy of %d bytes, at most %d allowed", len(data), MaxPolicySize)
	}
	p := &Policy{}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("mtasts: policy line %q has no ':'", line)
		}
		// sts-policy-field-delim is ":" *WSP; trailing WSP is not part of
		// the value either.
		value = strings.Trim(value, " \t")
		if key != "mx" && seen[key] {
			return nil, fmt.Errorf("mtasts: policy has %s twice", key)
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("mtasts: policy version %q, want STSv1", value)
			}
		case "mode":
			switch m := Mode(value); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return nil, fmt.Errorf("mtasts: unknown policy mode %q", value)
			}
		case "max_age":
			// max-age-value = 1*10DIGIT, at most 31557600.
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil || len(value) > 10 || value[0] == '+' || time.Duration(n)*time.Second > MaxMaxAge {
				return nil, fmt.Errorf("mtasts: policy max_age %q is not a number of seconds up to %d", value, int(MaxMaxAge.Seconds()))
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			pattern := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validPattern(pattern) {
				return nil, fmt.Errorf("mtasts: policy mx %q is not a host name or *.domain", value)
			}
			p.MX = append(p.MX, pattern)
		}
	}
	for _, key := range []string{"version", "mode", "max_age"} {
		if !seen[key] {
			return nil, fmt.Errorf("mtasts: policy has no %s", key)
		}
	}
	if p.Mode != None && len(p.MX) == 0 {
		return nil, errors.New("mtasts: policy names no mx")
	}
	return p, nil
}

// validPattern checks an mx pattern: a host name, or "*." and a domain.
func validPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if p == "" || len(p) > 253 {
		return false
	}
	for label := range strings.SplitSeq(p, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Match reports whether host (an MX host name) matches one of the policy's
// mx patterns (RFC 8461 §4.1): equal ignoring case, or "*.example.org"
// matching exactly one more label on the left ("mx1.example.org", but
// neither "example.org" nor "a.mx1.example.org").
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// ParseRecord reads the id of a _mta-sts TXT record (RFC 8461 §3.1):
// "v=STSv1; id=ID;" with v first and an id of 1 to 32 letters and digits;
// other fields are extensions.
func ParseRecord(txt string) (id string, err error) {
	fields := strings.Split(txt, ";")
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		if f == "" && i == len(fields)-1 {
			break
		}
		key, value, ok := strings.Cut(f, "=")
		if !ok {
			return "", fmt.Errorf("mtasts: record field %q has no '='", f)
		}
		switch {
		case i == 0:
			if key != "v" || value != "STSv1" {
				return "", fmt.Errorf("mtasts: record %q does not start with v=STSv1", txt)
			}
		case key == "id":
			if id != "" {
				return "", fmt.Errorf("mtasts: record %q has two ids", txt)
			}
			if len(value) < 1 || len(value) > 32 || strings.IndexFunc(value, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
				return "", fmt.Errorf("mtasts: record id %q is not 1 to 32 letters and digits", value)
			}
			id = value
		}
	}
	if id == "" {
		return "", fmt.Errorf("mtasts: record %q has no id", txt)
	}
	return id, nil
}

// RecordID picks the policy id from the TXT records of _mta-sts.DOMAIN:
// those that do not start with "v=STSv1;" are ignored, and anything but
// exactly one valid record means no policy (RFC 8461 §3.1).
func RecordID(txts []string) (string, error) {
	var sts []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") {
			sts = append(sts, t)
		}
	}
	if len(sts) != 1 {
		return "", fmt.Errorf("mtasts: %d STSv1 records, want 1", len(sts))
	}
	return ParseRecord(sts[0])
}
