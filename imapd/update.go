package imapd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// settle is how long ago a directory must last have changed for a
// listing of it to be complete: file times come from a clock that ticks
// every few milliseconds, so a change made during a listing could carry
// the mtime of one made just before it (package uidlist waits as long).
const settle = 30 * time.Millisecond

// updateWriter is what update writes to: go-imap's UpdateWriter.
type updateWriter interface {
	WriteExpunge(seqNum uint32) error
	WriteNumMessages(n uint32) error
	WriteMailboxFlags(flags []imap.Flag) error
	WriteMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag) error
}

var _ updateWriter = (*imapserver.UpdateWriter)(nil)

// Poll tells the client what changed in the selected folder since it was
// last told, by this or any other process (RFC 9051 §5.2, §7.5.1). go-imap
// calls it after every command; expunges wait for a command that allows
// them.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	return s.update(w, allowExpunge)
}

func (s *session) update(w updateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	err := s.sel.update(w, allowExpunge, s.rev1())
	var vc errValidityChanged
	if errors.As(err, &vc) {
		// The UIDs the client knows mean nothing any more (RFC 9051
		// §2.3.1.1): it must start over.
		s.logError("update "+s.sel.name, err)
		s.result = "uidvalidity-changed"
		s.conn.Bye("UIDVALIDITY of the selected mailbox changed, reconnect")
		return err
	}
	if errors.Is(err, errWrite) {
		return err
	}
	if err != nil {
		// A failed look at the disk is no reason to end the session: the
		// next command tries again.
		s.logError("update "+s.sel.name, err)
	}
	return nil
}

// rev1 reports whether the client speaks IMAP4rev1 (it did not ENABLE
// IMAP4rev2), which knows \Recent.
func (s *session) rev1() bool {
	return !s.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
}

var errWrite = errors.New("imapd: write to client")

type errValidityChanged struct{ old, new uint32 }

func (e errValidityChanged) Error() string {
	return fmt.Sprintf("imapd: uidvalidity changed from %d to %d", e.old, e.new)
}

// update brings the view up to date with the folder and writes FLAGS,
// EXPUNGE, EXISTS and FETCH (FLAGS) for what changed. A message is
// expunged only when a complete listing of the folder no longer has it,
// and new messages are added only when no message below them could have
// been missed, so that no message is ever reported gone while it exists,
// and none is added out of UID order.
func (sel *selected) update(w updateWriter, allowExpunge, rev1 bool) error {
	st, complete, err := sel.sync()
	if err != nil {
		return err
	}
	return sel.apply(st, complete, w, allowExpunge, rev1)
}

// apply brings the view up to date with st; complete says whether st
// came from a complete listing (see sync).
func (sel *selected) apply(st *uidlist.State, complete bool, w updateWriter, allowExpunge, rev1 bool) error {
	if st.UIDValidity != sel.uidValidity {
		return errValidityChanged{sel.uidValidity, st.UIDValidity}
	}
	if st == sel.state {
		// Nothing changed on disk since the last update.
		if allowExpunge {
			return sel.expungeGone(w)
		}
		return nil
	}

	// Messages the client knows.
	var flagged []*message
	j := 0
	for _, m := range sel.msgs {
		if m.gone {
			continue
		}
		for j < len(st.Entries) && imap.UID(st.Entries[j].UID) < m.uid {
			j++
		}
		if j < len(st.Entries) && imap.UID(st.Entries[j].UID) == m.uid {
			e := st.Entries[j]
			m.file = e.Filename
			if m.vsize < 0 {
				m.vsize = e.VSize
			}
			if l := lettersOfFile(e.Filename); l != m.flags {
				m.flags = l
				flagged = append(flagged, m)
			}
			j++
		} else if complete {
			m.gone = true
		}
	}
	// Messages above them.
	last := sel.lastUID()
	var added []*message
	for _, e := range st.Entries {
		if imap.UID(e.UID) <= last {
			continue
		}
		if !complete && imap.UID(e.UID) != last+1 {
			break
		}
		m := newMessage(e)
		added = append(added, m)
		last = m.uid
	}

	if kw, err := sel.box.Keywords(); err == nil && (sel.kw == nil || kw.Names != sel.kw.Names) {
		sel.kw = kw
		flags, _ := mailboxFlags(kw)
		if err := w.WriteMailboxFlags(flags); err != nil {
			return fmt.Errorf("%w: %w", errWrite, err)
		}
	}
	if allowExpunge {
		if err := sel.expungeGone(w); err != nil {
			return err
		}
	}
	if len(added) > 0 {
		sel.msgs = append(sel.msgs, added...)
		if !sel.readOnly {
			sel.takeNew(added)
		}
		if err := w.WriteNumMessages(uint32(len(sel.msgs))); err != nil {
			return fmt.Errorf("%w: %w", errWrite, err)
		}
	}
	for _, m := range flagged {
		if m.gone {
			continue
		}
		if i := sel.index(m.uid); i >= 0 {
			if err := w.WriteMessageFlags(uint32(i+1), m.uid, sel.flagsFor(m, rev1)); err != nil {
				return fmt.Errorf("%w: %w", errWrite, err)
			}
		}
	}
	sel.state = st
	return nil
}

// expungeGone tells the client about the gone messages, highest sequence
// number first so that each number is valid when it is sent, and drops
// them from the view.
func (sel *selected) expungeGone(w interface{ WriteExpunge(uint32) error }) error {
	for i := len(sel.msgs) - 1; i >= 0; i-- {
		if !sel.msgs[i].gone {
			continue
		}
		uid := sel.msgs[i].uid
		sel.msgs = append(sel.msgs[:i], sel.msgs[i+1:]...)
		delete(sel.recent, uid)
		if err := w.WriteExpunge(uint32(i + 1)); err != nil {
			return fmt.Errorf("%w: %w", errWrite, err)
		}
	}
	return nil
}

// sync reads the folder's state. complete reports that the state can be
// applied as it is: it has every message the client knows and no gap
// above them, or it came from a listing during which the directories did
// not change. A folder that no longer exists (deleted or renamed by
// another session) is an empty, complete state.
func (sel *selected) sync() (st *uidlist.State, complete bool, err error) {
	st, err = sel.box.Sync()
	if errors.Is(err, fs.ErrNotExist) {
		return &uidlist.State{UIDValidity: sel.uidValidity}, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if st == sel.state || sel.covers(st) {
		return st, true, nil
	}
	st, complete, err = sel.syncStable()
	if errors.Is(err, fs.ErrNotExist) {
		return &uidlist.State{UIDValidity: sel.uidValidity}, true, nil
	}
	return st, complete, err
}

// covers reports whether st has every message of the view that is not
// gone, and UIDs without gaps above the view's.
func (sel *selected) covers(st *uidlist.State) bool {
	j := 0
	for _, m := range sel.msgs {
		if m.gone {
			continue
		}
		for j < len(st.Entries) && imap.UID(st.Entries[j].UID) < m.uid {
			j++
		}
		if j == len(st.Entries) || imap.UID(st.Entries[j].UID) != m.uid {
			return false
		}
	}
	next := sel.lastUID() + 1
	for _, e := range st.Entries {
		if imap.UID(e.UID) < next {
			continue
		}
		if imap.UID(e.UID) != next {
			return false
		}
		next++
	}
	return true
}

// syncStable syncs until the folder's new/ and cur/ did not change during
// the sync and had not changed for settle before it: then the listing
// behind the state was complete. After a few tries it returns the last
// state with complete false.
func (sel *selected) syncStable() (*uidlist.State, bool, error) {
	var st *uidlist.State
	for try := 0; try < 4; try++ {
		before, err := dirStamps(sel.dir)
		if err != nil {
			return nil, false, err
		}
		start := time.Now()
		st, err = sel.box.Sync()
		if err != nil {
			return nil, false, err
		}
		after, err := dirStamps(sel.dir)
		if err != nil {
			return nil, false, err
		}
		if before == after && before.newest() <= start.Add(-settle).UnixNano() {
			return st, true, nil
		}
		time.Sleep(settle)
	}
	return st, false, nil
}

// stamps identify the versions of a folder's new/ and cur/.
type stamps struct {
	newIno, curIno     uint64
	newMtime, curMtime int64
}

func (s stamps) newest() int64 { return max(s.newMtime, s.curMtime) }

func dirStamps(d maildir.Dir) (stamps, error) {
	var s stamps
	ni, err := os.Stat(d.New())
	if err != nil {
		return s, fmt.Errorf("imapd: %w", err)
	}
	ci, err := os.Stat(d.Cur())
	if err != nil {
		return s, fmt.Errorf("imapd: %w", err)
	}
	s.newMtime, s.curMtime = ni.ModTime().UnixNano(), ci.ModTime().UnixNano()
	if st, ok := ni.Sys().(*syscall.Stat_t); ok {
		s.newIno = st.Ino
	}
	if st, ok := ci.Sys().(*syscall.Stat_t); ok {
		s.curIno = st.Ino
	}
	return s, nil
}
