package imapmsg

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/charset"
)

// MessageInfo is what SEARCH knows of a message without opening it.
type MessageInfo struct {
	SeqNum       uint32
	UID          imap.UID
	Flags        []imap.Flag // \Recent included when the session has it
	InternalDate time.Time   // in the zone whose calendar dates SINCE/BEFORE/ON compare
	Size         int64       // RFC822.SIZE
	// Envelope, if known (cached), gives the Date field for SENTBEFORE,
	// SENTON and SENTSINCE without opening the message.
	Envelope *imap.Envelope
}

// A Matcher evaluates one SEARCH criteria (RFC 9051 §6.4.4) against
// messages. It prepares the search strings once; build one per SEARCH
// command. It is safe for concurrent use.
//
// Semantics:
//   - SeqNum and UID sets must be static: the caller replaces "*" and "$"
//     (SEARCHRES) before matching, as go-imap's imapmemserver does.
//   - SINCE, BEFORE and ON compare the calendar date of InternalDate in
//     its own zone; SENTSINCE, SENTBEFORE and SENTON the date of the Date
//     field in the zone written there, falling back to InternalDate when
//     the message has no valid Date field (as Dovecot does). Times of day
//     are disregarded (RFC 9051 §6.4.4).
//   - LARGER and SMALLER compare Size.
//   - Flags and keywords compare case-insensitively.
//   - HEADER (and FROM, TO, CC, BCC, SUBJECT, which go-imap turns into
//     HEADER) matches a top-level field of that name whose value, unfolded
//     and with encoded words (RFC 2047) decoded to UTF-8, contains the
//     string; an empty string matches any message with the field.
//   - BODY matches the decoded text of the message's text/* and message/*
//     leaf parts: transfer encoding undone, charset converted to UTF-8
//     (through go-message's charset tables; unknown charsets are searched
//     as they are). TEXT also matches the decoded header fields of every
//     entity (the message, its parts, the messages it encloses).
//   - Strings compare case-insensitively after Unicode lower-casing.
type Matcher struct {
	c       *imap.SearchCriteria
	needles [][]byte // lower-cased BODY and TEXT strings, without duplicates
	ids     map[string]int
	inText  []bool // needle i comes from a TEXT key (headers count too)
}

// NewMatcher prepares criteria for matching.
func NewMatcher(c *imap.SearchCriteria) *Matcher {
	mt := &Matcher{c: c, ids: map[string]int{}}
	mt.collect(c)
	return mt
}

func (mt *Matcher) collect(c *imap.SearchCriteria) {
	add := func(s string, text bool) {
		key := string(foldText([]byte(s)))
		i, ok := mt.ids[key]
		if !ok {
			i = len(mt.needles)
			mt.ids[key] = i
			mt.needles = append(mt.needles, []byte(key))
			mt.inText = append(mt.inText, false)
		}
		mt.inText[i] = mt.inText[i] || text
	}
	for _, s := range c.Body {
		add(s, false)
	}
	for _, s := range c.Text {
		add(s, true)
	}
	for i := range c.Not {
		mt.collect(&c.Not[i])
	}
	for i := range c.Or {
		mt.collect(&c.Or[i][0])
		mt.collect(&c.Or[i][1])
	}
}

// NeedsMessage reports whether some message might have to be opened:
// the criteria search headers or text, or compare sent dates and
// haveEnvelope is false.
func (mt *Matcher) NeedsMessage(haveEnvelope bool) bool {
	return needsMessage(mt.c, haveEnvelope)
}

func needsMessage(c *imap.SearchCriteria, haveEnvelope bool) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 {
		return true
	}
	if !haveEnvelope && (!c.SentSince.IsZero() || !c.SentBefore.IsZero()) {
		return true
	}
	for i := range c.Not {
		if needsMessage(&c.Not[i], haveEnvelope) {
			return true
		}
	}
	for i := range c.Or {
		if needsMessage(&c.Or[i][0], haveEnvelope) || needsMessage(&c.Or[i][1], haveEnvelope) {
			return true
		}
	}
	return false
}

// Match reports whether the message matches. open is called at most once,
// and only when the criteria need the message's contents; Match closes
// the Message it returns. An error from open or from reading the message
// is returned as is (a message expunged meanwhile is for the caller to
// skip).
func (mt *Matcher) Match(info *MessageInfo, open func() (*Message, error)) (bool, error) {
	ev := &evaluation{mt: mt, info: info, open: open}
	defer ev.close()
	ok := ev.match(mt.c)
	return ok && ev.err == nil, ev.err
}

// evaluation is one message being matched: what has been read of it.
type evaluation struct {
	mt   *Matcher
	info *MessageInfo
	open func() (*Message, error)

	msg      *Message
	opened   bool
	err      error
	sent     time.Time
	sentDone bool
	scanned  bool
	found    []bool // needle i found in a body (or, for TEXT needles, a header)
}

func (ev *evaluation) close() {
	if ev.msg != nil {
		ev.msg.Close()
	}
}

func (ev *evaluation) message() *Message {
	if !ev.opened {
		ev.opened = true
		if ev.open == nil {
			ev.err = errors.New("imapmsg: search needs the message but has no way to open it")
		} else {
			ev.msg, ev.err = ev.open()
		}
	}
	return ev.msg
}

func (ev *evaluation) match(c *imap.SearchCriteria) bool {
	info := ev.info
	for _, s := range c.SeqNum {
		if info.SeqNum == 0 || !s.Contains(info.SeqNum) {
			return false
		}
	}
	for _, s := range c.UID {
		if !s.Contains(info.UID) {
			return false
		}
	}
	if !dateInRange(info.InternalDate, c.Since, c.Before) {
		return false
	}
	if c.Larger != 0 && info.Size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && info.Size >= c.Smaller {
		return false
	}
	for _, f := range c.Flag {
		if !hasFlag(info.Flags, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(info.Flags, f) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if !dateInRange(ev.sentDate(), c.SentSince, c.SentBefore) || ev.err != nil {
			return false
		}
	}
	for _, h := range c.Header {
		if !ev.matchHeader(h) {
			return false
		}
	}
	for _, s := range c.Body {
		if !ev.textFound(s) {
			return false
		}
	}
	for _, s := range c.Text {
		if !ev.textFound(s) {
			return false
		}
	}
	for i := range c.Not {
		if ev.match(&c.Not[i]) || ev.err != nil {
			return false
		}
	}
	for i := range c.Or {
		if !ev.match(&c.Or[i][0]) && !ev.match(&c.Or[i][1]) {
			return false
		}
	}
	return ev.err == nil
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// dateInRange compares calendar dates: since <= date(t) < before.
func dateInRange(t, since, before time.Time) bool {
	if since.IsZero() && before.IsZero() {
		return true
	}
	d := calendarDate(t)
	if !since.IsZero() && d.Before(calendarDate(since)) {
		return false
	}
	if !before.IsZero() && !d.Before(calendarDate(before)) {
		return false
	}
	return true
}

func calendarDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (ev *evaluation) sentDate() time.Time {
	if ev.sentDone {
		return ev.sent
	}
	ev.sentDone = true
	if ev.info.Envelope != nil {
		ev.sent = ev.info.Envelope.Date
	} else if m := ev.message(); m != nil {
		if e, err := m.header(); err != nil {
			ev.err = err
		} else if v, ok := e.header.last("Date"); ok {
			ev.sent = parseDate(v)
		}
	}
	if ev.sent.IsZero() {
		ev.sent = ev.info.InternalDate
	}
	return ev.sent
}

func (ev *evaluation) matchHeader(h imap.SearchCriteriaHeaderField) bool {
	m := ev.message()
	if m == nil {
		return false
	}
	e, err := m.header()
	if err != nil {
		ev.err = err
		return false
	}
	needle := foldText([]byte(h.Value))
	found := false
	e.header.each(func(name, value []byte) bool {
		if !equalFoldASCII(name, h.Key) {
			return true
		}
		if len(needle) == 0 || bytes.Contains(foldText([]byte(decodeHeaderValue(value))), needle) {
			found = true
			return false
		}
		return true
	})
	return found
}

// decodeHeaderValue unfolds a field value and decodes its encoded words.
func decodeHeaderValue(value []byte) string {
	v := unfold(value)
	if !strings.Contains(v, "=?") {
		return v
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

func (ev *evaluation) textFound(s string) bool {
	if !ev.scanned {
		ev.scanned = true
		ev.scan()
	}
	if ev.err != nil {
		return false
	}
	return ev.found[ev.mt.ids[string(foldText([]byte(s)))]]
}

// scan searches the whole message once for every BODY and TEXT string.
func (ev *evaluation) scan() {
	mt := ev.mt
	ev.found = make([]bool, len(mt.needles))
	m := ev.message()
	if m == nil {
		return
	}
	top, err := m.parse()
	if err != nil {
		ev.err = err
		return
	}
	anyText := false
	for _, t := range mt.inText {
		anyText = anyText || t
	}
	ts := newTextSearch(mt.needles, ev.found)
	defer ts.release()
	var walk func(e *entity) bool
	walk = func(e *entity) bool {
		if anyText {
			if !ts.headers(e.header, mt.inText) {
				return false
			}
		}
		switch {
		case e.multipart:
			for _, c := range e.children {
				if !walk(c) {
					return false
				}
			}
		case e.msg != nil:
			return walk(e.msg)
		case e.mime.typ == "text" || e.mime.typ == "message":
			if err := m.searchPart(e, ts); err != nil {
				if errors.Is(err, errAllFound) {
					return false
				}
				ev.err = err
				return false
			}
		}
		return true
	}
	walk(top)
}

// searchPart feeds the decoded text of a leaf part to ts.
func (m *Message) searchPart(e *entity, ts *textSearch) error {
	ts.reset()
	cs := strings.ToLower(e.mime.params["charset"])
	var dst io.Writer = ts
	var buf *bytes.Buffer
	switch cs {
	case "", "us-ascii", "utf-8", "utf8", "ascii":
	default:
		buf = new(bytes.Buffer)
		dst = buf
	}
	d, _ := newDecoder(e.mime.encoding, dst)
	var err error
	if d == nil {
		err = copyRaw(dst, m.r, e.body, e.end)
	} else if err = copyRaw(d, m.r, e.body, e.end); err == nil {
		err = d.Close()
	}
	if err != nil || buf == nil {
		if err == nil {
			err = ts.flush()
		}
		return err
	}
	var r io.Reader = buf
	if cr, cerr := charset.Reader(cs, bytes.NewReader(buf.Bytes())); cerr == nil {
		r = cr
	}
	if _, err := io.Copy(ts, r); err != nil {
		return err
	}
	return ts.flush()
}

// copyRaw writes the file range [start, end) as it is stored.
func copyRaw(dst io.Writer, r io.ReaderAt, start, end int64) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for pos := start; pos < end; {
		n := int(min(int64(len(buf)), end-pos))
		got, err := r.ReadAt(buf[:n], pos)
		if got == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := dst.Write(buf[:got]); err != nil {
			return err
		}
		pos += int64(got)
	}
	return nil
}

var errAllFound = errors.New("imapmsg: every string found")

// textSearch looks for several lower-cased strings at once in text written
// to it in pieces, keeping enough of each piece's end to find strings
// that straddle two.
type textSearch struct {
	needles [][]byte
	found   []bool
	left    int
	maxLen  int
	window  []byte // lower-cased tail of the text so far, then the new piece
	partial []byte // an incomplete UTF-8 sequence held back
	joined  []byte // partial and the next piece
	raw     []byte // a header field being searched
	line    []byte // the same, lower-cased
}

var textSearchPool = sync.Pool{New: func() any { return new(textSearch) }}

func newTextSearch(needles [][]byte, found []bool) *textSearch {
	ts := textSearchPool.Get().(*textSearch)
	ts.needles, ts.found, ts.left, ts.maxLen = needles, found, len(needles), 0
	ts.reset()
	for i, n := range needles {
		ts.maxLen = max(ts.maxLen, len(n))
		if len(n) == 0 {
			found[i] = true
			ts.left--
		}
	}
	return ts
}

// release gives the search's buffers back for reuse.
func (ts *textSearch) release() {
	ts.needles, ts.found = nil, nil
	textSearchPool.Put(ts)
}

// reset starts a new text: nothing straddles two parts.
func (ts *textSearch) reset() {
	ts.window = ts.window[:0]
	ts.partial = ts.partial[:0]
}

func (ts *textSearch) Write(p []byte) (int, error) {
	if ts.left == 0 {
		return 0, errAllFound
	}
	n := len(p)
	if len(ts.partial) > 0 {
		ts.joined = append(append(ts.joined[:0], ts.partial...), p...)
		p = ts.joined
		ts.partial = ts.partial[:0]
	}
	// Hold back a rune cut at the end, so that it is lower-cased whole.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	ts.partial = append(ts.partial, p[cut:]...)
	ts.search(p[:cut])
	if ts.left == 0 {
		return n, errAllFound
	}
	return n, nil
}

// flush searches what was held back at the end of a text.
func (ts *textSearch) flush() error {
	if len(ts.partial) > 0 {
		ts.joined = append(ts.joined[:0], ts.partial...)
		ts.partial = ts.partial[:0]
		ts.search(ts.joined)
	}
	if ts.left == 0 {
		return errAllFound
	}
	return nil
}

func (ts *textSearch) search(p []byte) {
	ts.window = appendFolded(ts.window, p)
	for i, n := range ts.needles {
		if !ts.found[i] && bytes.Contains(ts.window, n) {
			ts.found[i] = true
			ts.left--
		}
	}
	if tail := max(ts.maxLen-1, 0); len(ts.window) > tail {
		ts.window = append(ts.window[:0], ts.window[len(ts.window)-tail:]...)
	}
}

// headers searches the decoded fields of a header ("Name: value") for the
// strings marked in text.
func (ts *textSearch) headers(h header, text []bool) bool {
	ok := true
	h.each(func(name, value []byte) bool {
		raw := append(append(ts.raw[:0], name...), ':', ' ')
		n := len(raw)
		raw = appendUnfolded(raw, value)
		if bytes.Contains(raw[n:], encodedWordStart) {
			raw = append(raw[:n], decodeHeaderValue(value)...)
		}
		ts.raw = raw
		ts.line = appendFolded(ts.line[:0], raw)
		for i, needle := range ts.needles {
			if text[i] && !ts.found[i] && bytes.Contains(ts.line, needle) {
				ts.found[i] = true
				ts.left--
			}
		}
		if ts.left == 0 {
			ok = false
		}
		return ok
	})
	return ok
}

var encodedWordStart = []byte("=?")

// appendUnfolded appends what unfold returns, without allocating.
func appendUnfolded(dst, v []byte) []byte {
	start := len(dst)
	for i, c := range v {
		switch {
		case c == 0, c == '\n':
		case c == '\r' && i+1 < len(v) && v[i+1] == '\n':
		case (c == ' ' || c == '\t' || c == '\r') && len(dst) == start:
		default:
			dst = append(dst, c)
		}
	}
	for len(dst) > start && (dst[len(dst)-1] == ' ' || dst[len(dst)-1] == '\t' || dst[len(dst)-1] == '\r') {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// foldText lower-cases text for comparison: ASCII directly, anything else
// with Unicode's lower-case mapping.
func foldText(p []byte) []byte {
	return appendFolded(nil, p)
}

func appendFolded(dst, p []byte) []byte {
	ascii := true
	for _, c := range p {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		return append(dst, bytes.ToLower(p)...)
	}
	start := len(dst)
	dst = append(dst, p...)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}
