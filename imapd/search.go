package imapd

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/imapmsg"
	"github.com/postkit/postkit/maildir/uidlist"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH's
// return options (RFC 4731) and SEARCHRES (RFC 5182: RETURN (SAVE) keeps
// the result for "$"). imapmsg's Matcher evaluates the keys; the file of a
// message is opened only for keys on its contents, its INTERNALDATE and
// size come from the view or the cache, and its Date: from the cached
// envelope when there is one.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel := s.sel
	sel.staticCriteria(criteria)
	mt := imapmsg.NewMatcher(criteria)
	needDate := uses(criteria, func(c *imap.SearchCriteria) bool { return !c.Since.IsZero() || !c.Before.IsZero() })
	needSize := uses(criteria, func(c *imap.SearchCriteria) bool { return c.Larger > 0 || c.Smaller > 0 })
	needSent := uses(criteria, func(c *imap.SearchCriteria) bool { return !c.SentSince.IsZero() || !c.SentBefore.IsZero() })
	rev1 := s.rev1()

	var seqs imap.SeqSet
	var uids imap.UIDSet
	data := &imap.SearchData{}
	for i, m := range sel.msgs {
		if m.gone {
			continue
		}
		info := &imapmsg.MessageInfo{SeqNum: uint32(i + 1), UID: m.uid, Flags: sel.flagsFor(m, rev1), Size: m.vsize}
		var want imapcache.Fields
		if needDate {
			want |= imapcache.FieldInternalDate
		}
		if needSize && m.vsize < 0 {
			want |= imapcache.FieldVSize
		}
		if needSent {
			// Date: from the envelope, INTERNALDATE for messages
			// without one.
			want |= imapcache.FieldEnvelope | imapcache.FieldInternalDate
		}
		if want != 0 {
			e, err := s.cachedFields(m, want)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, s.serverError("search in "+sel.name, err)
			}
			info.InternalDate, info.Envelope = e.InternalDate, e.Envelope
			if m.vsize < 0 {
				m.vsize = e.VSize
			}
			info.Size = m.vsize
		}
		ok, err := mt.Match(info, func() (*imapmsg.Message, error) { return sel.openMessage(m) })
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, s.serverError("search in "+sel.name, err)
		}
		if !ok {
			continue
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
	s.saveCache()
	if kind == imapserver.NumKindSeq {
		data.All = seqs
	} else {
		data.All = uids
	}
	if options != nil && options.ReturnSave {
		sel.searchRes = uids
	}
	return data, nil
}

// cachedFields returns the fields want of m from the cache, reading the
// file (following renames) for those it lacks. A message that is gone
// gives an error wrapping fs.ErrNotExist.
func (s *session) cachedFields(m *message, want imapcache.Fields) (imapcache.Entry, error) {
	sel := s.sel
	base := uidlist.BaseName(filepath.Base(m.file))
	e, have := sel.cache.Lookup(base, want)
	if want&^have == 0 {
		return e, nil
	}
	for try := 0; try < 3; try++ {
		e, err := sel.cache.Fill(base, filepath.Join(string(sel.dir), m.file), want)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return e, err
		}
		found, err := sel.relocate(m)
		if err != nil {
			return e, err
		}
		if !found {
			break
		}
	}
	return e, fs.ErrNotExist
}

// openMessage opens m's file for imapmsg, following renames.
func (sel *selected) openMessage(m *message) (*imapmsg.Message, error) {
	for try := 0; try < 5; try++ {
		msg, err := imapmsg.Open(filepath.Join(string(sel.dir), m.file), m.vsize)
		if !errors.Is(err, fs.ErrNotExist) {
			return msg, err
		}
		found, err := sel.relocate(m)
		if err != nil {
			return nil, err
		}
		if !found {
			break
		}
	}
	return nil, fs.ErrNotExist
}

// staticCriteria replaces "*" in sequence sets and UID sets by the last
// message and "$" by the saved search result (RFC 5182), as imapmsg's
// Matcher wants.
func (sel *selected) staticCriteria(c *imap.SearchCriteria) {
	count, last := uint32(len(sel.msgs)), sel.lastUID()
	for i, set := range c.SeqNum {
		static := make(imap.SeqSet, len(set))
		for j, r := range set {
			static[j] = imap.SeqRange{Start: orLast(r.Start, count), Stop: orLast(r.Stop, count)}
		}
		c.SeqNum[i] = static
	}
	for i, set := range c.UID {
		if imap.IsSearchRes(set) {
			// An empty saved result matches nothing.
			c.UID[i] = append(imap.UIDSet{}, sel.searchRes...)
			continue
		}
		static := make(imap.UIDSet, len(set))
		for j, r := range set {
			static[j] = imap.UIDRange{Start: imap.UID(orLast(uint32(r.Start), uint32(last))), Stop: imap.UID(orLast(uint32(r.Stop), uint32(last)))}
		}
		c.UID[i] = static
	}
	for i := range c.Not {
		sel.staticCriteria(&c.Not[i])
	}
	for i := range c.Or {
		sel.staticCriteria(&c.Or[i][0])
		sel.staticCriteria(&c.Or[i][1])
	}
}

func orLast(n, last uint32) uint32 {
	if n == 0 {
		return last
	}
	return n
}

// uses reports whether pred holds for c or any criteria inside it.
func uses(c *imap.SearchCriteria, pred func(*imap.SearchCriteria) bool) bool {
	if pred(c) {
		return true
	}
	for i := range c.Not {
		if uses(&c.Not[i], pred) {
			return true
		}
	}
	for i := range c.Or {
		if uses(&c.Or[i][0], pred) || uses(&c.Or[i][1], pred) {
			return true
		}
	}
	return false
}
