package imapd

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir/uidlist"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH's
// return options (RFC 4731) and SEARCHRES (RFC 5182: RETURN (SAVE) keeps
// the result for "$"). Keys on flags, sequence numbers, UIDs, sizes and
// INTERNALDATE are checked against the files; keys on the header, body,
// text and Date: go to the message parser, for each message at most once.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel := s.sel
	kw, err := sel.box.Keywords()
	if err != nil {
		return nil, s.serverError("search in "+sel.name, err)
	}
	ctx := &searchContext{s: s, sel: sel, kw: kw, rev1: s.rev1()}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	data := &imap.SearchData{}
	for i, m := range sel.msgs {
		if m.gone {
			continue
		}
		ctx.msg, ctx.seq, ctx.parsed, ctx.parseFailed, ctx.info = m, uint32(i+1), nil, false, nil
		if !ctx.match(criteria) {
			continue
		}
		if ctx.err != nil {
			break
		}
		uids.AddNum(m.uid)
		num := uint32(m.uid)
		if kind == imapserver.NumKindSeq {
			num = uint32(i + 1)
			seqs.AddNum(num)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if ctx.err != nil {
		return nil, s.serverError("search in "+sel.name, ctx.err)
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqs
	} else {
		data.All = uids
	}
	if options != nil && options.ReturnSave {
		sel.searchRes = uids
		sel.saved = true
	}
	return data, nil
}

// searchContext evaluates criteria for one message at a time.
type searchContext struct {
	s    *session
	sel  *selected
	kw   *uidlist.Keywords
	rev1 bool

	msg         *message
	seq         uint32
	info        os.FileInfo
	parsed      parsedMessage
	parseFailed bool
	err         error
}

func (c *searchContext) match(cr *imap.SearchCriteria) bool {
	m := c.msg
	for _, set := range cr.SeqNum {
		if imap.IsSearchRes(set) {
			if !c.sel.searchRes.Contains(m.uid) {
				return false
			}
			continue
		}
		if !containsSeq(set, c.seq, uint32(len(c.sel.msgs))) {
			return false
		}
	}
	for _, set := range cr.UID {
		if imap.IsSearchRes(set) {
			set = c.sel.searchRes
		}
		if !containsUID(set, m.uid, c.sel.lastUID()) {
			return false
		}
	}
	for _, f := range cr.Flag {
		if !c.hasFlag(f) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if c.hasFlag(f) {
			return false
		}
	}
	if cr.Larger > 0 || cr.Smaller > 0 {
		size := c.size()
		if cr.Larger > 0 && size <= cr.Larger {
			return false
		}
		if cr.Smaller > 0 && size >= cr.Smaller {
			return false
		}
	}
	if !cr.Since.IsZero() || !cr.Before.IsZero() {
		info := c.stat()
		if info == nil {
			return false
		}
		// RFC 9051 §6.4.4: INTERNALDATE's date, time and zone ignored.
		d := dateOnly(info.ModTime())
		if !cr.Since.IsZero() && d.Before(dateOnly(cr.Since)) {
			return false
		}
		if !cr.Before.IsZero() && !d.Before(dateOnly(cr.Before)) {
			return false
		}
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i]) {
			return false
		}
	}
	for _, or := range cr.Or {
		if !c.match(&or[0]) && !c.match(&or[1]) {
			return false
		}
	}
	if len(cr.Header) > 0 || len(cr.Body) > 0 || len(cr.Text) > 0 || !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		p := c.parse()
		if p == nil {
			return false
		}
		content := imap.SearchCriteria{Header: cr.Header, Body: cr.Body, Text: cr.Text, SentSince: cr.SentSince, SentBefore: cr.SentBefore}
		if !p.Match(&content) {
			return false
		}
	}
	return true
}

func (c *searchContext) hasFlag(f imap.Flag) bool {
	m := c.msg
	if strings.EqualFold(string(f), `\Recent`) {
		return c.sel.recent[m.uid]
	}
	for _, sf := range systemFlags {
		if strings.EqualFold(string(f), string(sf.flag)) {
			return hasLetter(m.flags, sf.letter)
		}
	}
	letter, ok := c.kw.Letter(string(f))
	return ok && hasLetter(m.flags, letter)
}

func (c *searchContext) size() int64 {
	if c.msg.vsize < 0 {
		c.msg.vsize = fileVSize(filepath.Join(string(c.sel.dir), c.msg.file))
	}
	return c.msg.vsize
}

func (c *searchContext) stat() os.FileInfo {
	if c.info == nil {
		f, err := c.sel.open(c.msg)
		if err != nil || f == nil {
			return nil
		}
		defer f.Close()
		c.info, _ = f.Stat()
	}
	return c.info
}

// parse parses the message once; a message that is gone or cannot be
// read matches no content key.
func (c *searchContext) parse() parsedMessage {
	if c.parsed != nil || c.parseFailed {
		return c.parsed
	}
	c.parseFailed = true
	f, err := c.sel.open(c.msg)
	if err != nil || f == nil {
		return nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil
	}
	p, err := c.s.srv.parser()(f, info.Size())
	if err != nil {
		c.s.logError("search in "+c.sel.name, err)
		return nil
	}
	c.parsed, c.parseFailed = p, false
	return p
}

// containsSeq reports whether set holds seq, "*" being the last message.
func containsSeq(set imap.SeqSet, seq, count uint32) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = count
		}
		if stop == 0 {
			stop = count
		}
		if start > stop {
			start, stop = stop, start
		}
		if start <= seq && seq <= stop {
			return true
		}
	}
	return false
}

// containsUID reports whether set holds uid, "*" being the highest UID.
func containsUID(set imap.UIDSet, uid, last imap.UID) bool {
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if start == 0 {
			start = last
		}
		if stop == 0 {
			stop = last
		}
		if start > stop {
			start, stop = stop, start
		}
		if start <= uid && uid <= stop {
			return true
		}
	}
	return false
}
