package imapd

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestParseSpecialUse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []imap.MailboxAttr
	}{
		{"one", "\\Sent\n", []imap.MailboxAttr{imap.MailboxAttrSent}},
		{"two, any space", " \\archive\t\\Junk\r\n", []imap.MailboxAttr{imap.MailboxAttrArchive, imap.MailboxAttrJunk}},
		{"duplicates", "\\Trash \\TRASH", []imap.MailboxAttr{imap.MailboxAttrTrash}},
		{"unknown words", "\\Bogus Sent \\Noselect \\All", []imap.MailboxAttr{imap.MailboxAttrAll}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		if got := ParseSpecialUse([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ParseSpecialUse(%q) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func FuzzSpecialUse(f *testing.F) {
	for _, s := range []string{"\\Sent\n", "\\Archive\n\\Flagged\n", "", "\\x \\\\ \x00\xff", "\\Drafts\\Junk"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs := ParseSpecialUse(data)
		for _, a := range attrs {
			if _, ok := canonicalSpecialUse(string(a)); !ok {
				t.Fatalf("ParseSpecialUse(%q) gave %q, not a special-use attribute", data, a)
			}
		}
		if again := ParseSpecialUse(FormatSpecialUse(attrs)); !slices.Equal(again, attrs) {
			t.Fatalf("round trip of %v gave %v", attrs, again)
		}
	})
}
