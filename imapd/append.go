package imapd

import (
	"errors"
	"sort"
	"syscall"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// Append stores a message (RFC 9051 §6.3.12) through maildir.Deliver, the
// durable path: the tagged OK follows only once the file and its
// directory are fsynced. The flags go into the file name (keywords get
// letters in dovecot-keywords), the date-time becomes the file's mtime,
// which is INTERNALDATE. The answer carries APPENDUID (RFC 4315). A
// mailbox that does not exist is NO [TRYCREATE]; a message over the
// APPENDLIMIT is NO [TOOBIG] (go-imap refuses it before reading).
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	canon, d, err := s.existingFolder(mailbox, imap.ResponseCodeTryCreate)
	if err != nil {
		return nil, err
	}
	if r.Size() == 0 {
		return nil, noError(imap.ResponseCodeCannot, "Empty message")
	}
	box := s.openBox(d)
	letters, err := lettersOf(options.Flags, box, true)
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return nil, err
	}
	if err != nil {
		return nil, s.serverError("append to "+canon, err)
	}
	delivered, err := d.Deliver(r, maildir.DeliverOptions{
		Hostname: s.srv.Hostname,
		Flags:    letters,
		ToCur:    true,
		ModTime:  options.Time,
		MaxSize:  s.srv.appendLimit(),
	})
	switch {
	case errors.Is(err, maildir.ErrTooBig):
		return nil, noError(imap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.ENOSPC):
		s.logError("append to "+canon, err)
		return nil, noError(imap.ResponseCodeOverQuota, "Out of disk space or over quota")
	case err != nil:
		return nil, s.serverError("append to "+canon, err)
	}
	s.appended++
	uids, validity := s.uidsOf(box, []string{uidlist.BaseName(delivered.Name)})
	if uids[0] == 0 {
		// Stored, but gone again before it got a UID (another session
		// expunged it): succeed without APPENDUID.
		return nil, nil
	}
	return &imap.AppendData{UID: uids[0], UIDValidity: validity}, nil
}

// uidsOf gives the files whose base names are bases (as the UID list
// records them) their UIDs, 0 for a file that is not there.
func (s *session) uidsOf(box *uidlist.Mailbox, bases []string) ([]imap.UID, uint32) {
	uids := make([]imap.UID, len(bases))
	st, err := box.Sync()
	if err != nil {
		s.logError("uid of new message in "+box.Dir(), err)
		return uids, 0
	}
	byBase := make(map[string]imap.UID, len(bases))
	for _, b := range bases {
		byBase[b] = 0
	}
	for _, e := range st.Entries {
		if _, ok := byBase[e.Base]; ok {
			byBase[e.Base] = imap.UID(e.UID)
		}
	}
	for i, b := range bases {
		uids[i] = byBase[b]
	}
	return uids, st.UIDValidity
}

// uidPairs builds COPYUID's two sets (RFC 4315 §3) so that the n-th UID
// of one corresponds to the n-th of the other; pairs whose destination
// UID is unknown are left out.
func uidPairs(src, dst []imap.UID) (imap.UIDSet, imap.UIDSet) {
	type pair struct{ s, d imap.UID }
	var pairs []pair
	for i := range src {
		if dst[i] != 0 {
			pairs = append(pairs, pair{src[i], dst[i]})
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].s < pairs[j].s })
	var ss, ds imap.UIDSet
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j].s == pairs[j-1].s+1 && pairs[j].d == pairs[j-1].d+1 {
			j++
		}
		ss = append(ss, imap.UIDRange{Start: pairs[i].s, Stop: pairs[j-1].s})
		ds = append(ds, imap.UIDRange{Start: pairs[i].d, Stop: pairs[j-1].d})
		i = j
	}
	return ss, ds
}
