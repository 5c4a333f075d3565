package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/mailheader"
	"github.com/postkit/postkit/milter"
	"github.com/postkit/postkit/msgauth"
	"github.com/postkit/postkit/spool"
)

// errBareLineEnding is the messageReader's error for a CR or LF that is not
// part of a CRLF.
var errBareLineEnding = errors.New("smtpd: bare CR or LF in the message")

// maxHeaderScan is how much of a submitted message is searched for
// Message-ID and Date. A header section longer than this is left as it is.
const maxHeaderScan = 64 << 10

// maxHeaderBytes bounds the header section of a message, which is held in
// memory to remove forged Authentication-Results fields; a longer one is
// refused with 552 5.3.4.
const maxHeaderBytes = 1 << 20

// headerReaders holds the readers that buffer a message's start for the
// header scan: one 64 KiB buffer per message in flight, not per message.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxHeaderScan) }}

func (s *session) Data(r io.Reader) error {
	s.conn.dataEntries.Add(1)
	s.mu.Lock()
	tx := s.tx
	s.mu.Unlock()
	if tx == nil || len(tx.rcpts) == 0 {
		return smtpError(503, smtp.EnhancedCode{5, 5, 1}, "No valid recipients")
	}
	info := s.conn.info
	rid := fmt.Sprintf("%s.%d", info.id, info.nextTransaction())
	now := time.Now()
	mr := &messageReader{r: r, conn: s.conn, data: s.conn.inData.Load()}
	body := headerReaders.Get().(*bufio.Reader)
	body.Reset(mr)
	defer func() {
		body.Reset(nil)
		headerReaders.Put(body)
	}()
	header, err := mailheader.ReadHeader(body, maxHeaderBytes)
	if err != nil {
		return s.dataFailed(rid, mr, err)
	}
	head := s.received(tx, rid, now)
	if s.srv.submission {
		// RFC 6409 §8.2 and §8.3: a submission server may add a missing
		// Date and Message-ID.
		hasID, hasDate, complete := headerHas(header.Bytes())
		if complete && !hasID {
			head += fmt.Sprintf("Message-ID: <%s.%s@%s>\r\n", rid, newID(), s.srv.hostname)
		}
		if complete && !hasDate {
			head += "Date: " + now.Format(time.RFC1123Z) + "\r\n"
		}
	}
	env := &spool.Envelope{
		From:       tx.from.String(),
		Recipients: tx.rcpts,
		Ret:        string(tx.opts.Return),
		EnvID:      tx.opts.EnvelopeID,
		RequireTLS: tx.opts.RequireTLS,
		SMTPUTF8:   tx.opts.UTF8,
		Body:       strings.ToUpper(string(tx.opts.Body)),
		AuthUser:   s.user,
		ClientAddr: info.client,
		Helo:       tx.helo,
	}
	// RFC 8601 §5: only we may write Authentication-Results fields
	// with our name, whoever the client is. Incoming mail loses the
	// fields of etc/spam-header too: only our filters may set them.
	var spamNames []string
	if s.checked() {
		spamNames = s.spamFieldNames()
	}
	kept, forged, spam := keptFields(header, s.srv.hostname, spamNames)
	filters := s.filters()
	var rest io.Reader = body
	if s.checked() || len(filters) > 0 {
		// The checks and the filters need the whole message before
		// anything is stored: their results go into the header.
		buf := &messageBuffer{}
		defer buf.Close()
		if _, err := io.Copy(buf, body); err != nil {
			return s.dataFailed(rid, mr, err)
		}
		rest = buf.Reader()
		if s.checked() {
			v := s.check(tx, rid, header, io.MultiReader(bytes.NewReader(header.Bytes()), buf.Reader()))
			if v.refuse != nil {
				s.srv.logf("refused conn=%s rid=%s client=%s from=%s reason=%s",
					info.id, rid, info.client, logValue("<"+env.From+">"), logValue(v.refuse.Message))
				return v.refuse
			}
			head += v.field
			env.Junk = v.junk
		}
		if len(filters) > 0 {
			out := s.runFilters(tx, rid, filters, append(milter.ParseHeader([]byte(head)), kept...), buf.Reader)
			switch {
			case out.refuse != nil:
				s.srv.logf("refused conn=%s rid=%s client=%s from=%s reason=milter milter=%s reply=%s",
					info.id, rid, info.client, logValue("<"+env.From+">"), logValue(out.by),
					logValue(fmt.Sprintf("%d %d.%d.%d %s", out.refuse.Code, out.refuse.EnhancedCode[0],
						out.refuse.EnhancedCode[1], out.refuse.EnhancedCode[2], out.refuse.Message)))
				return out.refuse
			case out.discard:
				// The filter's discard: accepted, and dropped.
				s.srv.logf("discarded conn=%s rid=%s client=%s from=%s milter=%s size=%d",
					info.id, rid, info.client, logValue("<"+env.From+">"), logValue(out.by), mr.size)
				return smtpError(250, smtp.EnhancedCode{2, 0, 0}, "OK")
			}
			if out.junk && env.Junk == "" {
				env.Junk = JunkMilter
			}
			head, kept = "", out.header
		}
	}
	s.strippedLog(rid, msgauth.FieldName, forged)
	for name, n := range spam {
		s.strippedLog(rid, name, n)
	}
	// Counted as it is stored, so that the limit holds however many
	// sessions of the user run at once.
	if err := s.messageRefusal(true); err != nil {
		return err
	}
	stored := head + string(milter.FormatHeader(kept)) + string(header.End)
	sp, err := s.srv.openSpool()
	var id string
	if err == nil {
		id, err = sp.Enqueue(env, io.MultiReader(strings.NewReader(stored), rest))
	}
	if err != nil {
		return s.dataFailed(rid, mr, err)
	}
	info.addMessage()
	to := make([]string, len(tx.rcpts))
	for i, r := range tx.rcpts {
		to[i] = "<" + r.Address + ">"
	}
	s.srv.logf("accepted id=%s conn=%s rid=%s client=%s user=%s from=%s to=%s size=%d junk=%s",
		id, info.id, rid, info.client, logValue(orDash(s.user)), logValue("<"+env.From+">"),
		logValue(strings.Join(to, ",")), mr.size, orDash(env.Junk))
	// go-smtp sends a Data error's code and text as the reply; this is how
	// the queue ID gets into the 250.
	return smtpError(250, smtp.EnhancedCode{2, 0, 0}, "OK queued as %s", id)
}

// keptFields returns the fields of header that are stored: all but the
// Authentication-Results fields that claim our host name (counted in
// forged) and the fields named in spamNames (counted by name in spam).
func keptFields(header *mailheader.Header, hostname string, spamNames []string) (kept []milter.Field, forged int, spam map[string]int) {
	for _, f := range header.Fields {
		if f.Is(msgauth.FieldName) && msgauth.IsOurs(f.Value(), hostname) {
			forged++
			continue
		}
		if i := slices.IndexFunc(spamNames, f.Is); i >= 0 {
			if spam == nil {
				spam = map[string]int{}
			}
			spam[spamNames[i]]++
			continue
		}
		kept = append(kept, milter.Field{Name: f.Name, Raw: string(f.Raw)})
	}
	return kept, forged, spam
}

// dataFailed maps a failed Enqueue to the reply: the client's fault is a
// 5xx, anything of ours a 4xx, so a message is never lost to a full disk.
func (s *session) dataFailed(rid string, mr *messageReader, err error) error {
	info := s.conn.info
	var se *smtp.SMTPError
	switch {
	case errors.Is(mr.err, errBareLineEnding):
		s.srv.logf("refused conn=%s rid=%s client=%s reason=bare-line-ending", info.id, rid, info.client)
		// RFC 5321 §2.3.8; refusing the whole message is the SMTP
		// smuggling defence.
		return smtpError(554, smtp.EnhancedCode{5, 6, 0}, "Message refused: bare CR or LF (lines must end with CRLF)")
	case errors.As(mr.err, &se):
		s.srv.logf("refused conn=%s rid=%s client=%s reason=%s", info.id, rid, info.client, logValue(se.Message))
		return se
	case errors.Is(mr.err, smtp.ErrDataReset):
		return mr.err
	case mr.err != nil:
		s.srv.logf("aborted conn=%s rid=%s client=%s reason=%s", info.id, rid, info.client, logValue(mr.err.Error()))
		return smtpError(451, smtp.EnhancedCode{4, 4, 2}, "Connection problem while receiving the message")
	case errors.Is(err, mailheader.ErrHeaderTooLarge):
		s.srv.logf("refused conn=%s rid=%s client=%s reason=header-too-large", info.id, rid, info.client)
		// RFC 3463 X.3.4: message too big for system.
		return smtpError(552, smtp.EnhancedCode{5, 3, 4}, "Message header section over %d bytes", maxHeaderBytes)
	}
	s.srv.logf("error conn=%s rid=%s client=%s what=%s error=%q", info.id, rid, info.client, logValue("storing the message"), err)
	return smtpError(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure storing the message, try again later")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// messageReader reads the message go-smtp hands the session, counts it and
// fails with errBareLineEnding at the first CR or LF that is not a CRLF. For
// a DATA block it also asks conn at the end, which saw the bytes go-smtp
// drops. It remembers the first error of its source.
type messageReader struct {
	r      io.Reader
	conn   *conn
	data   bool // a DATA block, not BDAT chunks
	size   int64
	prevCR bool
	err    error
}

func (m *messageReader) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n, err := m.r.Read(p)
	m.size += int64(n)
	var bare bool
	if bare, m.prevCR = bareLineEnding(p[:n], m.prevCR); bare {
		m.err = errBareLineEnding
	}
	if err == io.EOF && (m.prevCR || m.data && m.conn.dataLast.Load()) {
		m.err = errBareLineEnding
	}
	if m.err != nil {
		return n, m.err
	}
	if err != nil && err != io.EOF {
		m.err = err
	}
	return n, err
}

// bareLineEnding reports whether b has a CR not followed by LF or an LF
// not preceded by CR, given whether the byte before b was a CR, and whether
// b ends with a CR. It hops from CR to CR with bytes.IndexByte rather than
// looking at every byte: this check runs over every message smtpd receives.
func bareLineEnding(b []byte, prevCR bool) (bare, endsCR bool) {
	for len(b) > 0 {
		if prevCR {
			if b[0] != '\n' {
				return true, false
			}
			b, prevCR = b[1:], false
			continue
		}
		i := bytes.IndexByte(b, '\r')
		if i < 0 {
			return bytes.IndexByte(b, '\n') >= 0, false
		}
		if bytes.IndexByte(b[:i], '\n') >= 0 {
			return true, false
		}
		b, prevCR = b[i+1:], true
	}
	return false, prevCR
}

// headerHas reports whether the header section at the start of msg has a
// Message-ID and a Date field, and whether msg holds all of the header
// section (it ends at the first empty line, or with msg when that is short
// of maxHeaderScan).
func headerHas(msg []byte) (messageID, date, complete bool) {
	rest := msg
	for len(rest) > 0 {
		line := rest
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
			if len(msg) >= maxHeaderScan {
				return messageID, date, false
			}
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return messageID, date, true
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		switch strings.ToLower(string(bytes.TrimRight(name, " \t"))) {
		case "message-id":
			messageID = true
		case "date":
			date = true
		}
	}
	return messageID, date, len(msg) < maxHeaderScan
}

// received returns the Received header (RFC 5321 §4.4) for a message of tx:
//
//	Received: from HELO ([IP])
//		by HOSTNAME (postkit) with ESMTPSA (TLS1.3 TLS_AES_128_GCM_SHA256)
//		id CONN.N
//		for <rcpt>; DATE
//
// The protocol names are those of RFC 3848 and RFC 6531 §4.3. The id is
// the connection ID and the transaction's number, which the "accepted" log
// line pairs with the queue ID: Enqueue chooses the queue ID only as it
// stores the message, after this header is written. "for" is given only for
// a single recipient, so that one message does not tell each recipient
// about the others.
func (s *session) received(tx *transaction, rid string, now time.Time) string {
	info := s.conn.info
	from := "unknown"
	if info.ip.IsValid() {
		from = addressLiteral(info.ip)
	}
	proto := "ESMTP"
	if !info.ehlo() {
		proto = "SMTP"
	} else {
		if tx.opts.UTF8 {
			proto = "UTF8SMTP"
		}
		if s.conn.isTLS() {
			proto += "S"
		}
		if s.user != "" {
			proto += "A"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s (%s)\r\n\tby %s (postkit) with %s", safeHelo(tx.helo), from, s.srv.hostname, proto)
	if cs, ok := s.conn.tlsState(); ok {
		fmt.Fprintf(&b, " (%s)", tlsDescription(cs))
	}
	fmt.Fprintf(&b, "\r\n\tid %s", rid)
	if len(tx.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", tx.rcpts[0].Address)
	}
	fmt.Fprintf(&b, "; %s\r\n", now.Format(time.RFC1123Z))
	return b.String()
}

// addressLiteral writes ip as an RFC 5321 §4.1.3 address literal.
func addressLiteral(ip netip.Addr) string {
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.WithZone("").String() + "]"
}

// safeHelo returns the client's HELO argument with anything that could break
// the header (parentheses, semicolons, non-ASCII) replaced by '?', at most
// 255 octets.
func safeHelo(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			b[i] = '?'
		}
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}
