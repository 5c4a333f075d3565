package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir/uidlist"
)

// List answers LIST (RFC 9051 §6.3.9) with LIST-EXTENDED's selection and
// return options (RFC 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE
// (RFC 6154), and LSUB, which go-imap turns into a LIST of the
// subscribed mailboxes.
//
// Every response carries \HasChildren or \HasNoChildren (RFC 3348) and
// the special-use attributes. A folder whose parent does not exist
// ("a/b" stored without "a") makes the parent appear as \Noselect (or
// \NonExistent to clients that enabled IMAP4rev2 or used
// LIST-EXTENDED options), as Dovecot shows it.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter (RFC 9051 §6.3.9).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/', Mailbox: ""})
	}
	names, err := s.mailboxNames()
	if err != nil {
		return s.serverError("list", err)
	}
	exists := make(map[string]bool, len(names))
	all := slices.Clone(names)
	for _, n := range names {
		exists[n] = true
	}
	for _, n := range names {
		for _, p := range parents(n) {
			if !exists[p] && !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	subs, err := uidlist.ReadSubscriptions(string(s.root))
	if err != nil {
		return s.serverError("list", err)
	}
	subscribed := make(map[string]bool, len(subs.Names))
	for _, n := range subs.Names {
		subscribed[canonicalName(n)] = true
	}
	// Names with a subscribed name below them (RECURSIVEMATCH).
	subscribedBelow := map[string]bool{}
	for n := range subscribed {
		for _, p := range parents(n) {
			subscribedBelow[p] = true
		}
	}

	candidates := all
	if options.SelectSubscribed {
		candidates = nil
		for n := range subscribed {
			candidates = append(candidates, n)
		}
		if options.SelectRecursiveMatch {
			for n := range subscribedBelow {
				if !subscribed[n] {
					candidates = append(candidates, n)
				}
			}
		}
	}
	slices.SortFunc(candidates, compareMailboxNames)
	candidates = slices.Compact(candidates)

	extended := options.SelectSubscribed || options.SelectSpecialUse || options.SelectRecursiveMatch ||
		options.ReturnSubscribed || options.ReturnChildren || options.ReturnSpecialUse || options.ReturnStatus != nil ||
		len(patterns) > 1 || s.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
	for i, p := range patterns {
		patterns[i] = canonicalPattern(p)
	}

	for _, name := range candidates {
		if !matchAny(name, ref, patterns) {
			continue
		}
		data := &imap.ListData{Delim: '/', Mailbox: name}
		var specialUse []imap.MailboxAttr
		if exists[name] {
			_, d, err := s.folder(name)
			if err != nil {
				continue
			}
			specialUse = specialUseOf(name, d)
		} else if slices.Contains(all, name) {
			if extended {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
			} else {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
			}
		} else {
			// Subscribed, but neither a folder nor above one.
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
		if options.SelectSpecialUse && len(specialUse) == 0 {
			continue
		}
		if hasChildren(name, names) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if subscribed[name] && (options.SelectSubscribed || options.ReturnSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		data.Attrs = append(data.Attrs, specialUse...)
		if options.SelectRecursiveMatch && subscribedBelow[name] {
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if options.ReturnStatus != nil && exists[name] {
			_, d, _ := s.folder(name)
			if st, err := s.status(name, d, options.ReturnStatus); err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// compareMailboxNames orders INBOX first, then by name.
func compareMailboxNames(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "INBOX":
		return -1
	case b == "INBOX":
		return 1
	}
	return strings.Compare(a, b)
}

// canonicalPattern spells an INBOX at the start of a pattern in
// capitals, so that "inbox" and "Inbox/%" find INBOX.
func canonicalPattern(p string) string {
	if len(p) >= 5 && strings.EqualFold(p[:5], "INBOX") && (len(p) == 5 || p[5] == '/') {
		return "INBOX" + p[5:]
	}
	return p
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, '/', ref, p) {
			return true
		}
	}
	return false
}

// hasChildren reports whether a folder exists below name.
func hasChildren(name string, names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, name+"/") {
			return true
		}
	}
	return false
}
