package spool

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// envelopeMagic starts the first line of every envelope; the version follows.
const (
	envelopeMagic   = "postkit-envelope"
	envelopeVersion = 1
)

// ErrInvalid is wrapped by the errors for envelopes that cannot be stored or
// parsed: a bug in the caller or a damaged file, never worth a retry.
var ErrInvalid = errors.New("spool: invalid envelope")

// RecipientState is where a recipient is in its delivery.
type RecipientState int

// The states of a recipient. A new recipient is Pending; the queue runner
// moves it to Delivered or Failed (a permanent failure, or retries given up)
// and never back.
const (
	Pending RecipientState = iota
	Delivered
	Failed
)

var stateNames = [...]string{Pending: "pending", Delivered: "delivered", Failed: "failed"}

func (s RecipientState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "state(" + strconv.Itoa(int(s)) + ")"
	}
	return stateNames[s]
}

// Recipient is one envelope recipient with its own delivery state.
type Recipient struct {
	Address string
	// ORCPT is the DSN original recipient, "addr-type;address" with the
	// address xtext-decoded (RFC 3461 section 4.2); empty if not given.
	ORCPT string
	// Notify is the DSN NOTIFY value in upper case: "NEVER", or a comma
	// separated list of SUCCESS, FAILURE and DELAY (RFC 3461 section 4.1);
	// empty if not given (then failures and delays are reported).
	Notify      string
	State       RecipientState
	Attempts    int
	LastError   string
	LastAttempt time.Time
}

// Body types, the ESMTP BODY parameter (RFC 6152, RFC 3030). An empty Body
// means the client gave none: 7BIT.
const (
	Body7Bit       = "7BIT"
	Body8BitMIME   = "8BITMIME"
	BodyBinaryMIME = "BINARYMIME"
)

// Envelope is everything about a queued message except its content.
type Envelope struct {
	ID string
	// From is the reverse path, empty for the null sender <>.
	From       string
	Recipients []Recipient
	// Ret is the DSN RET parameter, "FULL" or "HDRS", and EnvID the
	// xtext-decoded ENVID (RFC 3461 sections 4.3, 4.4); empty if not given.
	Ret, EnvID string
	// RequireTLS is the REQUIRETLS MAIL parameter (RFC 8689), SMTPUTF8 the
	// SMTPUTF8 one (RFC 6531).
	RequireTLS, SMTPUTF8 bool
	// Body is one of the Body constants or empty.
	Body string
	// Arrival is when the message was enqueued; NextAttempt when the queue
	// runner should next try its pending recipients.
	Arrival, NextAttempt time.Time
	// Hold keeps the queue runner away from the entry until it is released.
	Hold bool
	// Who submitted the message: the authenticated user if any, and the
	// client's address and HELO name (empty for local submissions).
	AuthUser, ClientAddr, Helo string
	// DelayNotified records that a delay DSN went to the sender already.
	DelayNotified bool
	// Junk, when not empty, says the message goes into each local
	// recipient's Junk folder rather than INBOX, and why: smtpd sets
	// "dmarc" when the sender's domain asks for quarantine (RFC 7489
	// §6.3), "spf" when etc/spf-fail says junk, "milter" when a content
	// filter quarantined it.
	Junk string
	// LocalUID is the decimal user ID of the local user who submitted the
	// message with sendmail: taken from the process when it enqueued
	// directly, from the owner of its file when it came through maildrop/
	// (see Pickup). Empty for mail from the network.
	LocalUID string
}

// Pending reports whether some recipient still waits for delivery.
func (e *Envelope) Pending() bool {
	for _, r := range e.Recipients {
		if r.State == Pending {
			return true
		}
	}
	return false
}

// MarshalEnvelope returns env in the envelope file format (see the package
// documentation). It fails, wrapping ErrInvalid, on an envelope that
// ParseEnvelope would refuse, so everything written to the spool parses.
func MarshalEnvelope(env *Envelope) ([]byte, error) {
	if err := env.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d\n", envelopeMagic, envelopeVersion)
	line := func(indent, key, value string) {
		b.WriteString(indent)
		b.WriteString(key)
		b.WriteByte(' ')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	optional := func(indent, key, value string) {
		if value != "" {
			line(indent, key, quote(value))
		}
	}
	line("", "id", env.ID)
	line("", "from", quote(env.From))
	line("", "arrival", formatTime(env.Arrival))
	line("", "next-attempt", formatTime(env.NextAttempt))
	line("", "hold", formatBool(env.Hold))
	line("", "delay-notified", formatBool(env.DelayNotified))
	optional("", "body", env.Body)
	line("", "smtputf8", formatBool(env.SMTPUTF8))
	line("", "requiretls", formatBool(env.RequireTLS))
	optional("", "ret", env.Ret)
	optional("", "envid", env.EnvID)
	optional("", "auth-user", env.AuthUser)
	optional("", "client-addr", env.ClientAddr)
	optional("", "helo", env.Helo)
	optional("", "junk", env.Junk)
	optional("", "local-uid", env.LocalUID)
	for _, r := range env.Recipients {
		line("", "rcpt", quote(r.Address))
		line("  ", "state", r.State.String())
		line("  ", "attempts", strconv.Itoa(r.Attempts))
		if !r.LastAttempt.IsZero() {
			line("  ", "last-attempt", formatTime(r.LastAttempt))
		}
		optional("  ", "error", r.LastError)
		optional("  ", "orcpt", r.ORCPT)
		optional("  ", "notify", r.Notify)
	}
	return b.Bytes(), nil
}

// ParseEnvelope parses the envelope file format strictly: a wrong version,
// an unknown or repeated key, a missing required key, a malformed value or a
// missing final newline is an error naming the line, wrapping ErrInvalid.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrInvalid)
	}
	if data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: no newline at the end (truncated?)", ErrInvalid)
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	magic, version, ok := strings.Cut(lines[0], " ")
	if !ok || magic != envelopeMagic {
		return nil, fmt.Errorf("%w: line 1: want %q, got %.40q", ErrInvalid, envelopeMagic+" "+strconv.Itoa(envelopeVersion), lines[0])
	}
	if version != strconv.Itoa(envelopeVersion) {
		return nil, fmt.Errorf("%w: line 1: version %.20q not supported (this program reads version %d)", ErrInvalid, version, envelopeVersion)
	}

	p := parser{env: &Envelope{Recipients: []Recipient{}}, seen: map[string]bool{}}
	for i, l := range lines[1:] {
		if err := p.line(l); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, i+2, err)
		}
	}
	if err := p.finishRecipient(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, len(lines), err)
	}
	for _, k := range requiredKeys {
		if !p.seen[k] {
			return nil, fmt.Errorf("%w: missing %q line", ErrInvalid, k)
		}
	}
	if err := p.env.validate(); err != nil {
		return nil, err
	}
	return p.env, nil
}

var (
	requiredKeys          = []string{"id", "from", "arrival", "next-attempt", "hold", "delay-notified", "smtputf8", "requiretls"}
	requiredRecipientKeys = []string{"state", "attempts"}
)

type parser struct {
	env      *Envelope
	seen     map[string]bool // envelope keys so far
	rcpt     *Recipient      // the recipient whose lines follow, if any
	rcptSeen map[string]bool
}

func (p *parser) line(l string) error {
	if rest, ok := strings.CutPrefix(l, "  "); ok {
		return p.recipientLine(rest)
	}
	key, raw, ok := strings.Cut(l, " ")
	if !ok {
		return fmt.Errorf("want %q, got %.40q", "key value", l)
	}
	if key == "rcpt" {
		if err := p.finishRecipient(); err != nil {
			return err
		}
		addr, err := unquote(raw)
		if err != nil {
			return fmt.Errorf("rcpt: %v", err)
		}
		p.env.Recipients = append(p.env.Recipients, Recipient{Address: addr})
		p.rcpt = &p.env.Recipients[len(p.env.Recipients)-1]
		p.rcptSeen = map[string]bool{}
		return nil
	}
	if p.rcpt != nil {
		return fmt.Errorf("envelope key %.40q after the recipients", key)
	}
	if p.seen[key] {
		return fmt.Errorf("%.40q repeated", key)
	}
	p.seen[key] = true
	e := p.env
	var err error
	switch key {
	case "id":
		e.ID, err = token(raw)
	case "from":
		e.From, err = unquote(raw)
	case "arrival":
		e.Arrival, err = parseTime(raw)
	case "next-attempt":
		e.NextAttempt, err = parseTime(raw)
	case "hold":
		e.Hold, err = parseBool(raw)
	case "delay-notified":
		e.DelayNotified, err = parseBool(raw)
	case "body":
		e.Body, err = unquote(raw)
	case "smtputf8":
		e.SMTPUTF8, err = parseBool(raw)
	case "requiretls":
		e.RequireTLS, err = parseBool(raw)
	case "ret":
		e.Ret, err = unquote(raw)
	case "envid":
		e.EnvID, err = unquote(raw)
	case "auth-user":
		e.AuthUser, err = unquote(raw)
	case "client-addr":
		e.ClientAddr, err = unquote(raw)
	case "helo":
		e.Helo, err = unquote(raw)
	case "junk":
		e.Junk, err = unquote(raw)
	case "local-uid":
		e.LocalUID, err = token(raw)
	default:
		return fmt.Errorf("unknown key %.40q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	return nil
}

func (p *parser) recipientLine(l string) error {
	if p.rcpt == nil {
		return errors.New("indented line before the first rcpt")
	}
	key, raw, ok := strings.Cut(l, " ")
	if !ok {
		return fmt.Errorf("want %q, got %.40q", "  key value", l)
	}
	if p.rcptSeen[key] {
		return fmt.Errorf("%.40q repeated in one recipient", key)
	}
	p.rcptSeen[key] = true
	r := p.rcpt
	var err error
	switch key {
	case "state":
		r.State, err = parseState(raw)
	case "attempts":
		r.Attempts, err = parseCount(raw)
	case "last-attempt":
		r.LastAttempt, err = parseTime(raw)
	case "error":
		r.LastError, err = unquote(raw)
	case "orcpt":
		r.ORCPT, err = unquote(raw)
	case "notify":
		r.Notify, err = unquote(raw)
	default:
		return fmt.Errorf("unknown recipient key %.40q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	return nil
}

// finishRecipient checks that the recipient read so far had its required lines.
func (p *parser) finishRecipient() error {
	if p.rcpt == nil {
		return nil
	}
	for _, k := range requiredRecipientKeys {
		if !p.rcptSeen[k] {
			return fmt.Errorf("recipient %.60q has no %q line", p.rcpt.Address, k)
		}
	}
	return nil
}

// validate checks what both MarshalEnvelope and ParseEnvelope require.
func (e *Envelope) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if !ValidID(e.ID) {
		return bad("id %.40q is not a queue id", e.ID)
	}
	switch e.Body {
	case "", Body7Bit, Body8BitMIME, BodyBinaryMIME:
	default:
		return bad("body %.40q is none of 7BIT, 8BITMIME, BINARYMIME", e.Body)
	}
	if e.LocalUID != "" && !validUID(e.LocalUID) {
		return bad("local-uid %.20q is not a user ID (0 to 4294967295)", e.LocalUID)
	}
	switch e.Ret {
	case "", "FULL", "HDRS":
	default:
		return bad("ret %.40q is neither FULL nor HDRS", e.Ret)
	}
	for _, t := range []time.Time{e.Arrival, e.NextAttempt} {
		if err := checkTime(t); err != nil {
			return bad("%v", err)
		}
	}
	if len(e.Recipients) == 0 {
		return bad("no recipients")
	}
	for _, r := range e.Recipients {
		if r.Address == "" {
			return bad("empty recipient address")
		}
		if r.State < Pending || r.State > Failed {
			return bad("recipient %.60q: unknown state %d", r.Address, int(r.State))
		}
		if r.Attempts < 0 || r.Attempts > maxAttempts {
			return bad("recipient %.60q: attempts %d outside 0-%d", r.Address, r.Attempts, maxAttempts)
		}
		if err := checkTime(r.LastAttempt); err != nil {
			return bad("recipient %.60q: %v", r.Address, err)
		}
		if err := checkNotify(r.Notify); err != nil {
			return bad("recipient %.60q: %v", r.Address, err)
		}
	}
	return nil
}

// checkNotify accepts what RFC 3461 section 4.1 allows: NEVER alone, or
// SUCCESS, FAILURE and DELAY each at most once.
func checkNotify(n string) error {
	if n == "" || n == "NEVER" {
		return nil
	}
	seen := map[string]bool{}
	for _, v := range strings.Split(n, ",") {
		switch v {
		case "SUCCESS", "FAILURE", "DELAY":
		default:
			return fmt.Errorf("notify %.60q: %.20q is none of NEVER, SUCCESS, FAILURE, DELAY (NEVER only alone)", n, v)
		}
		if seen[v] {
			return fmt.Errorf("notify %.60q: %s repeated", n, v)
		}
		seen[v] = true
	}
	return nil
}

// QuoteValue writes a value as the envelope format does, for other
// line-oriented spool files (the queue runner's journal): bare when it is a
// plain token of printable ASCII, else as a Go double-quoted string
// (strconv.Quote), which escapes newlines and every other control
// character, so no value can start a line of its own.
func QuoteValue(s string) string { return quote(s) }

// UnquoteValue reads back what QuoteValue wrote.
func UnquoteValue(raw string) (string, error) { return unquote(raw) }

func quote(s string) string {
	if isToken(s) {
		return s
	}
	return strconv.Quote(s)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func unquote(raw string) (string, error) {
	if strings.HasPrefix(raw, `"`) {
		s, err := strconv.Unquote(raw)
		if err != nil {
			return "", fmt.Errorf("bad quoted string %.60q", raw)
		}
		return s, nil
	}
	return token(raw)
}

func token(raw string) (string, error) {
	if !isToken(raw) {
		return "", fmt.Errorf("%.60q is neither a plain word nor a quoted string", raw)
	}
	return raw, nil
}

// Times are RFC 3339 in UTC with up to nanosecond precision. Offsets other
// than Z are refused: one spelling per instant, and no year past 9999.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(raw string) (time.Time, error) {
	if !strings.HasSuffix(raw, "Z") {
		return time.Time{}, fmt.Errorf("%.40q is not an RFC 3339 time in UTC (ending in Z)", raw)
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, fmt.Errorf("%.40q is not an RFC 3339 time", raw)
	}
	return t.UTC(), nil
}

func checkTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %v outside years 0-9999", t)
	}
	return nil
}

func formatBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func parseBool(raw string) (bool, error) {
	switch raw {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%.20q is neither yes nor no", raw)
}

func parseState(raw string) (RecipientState, error) {
	for s, name := range stateNames {
		if raw == name {
			return RecipientState(s), nil
		}
	}
	return 0, fmt.Errorf("%.20q is none of pending, delivered, failed", raw)
}

const maxAttempts = 999999999

// validUID accepts a user ID in decimal without sign or leading zeros.
func validUID(s string) bool {
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && strconv.FormatUint(n, 10) == s
}

// parseCount accepts a decimal count without sign or leading zeros.
func parseCount(raw string) (int, error) {
	if raw == "" || len(raw) > 9 || raw[0] == '0' && len(raw) > 1 || strings.Trim(raw, "0123456789") != "" {
		return 0, fmt.Errorf("%.20q is not a count (0 to 999999999)", raw)
	}
	return strconv.Atoi(raw)
}
