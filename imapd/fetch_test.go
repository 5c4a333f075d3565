package imapd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/maildir"
)

const multipartMessage = `From: a@example.org
Subject: parts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

preamble
--XX
Content-Type: text/plain; charset=utf-8

Hello
--XX
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAEC/w==
--XX--
`

func TestFetchStructureAndBinary(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	f.deliver("", multipartMessage, maildir.DeliverOptions{})
	selectBox(t, c, "INBOX")
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
		BodyStructure:     &imap.FetchItemBodyStructure{Extended: true},
		BodySection:       []*imap.FetchItemBodySection{{Peek: true, Part: []int{1}}, {Peek: true, Part: []int{2}, Specifier: imap.PartSpecifierMIME}},
		BinarySection:     []*imap.FetchItemBinarySection{{Peek: true, Part: []int{2}}},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	})
	m := msgs[0]
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE = %#v", m.BodyStructure)
	}
	if p := mp.Children[0].(*imap.BodyStructureSinglePart); p.Type != "text" || p.Size != uint32(len("Hello")) {
		t.Errorf("part 1 = %+v", p)
	}
	if got := string(m.BodySection[0].Bytes); got != "Hello" {
		t.Errorf("BODY[1] = %q", got)
	}
	if got := string(m.BodySection[1].Bytes); got != "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" {
		t.Errorf("BODY[2.MIME] = %q", got)
	}
	if len(m.BinarySection) != 1 || !bytes.Equal(m.BinarySection[0].Bytes, []byte{0, 1, 2, 0xff}) {
		t.Errorf("BINARY[2] = %v", m.BinarySection)
	}
	if len(m.BinarySectionSize) != 1 || m.BinarySectionSize[0].Size != 4 {
		t.Errorf("BINARY.SIZE[2] = %v", m.BinarySectionSize)
	}
}

// TestMalformedMessages fetches and searches messages as other software
// may leave them: sizes stay exact and nothing fails.
func TestMalformedMessages(t *testing.T) {
	f := newFixture(t)
	long := "Subject: long line\n\n" + strings.Repeat("y", 10<<20) + "\n"
	contents := []string{
		"No-Separator: true\nX-Other: header only",
		"Subject: nul\x00bytes\n\nbody \x00 with NUL\n",
		"Subject: 8-bit \xe4\xf6\xfc\n\n8-bit body \xff\n",
		"Content-Type: multipart/mixed; boundary=\"never\"\n\nno parts at all\n",
		"Content-Type: multipart/mixed\n\nmultipart without boundary\n",
		"Subject: cr\r\n\r\nalready CRLF\r\nbare\rCR\n",
		long,
		"",
	}
	for i, content := range contents {
		f.writeRaw("cur", "100000000"+string(rune('0'+i))+".P1.other:2,", content)
	}
	c := f.login()
	selectBox(t, c, "INBOX")
	msgs := fetchAll(t, c, imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{{Peek: true}, {Peek: true, Specifier: imap.PartSpecifierText}},
	})
	if len(msgs) != len(contents) {
		t.Fatalf("FETCH returned %d messages, want %d", len(msgs), len(contents))
	}
	for i, m := range msgs {
		want := maildirCRLF(contents[i])
		// IMAP literals cannot carry NUL: imapmsg sends it as 0x80, as
		// Dovecot does.
		want80 := bytes.ReplaceAll(want, []byte{0}, []byte{0x80})
		if got := m.BodySection[0].Bytes; !bytes.Equal(got, want) && !bytes.Equal(got, want80) {
			t.Errorf("message %d: BODY[] is %q, want %q", i+1, trunc(got), trunc(want))
		}
		if m.RFC822Size != int64(len(want)) {
			t.Errorf("message %d: RFC822.SIZE %d, want %d", i+1, m.RFC822Size, len(want))
		}
		if m.BodyStructure == nil || m.Envelope == nil {
			t.Errorf("message %d: no BODYSTRUCTURE or ENVELOPE", i+1)
		}
	}
	if got := string(msgs[0].BodySection[1].Bytes); got != "" {
		t.Errorf("BODY[TEXT] of a message without separator = %q, want empty", got)
	}
	data, err := c.Search(&imap.SearchCriteria{Text: []string{"with NUL"}}, nil).Wait()
	if err != nil || data.All.String() != "2" {
		t.Errorf("SEARCH TEXT \"with NUL\" = %v, %v; want 2", data, err)
	}
	data, err = c.Search(&imap.SearchCriteria{Body: []string{"yyyy"}}, nil).Wait()
	if err != nil || data.All.String() != "7" {
		t.Errorf("SEARCH BODY in the 10 MB line = %v, %v; want 7", data, err)
	}
}

// maildirCRLF is what NewCRLFReader serves for a stored file.
func maildirCRLF(s string) []byte {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' && (i == 0 || s[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(s[i])
	}
	return b.Bytes()
}

// TestFetchUsesCache: ENVELOPE, once fetched, comes from the folder's
// cache file, also in another session.
func TestFetchUsesCache(t *testing.T) {
	f := newFixture(t)
	del := f.deliver("", "Subject: first\n\nbody\n", maildir.DeliverOptions{Flags: "S"})
	c := f.login()
	selectBox(t, c, "INBOX")
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true})
	if msgs[0].Envelope.Subject != "first" {
		t.Fatalf("ENVELOPE subject %q", msgs[0].Envelope.Subject)
	}
	if _, err := os.Stat(filepath.Join(string(f.maildir), imapcache.FileName)); err != nil {
		t.Fatalf("no cache file after FETCH ENVELOPE: %v", err)
	}
	// Change the file behind the cache's back (no one does this; it shows
	// where the answer comes from).
	if err := os.WriteFile(filepath.Join(f.maildir.Cur(), curName(t, f.maildir, baseOf(del.Name))), []byte("Subject: other\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := f.login()
	selectBox(t, c2, "INBOX")
	msgs = fetchAll(t, c2, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true})
	if msgs[0].Envelope.Subject != "first" {
		t.Errorf("second session's ENVELOPE subject %q, want the cached \"first\"", msgs[0].Envelope.Subject)
	}
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
