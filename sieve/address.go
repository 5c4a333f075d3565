package sieve

import (
	"strings"
)

// mailAddr is one address from a header or the envelope.
type mailAddr struct {
	all    string // the addr-spec without display name and comments
	local  string // unquoted local part
	domain string
	valid  bool // local and domain are known
}

type addressPart int

const (
	partAll addressPart = iota
	partLocal
	partDomain
	partUser   // RFC 5233 §4
	partDetail // RFC 5233 §4
)

var addressParts = map[string]addressPart{"all": partAll, "localpart": partLocal, "domain": partDomain,
	"user": partUser, "detail": partDetail}

// subaddressSeparator splits user from detail, as in alice+lists@example.org
// (the convention of postkit's address resolution).
const subaddressSeparator = "+"

// part returns the address part to compare and whether there is one: an
// address that does not parse has only :all (RFC 5228 §2.7.4), and one
// without a separator has no :detail (RFC 5233 §4).
func (a mailAddr) part(p addressPart) (string, bool) {
	switch p {
	case partAll:
		return a.all, true
	case partLocal:
		return a.local, a.valid
	case partDomain:
		return a.domain, a.valid
	case partUser:
		user, _, _ := strings.Cut(a.local, subaddressSeparator)
		return user, a.valid
	case partDetail:
		_, detail, ok := strings.Cut(a.local, subaddressSeparator)
		return detail, a.valid && ok
	}
	return "", false
}

// parseAddrSpec splits local@domain at the last "@" outside quotes.
func parseAddrSpec(s string) mailAddr {
	s = strings.TrimSpace(s)
	a := mailAddr{all: s}
	at, quoted := -1, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case '@':
			if !quoted {
				at = i
			}
		}
	}
	if at <= 0 || at == len(s)-1 {
		return a
	}
	local, domain := strings.TrimSpace(s[:at]), strings.TrimSpace(s[at+1:])
	if strings.ContainsAny(domain, " \t\"<>,;") {
		return a
	}
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = unquote(local[1 : len(local)-1])
	}
	a.local, a.domain, a.valid = local, domain, local != ""
	a.all = s
	return a
}

func unquote(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseAddressList reads the addresses of an RFC 5322 address-list field
// leniently: display names, comments, groups and source routes are dropped,
// and text that is no address still yields an entry for :all.
func parseAddressList(s string) []mailAddr {
	var out []mailAddr
	var item strings.Builder
	angle := -1 // start of the current <...> in item, or -1
	var inAngle string
	hasAngle := false
	flush := func() {
		text := strings.TrimSpace(item.String())
		if hasAngle {
			text = inAngle
			// Drop a source route: <@a,@b:user@domain> (RFC 5322 §4.4).
			if strings.HasPrefix(text, "@") {
				if i := strings.IndexByte(text, ':'); i >= 0 {
					text = text[i+1:]
				}
			}
		}
		if text = strings.TrimSpace(text); text != "" {
			out = append(out, parseAddrSpec(text))
		}
		item.Reset()
		angle, hasAngle, inAngle = -1, false, ""
	}
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(s) {
				item.WriteByte(c)
				i++
				c = s[i]
			} else if c == '"' {
				quoted = false
			}
			item.WriteByte(c)
		case depth > 0:
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
		case c == '(':
			depth++
		case c == '"':
			quoted = true
			item.WriteByte(c)
		case c == '<':
			angle = item.Len()
			item.WriteByte(c)
		case c == '>' && angle >= 0:
			inAngle, hasAngle = item.String()[angle+1:], true
			angle = -1
		case c == ':' && angle < 0:
			// A group's display name: its members follow (RFC 5322 §3.4).
			item.Reset()
		case (c == ',' || c == ';') && angle < 0:
			flush()
		default:
			item.WriteByte(c)
		}
	}
	flush()
	return out
}
