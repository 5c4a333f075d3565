package imapd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

const sampleMessage = "From: Bob <bob@example.net>\nTo: alice@example.org\nSubject: Hello\nDate: Mon, 02 Jan 2006 15:04:05 -0700\nMessage-ID: <m1@example.net>\n\nHello Alice,\nhow are you?\n"

func appendMsg(t *testing.T, c *imapclient.Client, mailbox, msg string, opt *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(msg)), opt)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	return data
}

// sortedFlags lists flags, leaving out \Recent (which IMAP4rev1 clients
// such as imapclient see).
func sortedFlags(flags []imap.Flag) string {
	var s []string
	for _, f := range flags {
		if f != `\Recent` {
			s = append(s, string(f))
		}
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func TestAppendAndFetch(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	date := time.Date(2020, 5, 17, 10, 30, 0, 0, time.FixedZone("", 2*3600))
	msg := crlf(sampleMessage)
	data := appendMsg(t, c, "Sent", msg, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, "$Forwarded", "Work"}, Time: date})
	st, err := c.Status("Sent", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.UID != 1 || data.UIDValidity != st.UIDValidity {
		t.Errorf("APPENDUID = %d %d, want %d 1", data.UIDValidity, data.UID, st.UIDValidity)
	}
	// On disk: LF line endings, flags and keywords in the name, the date as mtime.
	sent, _ := f.maildir.Folder("Sent")
	entries, _ := os.ReadDir(sent.Cur())
	if len(entries) != 1 {
		t.Fatalf("Sent/cur has %d files", len(entries))
	}
	name := entries[0].Name()
	if !strings.HasSuffix(name, ":2,Sab") {
		t.Errorf("file name %q, want flags Sab", name)
	}
	stored, _ := os.ReadFile(filepath.Join(sent.Cur(), name))
	if string(stored) != sampleMessage {
		t.Errorf("stored %q, want the LF form", stored)
	}
	kw, _ := uidlist.ReadKeywords(string(sent))
	if n, _ := kw.Name('a'); n != "$Forwarded" {
		t.Errorf("dovecot-keywords a = %q", n)
	}
	info, _ := os.Stat(filepath.Join(sent.Cur(), name))
	if !info.ModTime().Equal(date) {
		t.Errorf("mtime %v, want %v", info.ModTime(), date)
	}

	sel := selectBox(t, c, "Sent")
	if sel.NumMessages != 1 || !slices.Contains(sel.PermanentFlags, "Work") || !slices.Contains(sel.PermanentFlags, imap.FlagWildcard) {
		t.Errorf("SELECT = %+v", sel)
	}
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodySection: []*imap.FetchItemBodySection{
			{Peek: true},
			{Peek: true, Partial: &imap.SectionPartial{Offset: 6, Size: 5}},
			{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}},
			{Peek: true, Specifier: imap.PartSpecifierText},
		},
	})
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages", len(msgs))
	}
	m := msgs[0]
	if m.UID != 1 || sortedFlags(m.Flags) != `$Forwarded Work \Seen` || !m.InternalDate.Equal(date) || m.RFC822Size != int64(len(msg)) {
		t.Errorf("FETCH = uid %d flags %v date %v size %d, want 1, $Forwarded Work \\Seen, %v, %d", m.UID, m.Flags, m.InternalDate, m.RFC822Size, date, len(msg))
	}
	if m.Envelope == nil || m.Envelope.Subject != "Hello" || len(m.Envelope.From) != 1 || m.Envelope.From[0].Host != "example.net" || m.Envelope.MessageID != "m1@example.net" {
		t.Errorf("ENVELOPE = %+v", m.Envelope)
	}
	wantSections := []string{msg, "Bob <", "Subject: Hello\r\n\r\n", "Hello Alice,\r\nhow are you?\r\n"}
	for i, want := range wantSections {
		if i >= len(m.BodySection) || string(m.BodySection[i].Bytes) != want {
			t.Errorf("section %d = %q, want %q", i, m.BodySection[i].Bytes, want)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.AppendLimit = 5000 })
	c := f.login()
	cmd := c.Append("Nope", 5, nil)
	cmd.Write([]byte("x: y\n"))
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND to a missing mailbox = %v, want NO [TRYCREATE]", err)
	}
	// Raw, since the client cannot take back a literal it announced.
	conn, r := rawLogin(t, f)
	fmt.Fprintf(conn, "a APPEND INBOX {5001}\r\n")
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "a NO [TOOBIG]") {
		t.Errorf("APPEND over APPENDLIMIT = %q, want a NO [TOOBIG]", line)
	}
	fmt.Fprintf(conn, "b NOOP\r\n")
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "b OK") {
		t.Errorf("NOOP after a refused APPEND = %q", line)
	}
	st, _ := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if *st.NumMessages != 0 {
		t.Errorf("refused APPENDs stored %d messages", *st.NumMessages)
	}
}

func TestFetchSetsSeen(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}, Flags: true})
	if sortedFlags(msgs[0].Flags) != "" || !slices.Contains(msgs[0].Flags, `\Recent`) {
		t.Errorf("BODY.PEEK[] flags = %v, want \\Recent alone (new message, IMAP4rev1 client)", msgs[0].Flags)
	}
	msgs = fetchAll(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	if sortedFlags(msgs[0].Flags) != `\Seen` {
		t.Errorf("BODY[] returned flags %v, want \\Seen", msgs[0].Flags)
	}
	entries, _ := os.ReadDir(f.maildir.Cur())
	var seen int
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ":2,S") {
			seen++
		}
	}
	if seen != 1 {
		t.Errorf("%d files with S after one BODY[] fetch, want 1", seen)
	}
}

// TestExamineReadOnly: EXAMINE changes nothing (RFC 9051 §6.3.3).
func TestExamineReadOnly(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	f.deliver("", sampleMessage, maildir.DeliverOptions{Flags: "T"})
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	before := dirNames(t, f.maildir)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	fetchAll(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err == nil {
		t.Error("STORE in EXAMINE succeeded")
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Trash").Wait(); err == nil {
		t.Error("MOVE in EXAMINE succeeded")
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Errorf("EXPUNGE in EXAMINE: %v", err)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE: %v", err)
	}
	if after := dirNames(t, f.maildir); !slices.Equal(before, after) {
		t.Errorf("EXAMINE changed the Maildir:\n%v\n%v", before, after)
	}
}

// dirNames lists new/ and cur/.
func dirNames(t *testing.T, d maildir.Dir) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{d.New(), d.Cur()} {
		entries, err := os.ReadDir(sub)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, filepath.Base(sub)+"/"+e.Name())
		}
	}
	return out
}

func TestStoreAndExpunge(t *testing.T) {
	f := newFixture(t)
	var expunged []uint32
	c := f.login(&imapclient.UnilateralDataHandler{Expunge: func(seq uint32) { expunged = append(expunged, seq) }})
	for range 4 {
		f.deliver("", sampleMessage, maildir.DeliverOptions{})
	}
	selectBox(t, c, "INBOX")
	msgs, err := c.Store(imap.SeqSet{{Start: 2, Stop: 3}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, "Keep", imap.FlagAnswered}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || sortedFlags(msgs[0].Flags) != `Keep \Answered \Deleted` {
		t.Errorf("STORE +FLAGS answered %d messages, first %v", len(msgs), msgs[0].Flags)
	}
	msgs, err = c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{"keep"}}, nil).Collect()
	if err != nil || len(msgs) != 1 || sortedFlags(msgs[0].Flags) != `\Answered \Deleted` {
		t.Errorf("STORE -FLAGS (keyword case-insensitive) = %+v, %v", msgs[0], err)
	}
	msgs, err = c.Store(imap.SeqSetNum(4), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	if err != nil || len(msgs) != 0 {
		t.Errorf("STORE FLAGS.SILENT = %v, %v; want no FETCH", msgs, err)
	}
	if err := c.Store(imap.SeqSetNum(9), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err == nil {
		t.Error("STORE on sequence number 9 of 4 succeeded")
	}
	// UID EXPUNGE removes only the named \Deleted message.
	seqs, err := c.UIDExpunge(imap.UIDSetNum(4)).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := append(seqs, expunged...); !slices.Equal(got, []uint32{4}) {
		t.Errorf("UID EXPUNGE 4 expunged %v, want [4]", got)
	}
	expunged = nil
	seqs, err = c.Expunge().Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := append(seqs, expunged...); !slices.Equal(got, []uint32{3, 2}) {
		t.Errorf("EXPUNGE = %v, want [3 2]", got)
	}
	if n := len(dirNames(t, f.maildir)); n != 1 {
		t.Errorf("%d files left, want 1", n)
	}
	// The remaining message is UID 1 at sequence number 1.
	msgs = fetchAll(t, c, imap.UIDSetNum(1), &imap.FetchOptions{UID: true})
	if len(msgs) != 1 || msgs[0].SeqNum != 1 {
		t.Errorf("UID FETCH 1 = %+v", msgs)
	}
}

func TestCopyAndMove(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	f.deliver("", sampleMessage, maildir.DeliverOptions{})
	f.deliver("", "Subject: two\n\nx\n", maildir.DeliverOptions{Flags: "F"})
	f.deliver("", "Subject: three\n\nx\r\nwith CRLF on disk\r\n", maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"Tag"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	data, err := c.Copy(imap.SeqSet{{Start: 2, Stop: 3}}, "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.SourceUIDs.String() != "2:3" || data.DestUIDs.String() != "1:2" || data.UIDValidity == 0 {
		t.Errorf("COPYUID = %d %s %s, want 2:3 1:2", data.UIDValidity, data.SourceUIDs, data.DestUIDs)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox = %v, want NO [TRYCREATE]", err)
	}
	orig := fetchAll(t, c, imap.SeqSetNum(3), &imap.FetchOptions{InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})

	mv, err := c.Move(imap.SeqSet{{Start: 1, Stop: 2}}, "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if mv.SourceUIDs.String() != "1:2" || mv.DestUIDs.String() != "1:2" {
		t.Errorf("MOVE COPYUID = %s %s", mv.SourceUIDs, mv.DestUIDs)
	}
	if n := len(dirNames(t, f.maildir)); n != 1 {
		t.Errorf("INBOX has %d files after MOVE of 2 of 3", n)
	}
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{UID: true})
	if len(msgs) != 1 || msgs[0].UID != 3 {
		t.Errorf("after MOVE, message 1 = %+v, want UID 3", msgs)
	}

	selectBox(t, c, "Archive")
	got := fetchAll(t, c, imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if sortedFlags(got[0].Flags) != `Tag \Flagged` {
		t.Errorf("copied flags = %v, want Tag \\Flagged", got[0].Flags)
	}
	if !bytes.Equal(got[1].BodySection[0].Bytes, orig[0].BodySection[0].Bytes) || !got[1].InternalDate.Equal(orig[0].InternalDate) {
		t.Errorf("copy differs: %q %v, want %q %v", got[1].BodySection[0].Bytes, got[1].InternalDate, orig[0].BodySection[0].Bytes, orig[0].InternalDate)
	}
	selectBox(t, c, "Trash")
	got = fetchAll(t, c, imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true})
	if len(got) != 2 || sortedFlags(got[1].Flags) != `Tag \Flagged` {
		t.Errorf("moved messages = %+v", got)
	}
}

func TestSearch(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	old := time.Date(2001, 2, 3, 12, 0, 0, 0, time.UTC)
	f.deliver("", sampleMessage, maildir.DeliverOptions{Flags: "S", ModTime: old})
	f.deliver("", "From: carol@example.com\nSubject: Invoice 42\nDate: Tue, 03 Mar 2015 10:00:00 +0000\n\nPlease pay.\n", maildir.DeliverOptions{Flags: "F"})
	f.deliver("", "Subject: big\n\n"+strings.Repeat("x", 2000)+"\n", maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want string
	}{
		{"all", imap.SearchCriteria{}, "1:3"},
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, "1"},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, "2:3"},
		{"flagged", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, "2"},
		{"keyword", imap.SearchCriteria{Flag: []imap.Flag{"nosuch"}}, ""},
		{"larger", imap.SearchCriteria{Larger: 1000}, "3"},
		{"smaller", imap.SearchCriteria{Smaller: 1000}, "1:2"},
		{"before", imap.SearchCriteria{Before: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)}, "1"},
		{"since", imap.SearchCriteria{Since: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)}, "2:3"},
		{"sentbefore", imap.SearchCriteria{SentBefore: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)}, "1"},
		// Message 3 has no Date: its INTERNALDATE (now) counts, as in Dovecot.
		{"sentsince", imap.SearchCriteria{SentSince: time.Date(2015, 3, 3, 0, 0, 0, 0, time.UTC)}, "2:3"},
		{"senton", imap.SearchCriteria{SentSince: time.Date(2015, 3, 3, 0, 0, 0, 0, time.UTC), SentBefore: time.Date(2015, 3, 4, 0, 0, 0, 0, time.UTC)}, "2"},
		{"header", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "subject", Value: "invoice"}}}, "2"},
		{"from", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "BOB"}}}, "1"},
		{"body", imap.SearchCriteria{Body: []string{"pay"}}, "2"},
		{"text", imap.SearchCriteria{Text: []string{"carol"}}, "2"},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen}}}}, "2:3"},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagSeen}}, {Larger: 1000}}}}, "1,3"},
		{"seq", imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 0}}}}, "2:3"},
		{"uid", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(1, 3)}}, "1,3"},
	}
	for _, tc := range tests {
		data, err := c.Search(&tc.c, nil).Wait()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := data.All.String(); got != tc.want {
			t.Errorf("SEARCH %s = %q, want %q", tc.name, got, tc.want)
		}
	}
	// ESEARCH and SEARCHRES.
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnSave: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.Min != 2 || data.Max != 3 || data.Count != 2 {
		t.Errorf("ESEARCH = min %d max %d count %d, want 2 3 2", data.Min, data.Max, data.Count)
	}
	// imapclient does not handle "$" in commands: checked raw.
	conn, r := rawLogin(t, f)
	fmt.Fprintf(conn, "s SELECT INBOX\r\na SEARCH RETURN (SAVE) UNSEEN\r\nb FETCH $ (UID)\r\nc SEARCH UID $\r\n")
	var got []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, " FETCH ") || strings.HasPrefix(line, "* SEARCH") {
			got = append(got, strings.TrimSpace(line))
		}
		if strings.HasPrefix(line, "c ") {
			break
		}
	}
	want := []string{"* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "b OK FETCH completed", "* SEARCH 2 3"}
	if !slices.Equal(got, want) {
		t.Errorf("FETCH $ and SEARCH UID $ = %q, want %q", got, want)
	}
}

// rawLogin logs in on a raw connection.
func rawLogin(t *testing.T, f *fixture) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	fmt.Fprintf(conn, "l LOGIN %s \"%s\"\r\n", testUser, testPassword)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "l ") {
			if !strings.HasPrefix(line, "l OK") {
				t.Fatalf("LOGIN: %q", line)
			}
			return conn, r
		}
	}
}

// A message moved away and back gets a new UID in its first folder, at or
// above the UIDNEXT it had when it left: UIDs are never reused (RFC 9051
// §2.3.1.1).
func TestMoveBackGetsNewUID(t *testing.T) {
	f := newFixture(t)
	// Ten messages: the UID list keeps the line of a removed file until a
	// quarter of them are gone (as Dovecot does), so a file that came back
	// under its old name would find its old UID there.
	for range 10 {
		f.deliver("", sampleMessage, maildir.DeliverOptions{})
	}
	c := f.login()
	sel := selectBox(t, c, "INBOX")
	next := sel.UIDNext
	if _, err := c.Move(imap.UIDSetNum(2), "Trash").Wait(); err != nil {
		t.Fatalf("UID MOVE 2 Trash: %v", err)
	}
	selectBox(t, c, "Trash")
	mv, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait()
	if err != nil {
		t.Fatalf("MOVE 1 INBOX: %v", err)
	}
	dest, ok := mv.DestUIDs.(imap.UIDSet)
	var back []imap.UID
	if ok {
		back, _ = dest.Nums()
	}
	if len(back) != 1 || back[0] < next {
		t.Fatalf("the message came back to INBOX as UID %v, want a new UID >= %d", back, next)
	}
	sel = selectBox(t, c, "INBOX")
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := uids.AllUIDs(); len(got) != 10 || got[9] != back[0] || sel.UIDNext <= back[0] {
		t.Errorf("INBOX UIDs %v, UIDNEXT %d; want 1, 3 to 10 and %d below UIDNEXT", got, sel.UIDNext, back[0])
	}
}
