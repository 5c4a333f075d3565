package imapmsg

import (
	"bytes"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Placeholders for the parts of an address that the header lacks, as
// Dovecot writes them, so that an address never looks like the group
// markers of RFC 3501 §7.4.2 (NIL host).
const (
	MissingMailbox = "MISSING_MAILBOX"
	MissingDomain  = "MISSING_DOMAIN"
)

// Envelope returns the ENVELOPE of the message (RFC 3501 §7.4.2, RFC 9051
// §7.5.2), reading only its header.
func (m *Message) Envelope() (*imap.Envelope, error) {
	e, err := m.header()
	if err != nil {
		return nil, err
	}
	return envelopeOf(e.header), nil
}

// ParseEnvelope returns the ENVELOPE of a message header given as bytes
// (any line endings; the header may be followed by the body).
func ParseEnvelope(hdr []byte) *imap.Envelope {
	m := New(bytes.NewReader(hdr), int64(len(hdr)), -1)
	env, _ := m.Envelope()
	return env
}

// envelopeOf builds the envelope from the header, keeping the text as the
// header has it, encoded words included, as RFC 3501 wants: the client
// decodes. (go-imap's writer leaves ASCII strings alone, so encoded words
// reach the client unchanged.) Of a field that occurs more than once the
// last counts, as in Dovecot. The date is what net/mail can parse of the
// Date field, NIL if nothing; addresses are parsed leniently (see
// parseAddressList); In-Reply-To and Message-ID are the message ids in
// angle brackets found in their fields.
func envelopeOf(h header) *imap.Envelope {
	env := &imap.Envelope{}
	h.each(func(name, value []byte) bool {
		switch {
		case equalFoldASCII(name, "Date"):
			env.Date = parseDate(unfold(value))
		case equalFoldASCII(name, "Subject"):
			env.Subject = unfold(value)
		case equalFoldASCII(name, "From"):
			env.From = parseAddressList(unfold(value))
		case equalFoldASCII(name, "Sender"):
			env.Sender = parseAddressList(unfold(value))
		case equalFoldASCII(name, "Reply-To"):
			env.ReplyTo = parseAddressList(unfold(value))
		case equalFoldASCII(name, "To"):
			env.To = parseAddressList(unfold(value))
		case equalFoldASCII(name, "Cc"):
			env.Cc = parseAddressList(unfold(value))
		case equalFoldASCII(name, "Bcc"):
			env.Bcc = parseAddressList(unfold(value))
		case equalFoldASCII(name, "In-Reply-To"):
			env.InReplyTo = msgIDs(unfold(value), -1)
		case equalFoldASCII(name, "Message-ID"):
			env.MessageID = ""
			if ids := msgIDs(unfold(value), 1); len(ids) > 0 {
				env.MessageID = ids[0]
			}
		}
		return true
	})
	return env
}

// parseDate parses a Date field (RFC 5322 §3.3, with the obsolete forms
// net/mail knows); the zero time if it cannot.
func parseDate(v string) time.Time {
	if t, err := mail.ParseDate(v); err == nil {
		return t
	}
	// Trailing junk after the zone, such as "(CEST)" without a space or a
	// second zone name: retry on the first six words.
	if f := strings.Fields(v); len(f) > 6 {
		if t, err := mail.ParseDate(strings.Join(f[:6], " ")); err == nil {
			return t
		}
	}
	return time.Time{}
}

// msgIDs returns the contents of up to max (all if max < 0) "<...>" in v.
func msgIDs(v string, max int) []string {
	var ids []string
	for max != 0 {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i+1:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+1+j]); id != "" && !strings.ContainsAny(id, "<\r\n") {
			ids = append(ids, id)
			max--
		}
		v = v[i+1+j+1:]
	}
	return ids
}

// An addrToken is one lexical token of an address field (RFC 5322 §3.2).
type addrToken struct {
	kind byte   // 'a' atom (dots included), 'q' quoted string, 'c' comment, 'd' domain literal, or the special character itself
	text string // for 'q' and 'c' the contents, unquoted; else as written
	raw  string // as written
}

func tokenizeAddresses(s string) []addrToken {
	var toks []addrToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			end := min(j+1, len(s))
			toks = append(toks, addrToken{kind: 'q', text: b.String(), raw: s[i:end]})
			i = end
		case c == '(':
			var b strings.Builder
			depth := 0
			j := i
			for ; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					b.WriteByte(s[j])
					continue
				}
				if s[j] == '(' {
					depth++
					if depth == 1 {
						continue
					}
				}
				if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
				b.WriteByte(s[j])
			}
			end := min(j+1, len(s))
			toks = append(toks, addrToken{kind: 'c', text: strings.TrimSpace(b.String()), raw: s[i:end]})
			i = end
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			end := len(s)
			if j >= 0 {
				end = i + j + 1
			}
			toks = append(toks, addrToken{kind: 'd', text: s[i:end], raw: s[i:end]})
			i = end
		case strings.IndexByte("<>@,:;", c) >= 0:
			toks = append(toks, addrToken{kind: c, text: s[i : i+1], raw: s[i : i+1]})
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\r\n\"(<>@,:;[", s[j]) < 0 {
				j++
			}
			toks = append(toks, addrToken{kind: 'a', text: s[i:j], raw: s[i:j]})
			i = j
		}
	}
	return toks
}

// parseAddressList parses an address list (RFC 5322 §3.4) into IMAP
// address structures, leniently, as Dovecot does: display names keep their
// encoded words, quoted strings lose their quotes, a comment serves as the
// name of a bare address, groups become the start and end markers of
// RFC 3501 §7.4.2, and a missing mailbox or domain is written
// MissingMailbox or MissingDomain. It never fails; nil if v has no
// address.
func parseAddressList(v string) []imap.Address {
	toks := tokenizeAddresses(v)
	var out []imap.Address
	inGroup := false
	for i := 0; i < len(toks); {
		switch toks[i].kind {
		case ',':
			i++
			continue
		case ';':
			if inGroup {
				out = append(out, imap.Address{})
				inGroup = false
			}
			i++
			continue
		}
		// The next '<', '@', ',', ';' or (outside a group) ':' tells
		// what the words from i are.
		j := i
		for j < len(toks) && strings.IndexByte("<@,;", toks[j].kind) < 0 && (inGroup || toks[j].kind != ':') {
			j++
		}
		switch {
		case j < len(toks) && toks[j].kind == ':':
			out = append(out, imap.Address{Mailbox: nonEmpty(phrase(toks[i:j]), MissingMailbox)})
			inGroup = true
			i = j + 1
		case j < len(toks) && toks[j].kind == '<':
			name := phrase(toks[i:j])
			k := j + 1
			for k < len(toks) && toks[k].kind != '>' {
				k++
			}
			mailbox, host := addrSpec(stripRoute(toks[j+1 : k]))
			out = append(out, imap.Address{Name: name, Mailbox: mailbox, Host: host})
			i = skipToNext(toks, k)
		case j < len(toks) && toks[j].kind == '@':
			// An addr-spec: local-part "@" domain, perhaps with a
			// comment for a name; anything after it up to the next
			// address is dropped.
			k := j + 1
			if k < len(toks) && (toks[k].kind == 'a' || toks[k].kind == 'd') {
				k++
			}
			for k < len(toks) && toks[k].kind == 'c' {
				k++
			}
			mailbox, host := addrSpec(toks[i:k])
			out = append(out, imap.Address{Name: lastComment(toks[i:k]), Mailbox: mailbox, Host: host})
			i = skipToNext(toks, k)
		default:
			// Words without '@': a mailbox without domain.
			if hasWord(toks[i:j]) {
				mailbox, host := addrSpec(toks[i:j])
				out = append(out, imap.Address{Name: lastComment(toks[i:j]), Mailbox: mailbox, Host: host})
			}
			i = j
		}
	}
	if inGroup {
		out = append(out, imap.Address{})
	}
	return out
}

// skipToNext returns the index of the ',' or ';' that ends the address
// at or after k.
func skipToNext(toks []addrToken, k int) int {
	for k < len(toks) && toks[k].kind != ',' && toks[k].kind != ';' {
		k++
	}
	return k
}

func lastComment(toks []addrToken) string {
	name := ""
	for _, t := range toks {
		if t.kind == 'c' && t.text != "" {
			name = t.text
		}
	}
	return name
}

func hasWord(toks []addrToken) bool {
	for _, t := range toks {
		if t.kind != 'c' {
			return true
		}
	}
	return false
}

func nonEmpty(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// phrase joins the words of a display name with single spaces.
func phrase(toks []addrToken) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == 'c' {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// stripRoute drops an obsolete source route ("@a,@b:", RFC 5322 §4.4)
// from an angle address.
func stripRoute(toks []addrToken) []addrToken {
	if len(toks) == 0 || toks[0].kind != '@' {
		return toks
	}
	for i, t := range toks {
		if t.kind == ':' {
			return toks[i+1:]
		}
	}
	return toks
}

// addrSpec splits local-part "@" domain, comments, white space and the
// quotes of a quoted local part removed.
func addrSpec(toks []addrToken) (mailbox, host string) {
	var local, domain strings.Builder
	at := false
	for _, t := range toks {
		switch {
		case t.kind == 'c':
		case t.kind == '@' && !at:
			at = true
		case at:
			domain.WriteString(t.raw)
		case t.kind == 'q':
			// Quotes go, as in Dovecot: "first last"@x is first last.
			local.WriteString(t.text)
		default:
			local.WriteString(t.raw)
		}
	}
	return nonEmpty(local.String(), MissingMailbox), nonEmpty(domain.String(), MissingDomain)
}
