package address

// ParsePath parses an RFC 5321 §4.1.2 Reverse-path or Forward-path:
// "<" [A-d-l ":"] Mailbox ">". A source route (A-d-l, "@relay1,@relay2:")
// is checked for syntax and dropped: RFC 5321 §3.3 and Appendix C say servers
// must accept it and should ignore it, and honouring it would make us an open
// relay. "<>" is the null reverse-path and gives the zero Address and no error.
// For command lines the angle brackets may be left out. s is the path alone,
// without the MAIL/RCPT parameters that may follow it.
func ParsePath(s string) (Address, error) {
	if len(s) > MaxPath {
		return Address{}, syntaxError("path longer than %d octets", MaxPath)
	}
	if s == "<>" {
		return Address{}, nil
	}
	inner := s
	if len(s) > 0 && s[0] == '<' {
		if s[len(s)-1] != '>' || len(s) < 2 {
			return Address{}, syntaxError("path without a closing '>'")
		}
		inner = s[1 : len(s)-1]
	} else if len(s) > 0 && s[len(s)-1] == '>' {
		return Address{}, syntaxError("path without an opening '<'")
	}
	if len(inner) > 0 && inner[0] == '@' {
		rest, err := skipRoute(inner)
		if err != nil {
			return Address{}, err
		}
		inner = rest
	}
	return Parse(inner)
}

// skipRoute checks A-d-l ":" at the start of s (A-d-l = At-domain *(","
// At-domain), At-domain = "@" Domain) and returns what follows the colon.
// The domains are scanned one by one because an IPv6 literal holds colons.
func skipRoute(s string) (string, error) {
	i := 0
	for {
		if i >= len(s) || s[i] != '@' {
			return "", syntaxError("bad source route")
		}
		i++
		start := i
		if i < len(s) && s[i] == '[' {
			for i < len(s) && s[i] != ']' {
				i++
			}
			if i < len(s) {
				i++
			}
		} else {
			for i < len(s) && s[i] != ',' && s[i] != ':' {
				i++
			}
		}
		if _, err := ParseDomain(s[start:i]); err != nil {
			return "", syntaxError("bad domain %q in the source route", s[start:i])
		}
		if i >= len(s) {
			return "", syntaxError("source route without ':'")
		}
		switch s[i] {
		case ':':
			return s[i+1:], nil
		case ',':
			i++
		default:
			return "", syntaxError("bad source route")
		}
	}
}
