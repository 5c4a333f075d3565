package dkimsign

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
)

// HeaderFields are the header fields signed when the message has them: RFC
// 6376 §5.4.1's recommended list, and the MIME fields and Message-ID, which
// a change of would alter what the reader sees. Each is listed in h= as
// often as it occurs, and From once more (RFC 6376 §8.15 "oversigning"), so
// that a second From added on the way breaks the signature rather than
// being shown to the reader under a valid one.
var HeaderFields = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"Message-ID", "Sender", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// MaxHeaderSize bounds the header Sign holds in memory; a message with a
// larger header is not signed.
const MaxHeaderSize = 1 << 20

// Header is a message's header as read from the front of the message.
type Header struct {
	raw    []byte   // as read, including the empty line that ends it
	fields []string // unfolded fields, "Name: value"
}

// ErrNoHeaderEnd is returned by ReadHeader for a message without the empty
// line that ends the header: a verifier could not find the body either.
var ErrNoHeaderEnd = errors.New("dkimsign: the message header has no end (no empty line)")

// ReadHeader reads the header from the front of r, up to and including the
// empty line that ends it, leaving r at the start of the body.
func ReadHeader(r *bufio.Reader) (*Header, error) {
	h := &Header{}
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(h.raw)+len(line) > MaxHeaderSize {
			return nil, fmt.Errorf("dkimsign: the message header is larger than %d bytes", MaxHeaderSize)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a long line: read on
		case err == io.EOF:
			return nil, ErrNoHeaderEnd
		case err != nil:
			return nil, fmt.Errorf("dkimsign: reading the message: %w", err)
		}
		h.raw = append(h.raw, line...)
		text := strings.TrimRight(string(line), "\r\n")
		line = line[:0]
		switch {
		case text == "":
			return h, nil
		case (text[0] == ' ' || text[0] == '\t') && len(h.fields) > 0:
			h.fields[len(h.fields)-1] += text
		default:
			h.fields = append(h.fields, text)
		}
	}
}

// Values returns the values of the fields named name (any case), unfolded.
func (h *Header) Values(name string) []string {
	var out []string
	for _, f := range h.fields {
		k, v, ok := strings.Cut(f, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// FromDomain returns the domain of the From field's address, normalised:
// the domain DMARC aligns a signature with (RFC 7489 §3.1). A message with
// no From, with several From fields, or with addresses of several domains
// in From has none to sign for.
func (h *Header) FromDomain() (string, error) {
	from := h.Values("From")
	if len(from) != 1 {
		return "", fmt.Errorf("dkimsign: the message has %d From fields, want 1", len(from))
	}
	var domains []string
	if list, err := mail.ParseAddressList(from[0]); err == nil {
		for _, a := range list {
			domains = append(domains, a.Address[strings.LastIndexByte(a.Address, '@')+1:])
		}
	} else {
		// An encoded word in a charset net/mail does not know, or a
		// sloppy header: the address is what is in angle brackets, or
		// all of it.
		v := from[0]
		if i := strings.LastIndexByte(v, '<'); i >= 0 {
			v = v[i+1:]
			v, _, _ = strings.Cut(v, ">")
		}
		i := strings.LastIndexByte(v, '@')
		if i < 0 {
			return "", fmt.Errorf("dkimsign: From %q has no address: %w", from[0], err)
		}
		domains = append(domains, strings.TrimSpace(v[i+1:]))
	}
	var domain string
	for _, d := range domains {
		nd, err := address.ParseDomain(d)
		if err != nil || address.IsLiteral(nd) {
			return "", fmt.Errorf("dkimsign: From %q: %q is not a domain", from[0], d)
		}
		if domain != "" && nd != domain {
			return "", fmt.Errorf("dkimsign: From %q names addresses of several domains", from[0])
		}
		domain = nd
	}
	if domain == "" {
		return "", fmt.Errorf("dkimsign: From %q has no address", from[0])
	}
	return domain, nil
}

// headerKeys is the h= list for this header (see HeaderFields).
func (h *Header) headerKeys() []string {
	var keys []string
	for _, name := range HeaderFields {
		n := len(h.Values(name))
		if strings.EqualFold(name, "From") {
			n++
		}
		for range n {
			keys = append(keys, name)
		}
	}
	return keys
}

// Sign reads the rest of the message (its body) from body, streaming, and
// returns one DKIM-Signature field per key, relaxed/relaxed (RFC 6376
// §3.4.2, §3.4.4: they survive re-folding and whitespace changes on the
// way), with CRLF line endings, to be put in front of the message. The
// message may have LF or CRLF line endings: it is signed as sent, with
// CRLF.
func Sign(h *Header, body io.Reader, keys []*Key) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	hk := h.headerKeys()
	signers := make([]*dkim.Signer, 0, len(keys))
	writers := make([]io.Writer, 0, len(keys))
	defer func() {
		for _, s := range signers {
			s.Close()
		}
	}()
	for _, k := range keys {
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hk,
		})
		if err != nil {
			return "", fmt.Errorf("dkimsign: %s: %w", k.Selector, err)
		}
		signers = append(signers, s)
		writers = append(writers, s)
	}
	w := &crlfWriter{w: io.MultiWriter(writers...)}
	if _, err := w.Write(h.raw); err != nil {
		return "", fmt.Errorf("dkimsign: %w", err)
	}
	if _, err := io.Copy(w, body); err != nil {
		return "", fmt.Errorf("dkimsign: reading the message: %w", err)
	}
	var out strings.Builder
	for i, s := range signers {
		if err := s.Close(); err != nil {
			return "", fmt.Errorf("dkimsign: %s: %w", keys[i].Selector, err)
		}
		out.WriteString(s.Signature())
	}
	signers = nil
	return out.String(), nil
}

// SignFor signs the message in r, if its From domain has keys under root,
// and returns the DKIM-Signature fields and the domain; "" and no error
// when the domain has no keys.
func SignFor(root control.Root, r io.Reader) (fields, domain string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h, err := ReadHeader(br)
	if err != nil {
		return "", "", err
	}
	if domain, err = h.FromDomain(); err != nil {
		return "", "", err
	}
	keys, err := Load(root, domain)
	if err != nil || len(keys) == 0 {
		return "", domain, err
	}
	fields, err = Sign(h, br, keys)
	return fields, domain, err
}

// crlfWriter turns bare LF into CRLF, as the SMTP client does when it sends
// the message (textproto's DotWriter), so that what is signed is what is
// sent.
type crlfWriter struct {
	w      io.Writer
	lastCR bool
	buf    []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		if b == '\n' && !c.lastCR {
			c.buf = append(c.buf, '\r')
		}
		c.buf = append(c.buf, b)
		c.lastCR = b == '\r'
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
