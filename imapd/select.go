package imapd

import (
	"errors"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// selected is the folder a session has selected, as its client knows it:
// the messages in sequence-number order (which is UID order), with the
// flags the client was last told. Changes on disk by anyone reach it only
// through update, which tells the client about them.
type selected struct {
	name        string
	dir         maildir.Dir
	box         *uidlist.Mailbox
	cache       *imapcache.Cache
	readOnly    bool
	uidValidity uint32
	msgs        []*message
	kw          *uidlist.Keywords
	state       *uidlist.State // what msgs were last brought up to date with
	recent      map[imap.UID]bool
	searchRes   imap.UIDSet // the saved search result (RFC 5182)
}

// message is one message of the client's view.
type message struct {
	uid  imap.UID
	file string // relative to the folder: "new/NAME" or "cur/NAME:2,FLAGS"
	// flags are the Maildir letters the client was last told.
	flags string
	vsize int64 // RFC822.SIZE; -1 until known
	// gone marks a message whose file was removed while the client may
	// not be told yet (RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE,
	// SEARCH); it keeps its sequence number until then.
	gone bool
}

func newMessage(e uidlist.Entry) *message {
	return &message{uid: imap.UID(e.UID), file: e.Filename, flags: lettersOfFile(e.Filename), vsize: e.VSize}
}

// lettersOfFile returns the Maildir flags of a file name.
func lettersOfFile(file string) string {
	// As maildir.ParseName(path.Base(file)).Flags, without its
	// allocations: this runs for every message at each SELECT and each
	// update.
	name := path.Base(file)
	i := strings.IndexByte(name, ':')
	if i < 0 || !strings.HasPrefix(name[i+1:], "2,") {
		return ""
	}
	return name[i+3:]
}

// Select opens a folder (RFC 9051 §6.3.2, §6.3.3). EXAMINE opens it
// read-only: STORE and MOVE are refused, EXPUNGE and CLOSE remove
// nothing, and fetching a body does not set \Seen. A read-write SELECT
// moves the messages in new/ to cur/, as Maildir readers do; they are
// the session's \Recent messages for IMAP4rev1 clients.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.closeSelected()
	canon, d, err := s.existingFolder(name, imap.ResponseCodeNonExistent)
	if err != nil {
		return nil, err
	}
	sel := &selected{name: canon, dir: d, box: s.openBox(d), cache: s.srv.folders.cache(d),
		readOnly: options != nil && options.ReadOnly, recent: map[imap.UID]bool{}}
	st, _, err := sel.syncStable()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noError(imap.ResponseCodeNonExistent, "No such mailbox")
	}
	if err != nil {
		return nil, s.serverError("select "+canon, err)
	}
	if sel.kw, err = sel.box.Keywords(); err != nil {
		return nil, s.serverError("select "+canon, err)
	}
	sel.uidValidity = st.UIDValidity
	sel.state = st
	for _, e := range st.Entries {
		sel.msgs = append(sel.msgs, newMessage(e))
	}
	if !sel.readOnly {
		sel.takeNew(sel.msgs)
	}
	flags, permanent := mailboxFlags(sel.kw)
	if sel.readOnly {
		permanent = []imap.Flag{}
	}
	data := &imap.SelectData{
		Flags:          flags,
		PermanentFlags: permanent,
		NumMessages:    uint32(len(sel.msgs)),
		NumRecent:      uint32(len(sel.recent)),
		UIDNext:        imap.UID(st.NextUID),
		UIDValidity:    st.UIDValidity,
	}
	for i, m := range sel.msgs {
		if !hasLetter(m.flags, maildir.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	s.sel = sel
	return data, nil
}

// Unselect closes the folder without expunging (RFC 3691, RFC 9051
// §6.4.2); CLOSE expunges first (go-imap calls Expunge).
func (s *session) Unselect() error {
	s.closeSelected()
	return nil
}

func (s *session) closeSelected() {
	s.sel = nil
}

// takeNew moves the files of msgs that are in new/ to cur/ and makes
// them the session's recent messages. A file another process moved or
// removed first stays as it is; the next update finds it.
func (sel *selected) takeNew(msgs []*message) {
	for _, m := range msgs {
		if m.gone || !isInNew(m.file) {
			continue
		}
		cur, err := sel.dir.MoveToCur(path.Base(m.file))
		if err != nil {
			continue
		}
		m.file = "cur/" + cur
		sel.recent[m.uid] = true
	}
}

func isInNew(file string) bool { return len(file) > 4 && file[:4] == "new/" }

func hasLetter(letters string, c byte) bool {
	for i := 0; i < len(letters); i++ {
		if letters[i] == c {
			return true
		}
	}
	return false
}

// index returns the position of the message with uid in msgs, or -1.
func (sel *selected) index(uid imap.UID) int {
	i := sort.Search(len(sel.msgs), func(i int) bool { return sel.msgs[i].uid >= uid })
	if i < len(sel.msgs) && sel.msgs[i].uid == uid {
		return i
	}
	return -1
}

// lastUID is the highest UID the client knows, 0 for none.
func (sel *selected) lastUID() imap.UID {
	if len(sel.msgs) == 0 {
		return 0
	}
	return sel.msgs[len(sel.msgs)-1].uid
}

// flagsFor returns the IMAP flags to report for m: \Recent is added for
// IMAP4rev1 clients.
func (sel *selected) flagsFor(m *message, rev1 bool) []imap.Flag {
	flags := flagsOf(m.flags, sel.kw)
	if rev1 && sel.recent[m.uid] {
		flags = append(flags, imap.Flag(`\Recent`))
	}
	return flags
}

// resolve returns the positions in msgs of the messages numSet names, in
// increasing order. A sequence number past the end is BAD (RFC 9051
// §9, seq-number); UIDs that do not exist are skipped. "$" is the saved
// search result (RFC 5182).
func (sel *selected) resolve(numSet imap.NumSet) ([]int, error) {
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		n := uint32(len(sel.msgs))
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			if n == 0 && (r.Start == 0 || r.Stop == 0) {
				continue
			}
			if start == 0 || stop > n {
				return nil, badError("Invalid sequence number")
			}
			for seq := start; seq <= stop; seq++ {
				out = append(out, int(seq-1))
			}
		}
	case imap.UIDSet:
		last := sel.lastUID()
		if last == 0 {
			return nil, nil
		}
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
			lo := sort.Search(len(sel.msgs), func(i int) bool { return sel.msgs[i].uid >= start })
			for i := lo; i < len(sel.msgs) && sel.msgs[i].uid <= stop; i++ {
				out = append(out, i)
			}
		}
	}
	sort.Ints(out)
	dedup := out[:0]
	for i, v := range out {
		if i == 0 || v != out[i-1] {
			dedup = append(dedup, v)
		}
	}
	return dedup, nil
}
