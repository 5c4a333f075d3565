package sendmail

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
)

// ErrData is wrapped by errors about the message or its addresses (exit
// code 65).
var ErrData = errors.New("sendmail: bad message")

// field is one header field with its continuation lines, without the
// final newline.
type field struct {
	name string // as written
	text string // "Name: value\n\tcontinued"
}

// message is a message split into its header fields and the rest.
type message struct {
	fields []field
	body   []byte // after the empty line (which is not included)
}

// ReadMessage reads a message from r the way sendmail does: CRLF becomes
// LF (the spool stores LF), and unless ignoreDots a line holding a single
// dot ends the message.
func ReadMessage(r io.Reader, ignoreDots bool) ([]byte, error) {
	if ignoreDots {
		data, err := io.ReadAll(r)
		return bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), err
	}
	var out bytes.Buffer
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if l := bytes.TrimRight(line, "\r\n"); string(l) == "." && len(line) > 1 {
			return out.Bytes(), nil
		}
		if bytes.HasSuffix(line, []byte("\r\n")) {
			line = append(line[:len(line)-2], '\n')
		}
		out.Write(line)
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseMessage splits data (LF line endings) into header fields and body.
// The header ends at the first empty line, or at the first line that is
// not a header field (which then starts the body).
func parseMessage(data []byte) message {
	var m message
	rest := data
	for len(rest) > 0 {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 {
			m.body = after
			return m
		}
		if (line[0] == ' ' || line[0] == '\t') && len(m.fields) > 0 {
			m.fields[len(m.fields)-1].text += "\n" + string(line)
		} else if name, ok := fieldName(line); ok {
			m.fields = append(m.fields, field{name: name, text: string(line)})
		} else {
			m.body = rest
			return m
		}
		if !found {
			return m
		}
		rest = after
	}
	return m
}

// fieldName returns the name of a header field line (RFC 5322 §3.6.8:
// printable ASCII except colon, then a colon).
func fieldName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return "", false
	}
	for _, c := range line[:i] {
		if c < '!' || c > '~' {
			return "", false
		}
	}
	return string(line[:i]), true
}

// value returns the unfolded value of a field.
func (f field) value() string {
	_, v, _ := strings.Cut(f.text, ":")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.TrimSpace(v)
}

func (m *message) has(name string) bool {
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

func (m *message) add(name, value string) {
	m.fields = append(m.fields, field{name: name, text: name + ": " + value})
}

// bytes returns the message with LF line endings.
func (m *message) bytes() []byte {
	var b bytes.Buffer
	for _, f := range m.fields {
		b.WriteString(f.text)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(m.body)
	return b.Bytes()
}

// headerRecipients returns the addresses of the To, Cc and Bcc fields and
// removes the Bcc fields (-t). Group syntax ("undisclosed-recipients:;")
// is understood.
func (m *message) headerRecipients() ([]string, error) {
	var addrs []string
	kept := m.fields[:0]
	for _, f := range m.fields {
		name := strings.ToLower(f.name)
		if name == "to" || name == "cc" || name == "bcc" {
			v := f.value()
			if v != "" {
				list, err := addressList(v)
				if err != nil {
					return nil, fmt.Errorf("%w: %s: %v", ErrData, f.name, err)
				}
				addrs = append(addrs, list...)
			}
		}
		if name != "bcc" {
			kept = append(kept, f)
		}
	}
	m.fields = kept
	return addrs, nil
}

// addressList returns the addresses of an address list field. Local
// programs write bare user names ("To: root"), which RFC 5322 does not
// allow and net/mail refuses; such names are returned as they are, to be
// qualified with the host name like command-line recipients.
func addressList(v string) ([]string, error) {
	if list, err := mail.ParseAddressList(v); err == nil {
		var out []string
		for _, a := range list {
			out = append(out, addrSpec(a))
		}
		return out, nil
	}
	if isEmptyGroup(v) {
		return nil, nil
	}
	var out []string
	for _, item := range splitList(v) {
		if a, err := mail.ParseAddress(item); err == nil {
			out = append(out, addrSpec(a))
			continue
		}
		bare := item
		if i := strings.LastIndexByte(item, '<'); i >= 0 && strings.HasSuffix(item, ">") {
			bare = item[i+1 : len(item)-1]
		}
		if bare == "" || strings.ContainsAny(bare, " \t\"<>@,;:()") {
			return nil, fmt.Errorf("%q is not an address", item)
		}
		out = append(out, bare)
	}
	return out, nil
}

// addrSpec returns a's address as an addr-spec. net/mail gives the local
// part unquoted ("a b"@x as a b@x, "q@r"@x as q@r@x), which is no
// address: String quotes it again where RFC 5322 §3.4.1 requires it.
func addrSpec(a *mail.Address) string {
	s := (&mail.Address{Address: a.Address}).String()
	return s[1 : len(s)-1]
}

// isEmptyGroup reports whether v is only groups without members, such as
// "undisclosed-recipients:;", which net/mail refuses.
func isEmptyGroup(v string) bool {
	for _, g := range strings.Split(v, ";") {
		g = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(g), ","))
		if g == "" {
			continue
		}
		name, members, ok := strings.Cut(g, ":")
		if !ok || strings.TrimSpace(members) != "" || strings.ContainsAny(name, "<>@") {
			return false
		}
	}
	return true
}

// complete adds the header fields a message must have (RFC 5322 §3.6)
// when they are missing: Date, From (from the envelope sender and -F) and
// Message-ID.
func (m *message) complete(from, fullName, hostname string, now time.Time) {
	if !m.has("Date") {
		m.add("Date", now.Format(time.RFC1123Z))
	}
	if !m.has("From") && from != "" {
		if fullName != "" {
			m.add("From", (&mail.Address{Name: fullName, Address: from}).String())
		} else {
			m.add("From", "<"+from+">")
		}
	}
	if !m.has("Message-ID") {
		b := make([]byte, 8)
		rand.Read(b)
		m.add("Message-ID", fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102150405"), hex.EncodeToString(b), hostname))
	}
}
