package imapd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// listed runs LIST and returns "name attr attr..." lines.
func listed(t *testing.T, c *imapclient.Client, ref, pattern string, options *imap.ListOptions) []string {
	t.Helper()
	data, err := c.List(ref, pattern, options).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	var out []string
	for _, d := range data {
		attrs := make([]string, len(d.Attrs))
		for i, a := range d.Attrs {
			attrs[i] = string(a)
		}
		slices.Sort(attrs)
		line := strings.Join(append([]string{d.Mailbox}, attrs...), " ")
		if d.Delim != '/' {
			line += " delim=" + string(d.Delim)
		}
		out = append(out, line)
	}
	return out
}

func TestListSpecialUseAndChildren(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	for _, name := range []string{"a/b/c", "Entwürfe"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", name, err)
		}
	}
	// A folder whose parent does not exist, as other software leaves it.
	if err := maildir.Create(string(f.maildir), "x/y"); err != nil {
		t.Fatal(err)
	}
	got := listed(t, c, "", "*", nil)
	want := []string{
		`INBOX \HasNoChildren`,
		`Archive \Archive \HasNoChildren`,
		`Drafts \Drafts \HasNoChildren`,
		`Entwürfe \HasNoChildren`,
		`Junk \HasNoChildren \Junk`,
		`Sent \HasNoChildren \Sent`,
		`Trash \HasNoChildren \Trash`,
		`a \HasChildren`,
		`a/b \HasChildren`,
		`a/b/c \HasNoChildren`,
		`x \HasChildren \Noselect`,
		`x/y \HasNoChildren`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("LIST \"\" * =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(string(f.maildir), ".Entw&APw-rfe", "cur")); err != nil {
		t.Errorf("Entwürfe not stored in modified UTF-7: %v", err)
	}
	if got := listed(t, c, "", "%", nil); len(got) != 9 {
		t.Errorf("LIST \"\" %% = %v, want the 9 top-level names", got)
	}
	if got := listed(t, c, "a/", "%", nil); !slices.Equal(got, []string{`a/b \HasChildren`}) {
		t.Errorf("LIST a/ %% = %v", got)
	}
	if got := listed(t, c, "", "inbox", nil); !slices.Equal(got, []string{`INBOX \HasNoChildren`}) {
		t.Errorf("LIST \"\" inbox = %v", got)
	}
	got = listed(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	if len(got) != 5 || !strings.HasPrefix(got[0], "Archive ") {
		t.Errorf("LIST (SPECIAL-USE) = %v, want the 5 special-use folders", got)
	}
	// LIST "" "" answers the delimiter.
	data, err := c.List("", "", nil).Collect()
	if err != nil || len(data) != 1 || data[0].Delim != '/' || data[0].Mailbox != "" {
		t.Errorf("LIST \"\" \"\" = %+v, %v", data, err)
	}
}

func TestCreateSpecialUse(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	if err := c.Create("Papierkorb", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrTrash}}).Wait(); err != nil {
		t.Fatalf("CREATE (USE (\\Trash)): %v", err)
	}
	if got := listed(t, c, "", "Papierkorb", nil); !slices.Equal(got, []string{`Papierkorb \HasNoChildren \Trash`}) {
		t.Errorf("LIST Papierkorb = %v", got)
	}
	data, err := os.ReadFile(filepath.Join(string(f.maildir), ".Papierkorb", SpecialUseFileName))
	if err != nil || string(data) != "\\Trash\n" {
		t.Errorf("special-use file = %q, %v", data, err)
	}
	err = c.Create("Other", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{"\\Bogus"}}).Wait()
	if imapCode(err) != "USEATTR" {
		t.Errorf("CREATE (USE (\\Bogus)) = %v, want NO [USEATTR]", err)
	}
	if ok, _ := isFolder(maildir.Dir(filepath.Join(string(f.maildir), ".Other"))); ok {
		t.Error("CREATE with a bad USE attribute created the folder")
	}
	// The attribute moves with RENAME.
	if err := c.Rename("Papierkorb", "Bin", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, c, "", "Bin", nil); !slices.Equal(got, []string{`Bin \HasNoChildren \Trash`}) {
		t.Errorf("LIST Bin after RENAME = %v", got)
	}
}

func TestCreateDeleteErrors(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	tests := []struct {
		name string
		err  error
		code imap.ResponseCode
	}{
		{"create existing", c.Create("Sent", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"create INBOX", c.Create("inbox", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"create ..", c.Create("..", nil).Wait(), imap.ResponseCodeCannot},
		{"create a/../b", c.Create("a/../b", nil).Wait(), imap.ResponseCodeCannot},
		{"create .hidden", c.Create(".hidden", nil).Wait(), imap.ResponseCodeCannot},
		{"create /abs", c.Create("/etc", nil).Wait(), imap.ResponseCodeCannot},
		{"create a//b", c.Create("a//b", nil).Wait(), imap.ResponseCodeCannot},
		{"create wildcard", c.Create("a*", nil).Wait(), imap.ResponseCodeCannot},
		{"delete INBOX", c.Delete("INBOX").Wait(), imap.ResponseCodeCannot},
		{"delete missing", c.Delete("Nope").Wait(), imap.ResponseCodeNonExistent},
		{"rename missing", c.Rename("Nope", "Nope2", nil).Wait(), imap.ResponseCodeNonExistent},
		{"rename onto existing", c.Rename("Sent", "Trash", nil).Wait(), imap.ResponseCodeAlreadyExists},
		{"rename to ..", c.Rename("Sent", "../x", nil).Wait(), imap.ResponseCodeCannot},
		{"select missing", selectErr(c, "Nope"), imap.ResponseCodeNonExistent},
		{"status missing", statusErr(c, "Nope"), imap.ResponseCodeNonExistent},
	}
	// go-imap's decoder refuses control characters itself (as invalid
	// modified UTF-7); they never reach the session.
	if err := c.Create("a\x01b", nil).Wait(); err == nil {
		t.Error("CREATE with a control character succeeded")
	}
	for _, tc := range tests {
		if tc.err == nil || imapCode(tc.err) != tc.code {
			t.Errorf("%s: %v, want NO [%s]", tc.name, tc.err, tc.code)
		}
	}
	// Nothing escaped the Maildir.
	entries, err := os.ReadDir(filepath.Dir(string(f.maildir)))
	if err != nil || len(entries) != 1 {
		t.Errorf("the domain directory holds %v, %v; want alice's Maildir alone", entries, err)
	}
}

func selectErr(c *imapclient.Client, name string) error {
	_, err := c.Select(name, nil).Wait()
	return err
}

func statusErr(c *imapclient.Client, name string) error {
	_, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
	return err
}

func TestRenameAndDelete(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	for _, n := range []string{"p", "p/q", "p/q/r"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	f.deliver("p/q", "Subject: in q\n\nbody\n", maildir.DeliverOptions{Flags: "S"})
	if err := c.Subscribe("p/q").Wait(); err != nil {
		t.Fatal(err)
	}
	before, err := c.Status("p/q", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("p", "s/t", nil).Wait(); err != nil {
		t.Fatalf("RENAME p s/t: %v", err)
	}
	got := listed(t, c, "", "*", &imap.ListOptions{ReturnSubscribed: true})
	var names []string
	for _, l := range got {
		names = append(names, strings.Fields(l)[0])
	}
	want := []string{"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash", "s", "s/t", "s/t/q", "s/t/q/r"}
	if !slices.Equal(names, want) {
		t.Errorf("after RENAME: %v, want %v", names, want)
	}
	after, err := c.Status("s/t/q", &imap.StatusOptions{UIDValidity: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if after.UIDValidity != before.UIDValidity || *after.NumMessages != 1 {
		t.Errorf("renamed folder: UIDVALIDITY %d messages %d, want %d and 1", after.UIDValidity, *after.NumMessages, before.UIDValidity)
	}
	if !slices.Contains(got, `s/t/q \HasChildren \Subscribed`) {
		t.Errorf("subscription did not follow the rename: %v", got)
	}

	if err := c.Delete("s/t").Wait(); err != nil {
		t.Fatalf("DELETE s/t: %v", err)
	}
	got = listed(t, c, "", "s*", nil)
	if !slices.Equal(got, []string{`s \HasChildren`, `s/t \HasChildren \Noselect`, `s/t/q \HasChildren`, `s/t/q/r \HasNoChildren`}) {
		t.Errorf("after DELETE s/t: %v", got)
	}
	entries, _ := os.ReadDir(string(f.maildir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			t.Errorf("DELETE left %s behind", e.Name())
		}
	}
	// A new folder of the same name gets a new UIDVALIDITY (RFC 9051 §2.3.1.1).
	if err := c.Create("s/t/q", nil).Wait(); err == nil {
		t.Error("CREATE of an existing folder succeeded")
	}
	if err := c.Delete("s/t/q/r").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("s/t/q/r", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("s/t/q/r", &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.UIDValidity <= after.UIDValidity {
		t.Errorf("recreated folder UIDVALIDITY %d, want more than %d", st.UIDValidity, after.UIDValidity)
	}
}

// TestRenameInbox: RFC 9051 §6.3.6 moves INBOX's messages to the new
// folder and leaves INBOX empty.
func TestRenameInbox(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	f.deliver("", "Subject: one\n\n1\n", maildir.DeliverOptions{})
	f.deliver("", "Subject: two\n\n2\n", maildir.DeliverOptions{Flags: "S"})
	if err := c.Create("INBOX/child", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("INBOX", "Old", nil).Wait(); err != nil {
		t.Fatalf("RENAME INBOX Old: %v", err)
	}
	for _, tc := range []struct {
		name string
		want uint32
	}{{"INBOX", 0}, {"Old", 2}, {"INBOX/child", 0}} {
		st, err := c.Status(tc.name, &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS %s: %v", tc.name, err)
		}
		if *st.NumMessages != tc.want {
			t.Errorf("STATUS %s MESSAGES = %d, want %d", tc.name, *st.NumMessages, tc.want)
		}
	}
	st, _ := c.Status("Old", &imap.StatusOptions{NumUnseen: true}).Wait()
	if *st.NumUnseen != 1 {
		t.Errorf("flags lost in INBOX rename: UNSEEN = %d, want 1", *st.NumUnseen)
	}
}

func TestSubscriptions(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	for _, n := range []string{"Sent", "Gone", "a/b"} {
		if err := c.Subscribe(n).Wait(); err != nil {
			t.Fatalf("SUBSCRIBE %s: %v", n, err)
		}
	}
	if err := c.Subscribe("../x").Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("SUBSCRIBE ../x = %v, want NO [CANNOT]", err)
	}
	subs, err := uidlist.ReadSubscriptions(string(f.maildir))
	if err != nil || !slices.Equal(subs.Names, []string{"Sent", "Gone", "a/b"}) {
		t.Errorf("subscriptions file = %+v, %v", subs, err)
	}
	got := listed(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	want := []string{`Gone \HasNoChildren \NonExistent \Subscribed`, `Sent \HasNoChildren \Sent \Subscribed`,
		`a/b \HasNoChildren \NonExistent \Subscribed`}
	if !slices.Equal(got, want) {
		t.Errorf("LIST (SUBSCRIBED) = %v, want %v", got, want)
	}
	data, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var sawA bool
	for _, d := range data {
		if d.Mailbox == "a" {
			sawA = d.ChildInfo != nil && d.ChildInfo.Subscribed
		}
	}
	if !sawA {
		t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH) has no \"a\" with CHILDINFO (\"SUBSCRIBED\"): %+v", data)
	}
	if err := c.Unsubscribe("Gone").Wait(); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, c, "", "G*", &imap.ListOptions{SelectSubscribed: true}); len(got) != 0 {
		t.Errorf("after UNSUBSCRIBE: %v", got)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	m1 := f.deliver("", "Subject: a\n\nline\n", maildir.DeliverOptions{})
	m2 := f.deliver("", "Subject: b\n\nline\nline\n", maildir.DeliverOptions{Flags: "ST"})
	f.writeRaw("cur", "1000.P1.other:2,S", "Subject: c\n\nno sizes in the name\n")
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true,
		NumDeleted: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	wantSize := m1.VSize + m2.VSize + int64(len(crlf("Subject: c\n\nno sizes in the name\n")))
	if *st.NumMessages != 3 || *st.NumUnseen != 1 || *st.NumDeleted != 1 || *st.Size != wantSize || st.UIDNext != 4 || st.UIDValidity == 0 {
		t.Errorf("STATUS = messages %d unseen %d deleted %d size %d uidnext %d uidvalidity %d; want 3 1 1 %d 4 >0",
			*st.NumMessages, *st.NumUnseen, *st.NumDeleted, *st.Size, st.UIDNext, st.UIDValidity, wantSize)
	}
	// LIST-STATUS.
	data, err := c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil || len(data) != 1 || data[0].Status == nil || *data[0].Status.NumMessages != 3 {
		t.Errorf("LIST RETURN (STATUS (MESSAGES)) = %+v, %v", data, err)
	}
}
