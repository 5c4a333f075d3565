package address

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// idnaProfile converts UTF-8 domains (RFC 6531 §3.3 allows U-labels) to
// A-labels: the lookup mapping of RFC 5891 §5 and UTS #46 (case and width
// folded, nontransitional, so "ß" stays "ß"), with label validation, the Bidi
// rule and the DNS length checks.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
)

// ParseDomain normalises the domain of an address: a domain name (RFC 5321
// §4.1.2 Domain, with U-labels allowed by RFC 6531) becomes lower case ASCII
// with IDNA A-labels, so "Bücher.Example" and "xn--bcher-kva.example" are
// the same string; an address literal stays a literal ("[192.0.2.1]",
// "[IPv6:2001:db8::1]") in canonical form. Empty labels, a trailing dot and an
// all-numeric top-level label (which would read as an IP address, RFC 3696
// §2) are refused, as are General-address-literals, for which no tag is
// registered.
func ParseDomain(s string) (string, error) {
	if s == "" {
		return "", syntaxError("empty domain")
	}
	if len(s) > MaxDomain {
		return "", syntaxError("domain longer than %d octets", MaxDomain)
	}
	if s[0] == '[' {
		return parseLiteral(s)
	}
	if !isASCII(s) {
		if !utf8.ValidString(s) {
			return "", syntaxError("domain is not valid UTF-8")
		}
		a, err := idnaProfile.ToASCII(s)
		if err != nil {
			return "", syntaxError("bad international domain: %v", err)
		}
		s = a
		if len(s) > MaxDomain {
			return "", syntaxError("domain longer than %d octets in ASCII", MaxDomain)
		}
	}
	s = strings.ToLower(s)
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", syntaxError("domain %q ends in a numeric label (an IP address needs brackets)", s)
	}
	return s, nil
}

// checkLabel checks one lower-cased label: sub-domain = Let-dig [Ldh-str]
// (RFC 5321 §4.1.2), at most 63 octets (RFC 1035 §2.3.4), and an "xn--"
// label must be a valid A-label in canonical form (RFC 5890 §2.3.2.1).
func checkLabel(l string) error {
	if l == "" {
		return syntaxError("empty label in the domain (leading, trailing or double dot)")
	}
	if len(l) > 63 {
		return syntaxError("domain label longer than 63 octets")
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			continue
		}
		if c == '-' && i > 0 && i < len(l)-1 {
			continue
		}
		return syntaxError("character %q not allowed in domain label %q", c, l)
	}
	if strings.HasPrefix(l, "xn--") {
		u, err := idnaProfile.ToUnicode(l)
		if err != nil {
			return syntaxError("bad IDNA label %q: %v", l, err)
		}
		if back, err := idnaProfile.ToASCII(u); err != nil || back != l {
			return syntaxError("IDNA label %q is not in canonical form", l)
		}
	}
	return nil
}

// parseLiteral parses an address-literal (RFC 5321 §4.1.3): "[" IPv4 "]" or
// "[IPv6:" IPv6 "]", and returns it in canonical form.
func parseLiteral(s string) (string, error) {
	if len(s) < 2 || s[len(s)-1] != ']' {
		return "", syntaxError("unterminated address literal")
	}
	in := s[1 : len(s)-1]
	if len(in) >= 5 && strings.EqualFold(in[:5], "IPv6:") {
		ip, err := netip.ParseAddr(in[5:])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", syntaxError("bad IPv6 address literal")
		}
		return "[IPv6:" + ip.String() + "]", nil
	}
	// IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT (0-255).
	parts := strings.Split(in, ".")
	if len(parts) != 4 {
		if strings.Contains(in, ":") {
			return "", syntaxError("unsupported address literal (only IPv4 and IPv6: are defined)")
		}
		return "", syntaxError("bad IPv4 address literal")
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 || !allDigits(p) {
			return "", syntaxError("bad IPv4 address literal")
		}
		n, _ := strconv.Atoi(p)
		if n > 255 {
			return "", syntaxError("bad IPv4 address literal")
		}
		b[i] = byte(n)
	}
	return "[" + netip.AddrFrom4(b).String() + "]", nil
}

// IsLiteral reports whether a normalised domain is an address literal.
func IsLiteral(domain string) bool { return strings.HasPrefix(domain, "[") }

// ValidDomain checks a domain for creating users and domains: a domain name
// already in the normalised form ParseDomain returns (so it can name a
// directory as is), not an address literal.
func ValidDomain(domain string) error {
	if IsLiteral(domain) {
		return fmt.Errorf("address: %q is an address literal, not a domain name", domain)
	}
	n, err := ParseDomain(domain)
	if err != nil {
		return err
	}
	if n != domain {
		return fmt.Errorf("address: domain %q is not normalised (use %q)", domain, n)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
