package milter

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// Message is what a filter is told about one received message.
type Message struct {
	Hostname   string     // our host name (macro j)
	QueueID    string     // the message's ID in our logs (macro i)
	ClientIP   netip.Addr // invalid when the client is not on IP
	ClientPort uint16
	Helo       string
	TLSVersion string // "TLSv1.3" or empty (macro {tls_version})
	TLSCipher  string // (macro {cipher})
	AuthUser   string // the authenticated user, or empty (macro {auth_authen})
	From       string // the envelope sender without angle brackets
	FromArgs   []string
	Rcpts      []string
	Header     []Field
	// Body is the body, after the empty line that ends the header, with
	// CRLF line endings.
	Body io.Reader
}

// Action is a filter's decision about a message.
type Action int

const (
	// Accept: store the message, with the header changes.
	Accept Action = iota
	// Reject refuses the message permanently (5xx).
	Reject
	// TempFail refuses it for now (4xx).
	TempFail
	// Discard accepts the message and drops it.
	Discard
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case TempFail:
		return "tempfail"
	case Discard:
		return "discard"
	}
	return "unknown"
}

// Result is the outcome of one filter's session.
type Result struct {
	Action Action
	// Stage is the step the decision came at: connect, helo, mail, rcpt,
	// header, eoh, body or eom.
	Stage string
	// Code, Enhanced and Text are the reply the filter chose for a Reject
	// or TempFail (SMFIR_REPLYCODE), or zero and empty when it chose none.
	Code     int
	Enhanced string // "5.7.1", or empty
	Text     string
	// Changes are the header changes to make, for Accept.
	Changes []Change
	// Quarantine is set when the filter asked for the message to be held
	// (SMFIR_QUARANTINE), with its reason (may be empty).
	Quarantine       bool
	QuarantineReason string
	// Ignored describes the filter's requests that were not followed
	// (body, sender and recipient changes, bad header names).
	Ignored []string
}

// Action and protocol masks offered to filters. Version 6 of the protocol
// knows every protocol bit; version 2 only the low seven, which is all a
// filter speaking it is offered when it refuses the others (go-milter's
// client will not downgrade otherwise).
const (
	actionMask = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	protoMask  = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo |
		gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoHeaderReply |
		gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptSkip | gomilter.OptNoConnReply |
		gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply | gomilter.OptNoDataReply |
		gomilter.OptNoUnknownReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply | gomilter.OptHeaderLeadingSpace
	protoMaskV2 = protoMask & 0x7f
)

// maxChanges bounds the modifications taken from one filter.
const maxChanges = 1000

// Check runs msg through the filter f in one milter session that ends
// before deadline, however slow the filter. An error means the filter
// could not be asked (not listening, too slow, broken protocol): the
// caller decides what becomes of the message then.
func (f Filter) Check(msg *Message, deadline time.Time) (*Result, error) {
	s, err := f.session(deadline, actionMask, protoMask)
	if errors.Is(err, gomilter.ErrUnsupportedMilterVersion) {
		s, err = f.session(deadline, actionMask, protoMaskV2)
	}
	if err != nil {
		return nil, fmt.Errorf("milter: %s: %w", f.Spec, err)
	}
	defer s.Close()
	res, err := converse(s, msg)
	if err != nil {
		return nil, fmt.Errorf("milter: %s: %w", f.Spec, err)
	}
	return res, nil
}

// session connects to the filter and negotiates the options.
func (f Filter) session(deadline time.Time, actions gomilter.OptAction, proto gomilter.OptProtocol) (*gomilter.ClientSession, error) {
	d := &dialer{connectTimeout: f.ConnectTimeout, timeout: f.Timeout, deadline: deadline}
	c := gomilter.NewClientWithOptions(f.Network, f.Address, gomilter.ClientOptions{
		Dialer:       d,
		ReadTimeout:  f.Timeout,
		WriteTimeout: f.Timeout,
		ActionMask:   actions,
		ProtocolMask: proto,
	})
	s, err := c.Session()
	if err != nil {
		// go-milter leaves the connection open when the negotiation
		// fails.
		if d.conn != nil {
			d.conn.Close()
		}
		return nil, err
	}
	return s, nil
}

// converse runs the steps of one message and reads the filter's answers.
func converse(s *gomilter.ClientSession, msg *Message) (*Result, error) {
	leadSpace := s.ProtocolOption(gomilter.OptHeaderLeadingSpace)
	family, addr := gomilter.FamilyUnknown, ""
	if msg.ClientIP.IsValid() {
		ip := msg.ClientIP.Unmap()
		family, addr = gomilter.FamilyInet, ip.String()
		if ip.Is6() {
			family = gomilter.FamilyInet6
		}
	}
	type step struct {
		stage  string
		macros []any // a gomilter.Code and name, value pairs
		run    func() (*gomilter.Action, error)
	}
	steps := []step{
		{"connect", []any{gomilter.CodeConn, "j", msg.Hostname, "{daemon_name}", "postkit", "{client_addr}", addr,
			"{client_port}", strconv.Itoa(int(msg.ClientPort)), "{client_name}", "unknown"},
			func() (*gomilter.Action, error) { return s.Conn("unknown", family, msg.ClientPort, addr) }},
		{"helo", []any{gomilter.CodeHelo, "{tls_version}", msg.TLSVersion, "{cipher}", msg.TLSCipher},
			func() (*gomilter.Action, error) { return s.Helo(msg.Helo) }},
		{"mail", []any{gomilter.CodeMail, "i", msg.QueueID, "{mail_addr}", msg.From, "{auth_authen}", msg.AuthUser},
			func() (*gomilter.Action, error) { return s.Mail(msg.From, msg.FromArgs) }},
	}
	for _, r := range msg.Rcpts {
		steps = append(steps, step{"rcpt", []any{gomilter.CodeRcpt, "{rcpt_addr}", r},
			func() (*gomilter.Action, error) { return s.Rcpt(r, nil) }})
	}
	for _, f := range msg.Header {
		if f.Name == "" {
			continue
		}
		steps = append(steps, step{"header", nil,
			func() (*gomilter.Action, error) { return s.HeaderField(f.Name, f.value(leadSpace)) }})
	}
	steps = append(steps, step{"eoh", []any{gomilter.CodeEOH, "i", msg.QueueID}, s.HeaderEnd})
	for _, st := range steps {
		if st.macros != nil {
			if err := sendMacros(s, st.macros); err != nil {
				return nil, err
			}
		}
		act, err := st.run()
		if err != nil {
			return nil, err
		}
		if act.Code != gomilter.ActContinue {
			return decided(st.stage, act)
		}
	}
	if act, err := sendBody(s, msg.Body); err != nil || act != nil {
		if err != nil {
			return nil, err
		}
		return decided("body", act)
	}
	if err := sendMacros(s, []any{gomilter.CodeEOB, "i", msg.QueueID}); err != nil {
		return nil, err
	}
	mods, act, err := s.End()
	if err != nil {
		return nil, err
	}
	res, err := decided("eom", act)
	if err != nil || res.Action != Accept {
		return res, err
	}
	modified(res, mods, leadSpace)
	return res, nil
}

func sendMacros(s *gomilter.ClientSession, m []any) error {
	kv := make([]string, 0, len(m)-1)
	for _, v := range m[1:] {
		kv = append(kv, v.(string))
	}
	return s.Macros(m[0].(gomilter.Code), kv...)
}

// sendBody sends the body in chunks until the end, or until the filter
// decides (its action is returned) or asks to skip the rest (SMFIR_SKIP).
func sendBody(s *gomilter.ClientSession, body io.Reader) (*gomilter.Action, error) {
	if body == nil {
		return nil, nil
	}
	buf := make([]byte, gomilter.MaxBodyChunk)
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			act, serr := s.BodyChunk(buf[:n])
			if serr != nil {
				return nil, serr
			}
			switch act.Code {
			case gomilter.ActSkip:
				return nil, nil
			case gomilter.ActContinue:
			default:
				return act, nil
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("reading the message: %w", err)
		}
	}
}

// decided turns the action that ended a session into a Result.
func decided(stage string, act *gomilter.Action) (*Result, error) {
	res := &Result{Stage: stage}
	switch act.Code {
	case gomilter.ActAccept, gomilter.ActContinue:
		res.Action = Accept
	case gomilter.ActReject:
		res.Action = Reject
	case gomilter.ActTempFail:
		res.Action = TempFail
	case gomilter.ActDiscard:
		res.Action = Discard
	case gomilter.ActReplyCode:
		code, enhanced, text, ok := ParseReply(act.SMTPCode, act.SMTPText)
		if !ok {
			return nil, fmt.Errorf("%s: bad reply %d %.80q", stage, act.SMTPCode, act.SMTPText)
		}
		res.Action, res.Code, res.Enhanced, res.Text = Reject, code, enhanced, text
		if code < 500 {
			res.Action = TempFail
		}
	default:
		return nil, fmt.Errorf("%s: unexpected action %q", stage, rune(act.Code))
	}
	return res, nil
}

// modified adds the filter's modifications at the end of a message to res.
func modified(res *Result, mods []gomilter.ModifyAction, leadSpace bool) {
	for _, m := range mods {
		var kind ChangeKind
		switch m.Code {
		case gomilter.ActQuarantine:
			res.Quarantine, res.QuarantineReason = true, printable(m.Reason, maxReplyText)
			continue
		case gomilter.ActAddHeader:
			kind = AddField
		case gomilter.ActInsertHeader:
			kind = InsertField
		case gomilter.ActChangeHeader:
			kind = ChangeField
		default:
			res.Ignored = append(res.Ignored, fmt.Sprintf("unoffered modification %q", rune(m.Code)))
			continue
		}
		if len(res.Changes) >= maxChanges {
			res.Ignored = append(res.Ignored, fmt.Sprintf("more than %d header changes", maxChanges))
			break
		}
		index := int(min(m.HeaderIndex, 1<<30))
		c, ok := newChange(kind, index, m.HeaderName, m.HeaderValue, leadSpace)
		if !ok {
			res.Ignored = append(res.Ignored, fmt.Sprintf("%s of a field with a bad name %.40q", kind, m.HeaderName))
			continue
		}
		res.Changes = append(res.Changes, c)
	}
}

// maxReplyText bounds the text taken from a filter's reply.
const maxReplyText = 400

// ParseReply checks the reply a filter chose (SMFIR_REPLYCODE): a 4xx or
// 5xx code and text, which may start with an enhanced status code of the
// same class (RFC 3463) and may have several lines ("550-5.7.1 a\r\n550
// 5.7.1 b", smfi_setmlreply), which are joined. The text is cut to printable
// ASCII.
func ParseReply(code int, text string) (int, string, string, bool) {
	if code < 400 || code > 599 {
		return 0, "", "", false
	}
	var parts []string
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if i > 0 && len(line) >= 4 && line[:3] == strconv.Itoa(code) && (line[3] == '-' || line[3] == ' ') {
			line = line[4:]
		}
		enh, rest := splitEnhanced(line, code/100)
		if enh != "" && i > 0 {
			line = rest // the enhanced code is given once
		}
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	joined := strings.Join(parts, " ")
	enhanced, rest := splitEnhanced(joined, code/100)
	return code, enhanced, printable(strings.TrimSpace(rest), maxReplyText), true
}

// splitEnhanced splits an enhanced status code of class ("5.7.1 ") from
// the start of s.
func splitEnhanced(s string, class int) (string, string) {
	word, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(class) {
		return "", s
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return "", s
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return "", s
			}
		}
	}
	return word, rest
}

// printable keeps the printable ASCII of s, at most n octets.
func printable(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c >= ' ' && c < 0x7f {
			b = append(b, c)
		}
	}
	return string(b)
}

// dialer connects to the filter within the connect timeout and the
// session's deadline, and keeps the connection so that it can be closed
// when go-milter gives up on it.
type dialer struct {
	connectTimeout, timeout time.Duration
	deadline                time.Time
	conn                    *deadlineConn
}

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.connectTimeout, Deadline: d.deadline}
	c, err := nd.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	d.conn = &deadlineConn{Conn: c, deadline: d.deadline, timeout: d.timeout}
	d.conn.SetDeadline(time.Time{})
	return d.conn, nil
}

// deadlineConn keeps every read and write within the session's deadline:
// go-milter sets a deadline per packet and clears it afterwards, which
// would let a filter that keeps sending progress packets hold the message
// for ever. A cleared deadline becomes the packet timeout again, so that
// nothing waits without bound.
type deadlineConn struct {
	net.Conn
	deadline time.Time
	timeout  time.Duration
}

func (c *deadlineConn) bound(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now().Add(c.timeout)
	}
	if t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *deadlineConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.bound(t)) }
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.bound(t)) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.bound(t))
}
