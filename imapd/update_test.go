package imapd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// events collects a client's unilateral responses.
type events struct {
	mu       sync.Mutex
	exists   []uint32
	expunged []uint32
	flags    map[uint32]string // sequence number -> flags
	changed  chan struct{}
}

func newEvents() *events {
	return &events{flags: map[uint32]string{}, changed: make(chan struct{}, 100)}
}

func (e *events) handler() *imapclient.UnilateralDataHandler {
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			e.mu.Lock()
			e.expunged = append(e.expunged, seq)
			e.mu.Unlock()
			e.changed <- struct{}{}
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				e.mu.Lock()
				e.exists = append(e.exists, *d.NumMessages)
				e.mu.Unlock()
				e.changed <- struct{}{}
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.flags[buf.SeqNum] = sortedFlags(buf.Flags)
			e.mu.Unlock()
			e.changed <- struct{}{}
		},
	}
}

// wait waits until cond holds (checked under the lock after each event).
func (e *events) wait(t *testing.T, what string, cond func(e *events) bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-timeout:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %s: exists %v expunged %v flags %v", what, e.exists, e.expunged, e.flags)
		}
	}
}

// curName returns the name in cur/ of the file whose name starts with base.
func curName(t *testing.T, d maildir.Dir, base string) string {
	t.Helper()
	entries, err := os.ReadDir(d.Cur())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), base) {
			return e.Name()
		}
	}
	t.Fatalf("no file %s* in cur/", base)
	return ""
}

func baseOf(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return name[:i]
	}
	return name
}

// TestChangesByOthersAtNoop: what other processes do to the Maildir
// reaches the client at NOOP; an expunge waits while only FETCH runs.
func TestChangesByOthersAtNoop(t *testing.T) {
	f := newFixture(t)
	ev := newEvents()
	c := f.login(ev.handler())
	m1 := f.deliver("", sampleMessage, maildir.DeliverOptions{})
	m2 := f.deliver("", sampleMessage, maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")

	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXISTS 3", func(e *events) bool { return slices.Contains(e.exists, 3) })

	// Another process sets flags and keeps P, which IMAP does not show.
	name := curName(t, f.maildir, baseOf(m2.Name))
	if _, err := f.maildir.SetFlags(name, "FPS"); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "FETCH FLAGS of 2", func(e *events) bool { return e.flags[2] == `\Flagged \Seen` })

	// Another process removes message 1: FETCH leaves it out, NOOP expunges it.
	if err := os.Remove(filepath.Join(f.maildir.Cur(), curName(t, f.maildir, baseOf(m1.Name)))); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
	if len(msgs) != 1 || msgs[0].UID != 2 || imapCode(err) != "EXPUNGEISSUED" {
		t.Errorf("FETCH 1,2 after removal by another process = %+v, %v; want UID 2 alone and NO [EXPUNGEISSUED]", msgs, err)
	}
	ev.mu.Lock()
	if len(ev.expunged) != 0 {
		t.Errorf("EXPUNGE during FETCH: %v", ev.expunged)
	}
	ev.mu.Unlock()
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXPUNGE 1", func(e *events) bool { return slices.Equal(e.expunged, []uint32{1}) })
	msgs = fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true})
	if len(msgs) != 1 || msgs[0].UID != 2 || sortedFlags(msgs[0].Flags) != `\Flagged \Seen` {
		t.Errorf("after EXPUNGE, message 1 = %+v", msgs)
	}
	// STORE keeps the P that the other process set.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if name := curName(t, f.maildir, baseOf(m2.Name)); !strings.HasSuffix(name, ":2,FP") {
		t.Errorf("after -FLAGS \\Seen the file is %s, want flags FP", name)
	}
}

// TestIdleSeesOthers: during IDLE, deliveries, flag changes and removals
// by other processes arrive without any command.
func TestIdleSeesOthers(t *testing.T) {
	f := newFixture(t)
	ev := newEvents()
	c := f.login(ev.handler())
	m1 := f.deliver("", sampleMessage, maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	m2 := f.deliver("", sampleMessage, maildir.DeliverOptions{})
	ev.wait(t, "EXISTS 2 during IDLE", func(e *events) bool { return slices.Contains(e.exists, 2) })

	if _, err := f.maildir.SetFlags(curName(t, f.maildir, baseOf(m1.Name)), "R"); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "FETCH FLAGS during IDLE", func(e *events) bool { return e.flags[1] == `\Answered` })

	// m2 is still in new/ (this session moved it to cur/ unless it got there first).
	p := filepath.Join(f.maildir.New(), m2.Name)
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(f.maildir.Cur(), curName(t, f.maildir, baseOf(m2.Name)))
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXPUNGE during IDLE", func(e *events) bool { return slices.Equal(e.expunged, []uint32{2}) })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestTwoSessions: a STORE, APPEND and EXPUNGE in one session reach
// another session of the same process.
func TestTwoSessions(t *testing.T) {
	f := newFixture(t)
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	ev := newEvents()
	watcher := f.login(ev.handler())
	selectBox(t, watcher, "INBOX")
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	actor := f.login()
	selectBox(t, actor, "INBOX")
	if err := actor.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, "Later"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "FETCH FLAGS from the other session", func(e *events) bool { return e.flags[2] == `Later \Deleted` })
	appendMsg(t, actor, "INBOX", crlf(sampleMessage), nil)
	ev.wait(t, "EXISTS 3 from the other session's APPEND", func(e *events) bool { return slices.Contains(e.exists, 3) })
	if _, err := actor.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXPUNGE 2 from the other session", func(e *events) bool { return slices.Equal(e.expunged, []uint32{2}) })
}

// TestFlagChurnNoFalseExpunge: while another process renames a file over
// and over (flag changes), the session never reports it expunged and
// never loses or duplicates a message.
func TestFlagChurnNoFalseExpunge(t *testing.T) {
	f := newFixture(t)
	// Enough files that listing cur/ takes several getdents calls, between
	// which renames can move a file past the reader.
	const filler = 1000
	for i := range filler {
		f.writeRaw("cur", fmt.Sprintf("1000000000.M%dP1.filler:2,S", i), "Subject: filler\n\nx\n")
	}
	var dels []maildir.Delivered
	for range 5 {
		dels = append(dels, f.deliver("", sampleMessage, maildir.DeliverOptions{Flags: "S"}))
	}
	ev := newEvents()
	c := f.login(ev.handler())
	selectBox(t, c, "INBOX")

	// One renaming goroutine per message, as fast as they can.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopped()
	for i, d := range dels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := d.Name
			flags := []string{"S", "FS", "RS", "DS"}
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if renamed, err := f.maildir.SetFlags(name, flags[n%len(flags)]); err == nil {
					name = renamed
				}
			}
		}()
	}
	for range 5 {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
		if err != nil {
			t.Fatalf("FETCH 1:* during flag churn: %v", err)
		}
		if len(msgs) != filler+5 {
			t.Fatalf("FETCH 1:* during flag churn returned %d messages, want %d", len(msgs), filler+5)
		}
	}
	stopped()
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.expunged) != 0 || len(ev.exists) != 0 {
		t.Errorf("flag changes caused EXPUNGE %v and EXISTS %v", ev.expunged, ev.exists)
	}
}

// TestSelectedFolderDeleted: a folder deleted by another session is
// emptied in the view of the session that has it selected.
func TestSelectedFolderDeleted(t *testing.T) {
	f := newFixture(t)
	f.deliver("Trash", sampleMessage, maildir.DeliverOptions{})
	f.deliver("Trash", sampleMessage, maildir.DeliverOptions{})
	ev := newEvents()
	c := f.login(ev.handler())
	selectBox(t, c, "Trash")
	other := f.login()
	if err := other.Delete("Trash").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, "EXPUNGE of both messages", func(e *events) bool { return slices.Equal(e.expunged, []uint32{2, 1}) })
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP in a deleted folder: %v", err)
	}
}

// recorder is an updateWriter that records what it is told.
type recorder struct{ lines []string }

func (r *recorder) WriteExpunge(seq uint32) error {
	r.lines = append(r.lines, fmt.Sprintf("EXPUNGE %d", seq))
	return nil
}

func (r *recorder) WriteNumMessages(n uint32) error {
	r.lines = append(r.lines, fmt.Sprintf("EXISTS %d", n))
	return nil
}

func (r *recorder) WriteMailboxFlags(flags []imap.Flag) error {
	r.lines = append(r.lines, "FLAGS")
	return nil
}

func (r *recorder) WriteMessageFlags(seq uint32, uid imap.UID, flags []imap.Flag) error {
	r.lines = append(r.lines, fmt.Sprintf("FETCH %d UID %d (%s)", seq, uid, sortedFlags(flags)))
	return nil
}

// TestApply checks how a state from an incomplete listing is applied: no
// message is taken for expunged and no message joins past a gap, while a
// complete one expunges and adds.
func TestApply(t *testing.T) {
	entry := func(uid uint32, flags string) uidlist.Entry {
		return uidlist.Entry{UID: uid, Filename: fmt.Sprintf("cur/%d.M1P1.host:2,%s", uid, flags), VSize: 10}
	}
	tests := []struct {
		name         string
		entries      []uidlist.Entry
		complete     bool
		allowExpunge bool
		want         []string
		wantUIDs     []imap.UID
	}{
		{"incomplete: 2 missed, 5 past a gap", []uidlist.Entry{entry(1, ""), entry(3, "S"), entry(5, "")}, false, true,
			[]string{"FETCH 3 UID 3 (\\Seen)"}, []imap.UID{1, 2, 3}},
		{"incomplete: 4 and 5 follow without a gap", []uidlist.Entry{entry(1, ""), entry(3, ""), entry(4, ""), entry(5, "F")}, false, true,
			[]string{"EXISTS 5"}, []imap.UID{1, 2, 3, 4, 5}},
		{"complete: 2 gone, 5 new", []uidlist.Entry{entry(1, ""), entry(3, ""), entry(5, "")}, true, true,
			[]string{"EXPUNGE 2", "EXISTS 3"}, []imap.UID{1, 3, 5}},
		{"complete, no expunge allowed: 2 kept", []uidlist.Entry{entry(1, ""), entry(3, "")}, true, false,
			nil, []imap.UID{1, 2, 3}},
		{"complete: all gone", nil, true, true,
			[]string{"EXPUNGE 3", "EXPUNGE 2", "EXPUNGE 1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := maildir.Dir(t.TempDir())
			if err := maildir.Create(string(d)); err != nil {
				t.Fatal(err)
			}
			sel := &selected{dir: d, box: uidlist.Open(string(d), nil), readOnly: true, uidValidity: 7, recent: map[imap.UID]bool{},
				kw: &uidlist.Keywords{}}
			for _, e := range []uidlist.Entry{entry(1, ""), entry(2, ""), entry(3, "")} {
				sel.msgs = append(sel.msgs, newMessage(e))
			}
			var r recorder
			st := &uidlist.State{UIDValidity: 7, Entries: tc.entries}
			if err := sel.apply(st, tc.complete, &r, tc.allowExpunge, false); err != nil {
				t.Fatal(err)
			}
			var uids []imap.UID
			for _, m := range sel.msgs {
				uids = append(uids, m.uid)
			}
			if !slices.Equal(r.lines, tc.want) || !slices.Equal(uids, tc.wantUIDs) {
				t.Errorf("apply wrote %q, view %v; want %q, %v", r.lines, uids, tc.want, tc.wantUIDs)
			}
		})
	}
}
