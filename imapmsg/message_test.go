package imapmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
)

// crlf returns the CRLF form of a stored message, as maildir serves it.
func crlf(t testing.TB, stored []byte) []byte {
	t.Helper()
	b, err := io.ReadAll(maildir.NewCRLFReader(bytes.NewReader(stored)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func samples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		out[filepath.Base(f)] = readSample(t, filepath.Base(f))
	}
	// Generated: too big to keep in testdata.
	long := []byte("Subject: one long line\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n")
	long = append(long, bytes.Repeat([]byte("x"), 10<<20)...)
	long = append(long, "\n--b--\n"...)
	out["generated-10mb-line"] = long
	out["generated-empty"] = nil
	out["generated-only-lf"] = []byte("\n")
	out["generated-header-10mb-line"] = append([]byte("X-Long: "), bytes.Repeat([]byte("y"), 10<<20)...)
	return out
}

func section(t testing.TB, m *Message, item *imap.FetchItemBodySection) []byte {
	t.Helper()
	s, err := m.BodySection(item)
	if err != nil {
		t.Fatalf("BodySection(%+v): %v", item, err)
	}
	var b bytes.Buffer
	n, err := s.WriteTo(&b)
	if err != nil {
		t.Fatalf("BodySection(%+v).WriteTo: %v", item, err)
	}
	if n != s.Size || int64(b.Len()) != s.Size {
		t.Fatalf("BodySection(%+v): Size %d, WriteTo wrote %d (returned %d)", item, s.Size, b.Len(), n)
	}
	return b.Bytes()
}

// TestSizesExact checks, for every sample, every size the package reports
// against the bytes it writes and against the CRLF form of the file.
func TestSizesExact(t *testing.T) {
	for name, data := range samples(t) {
		t.Run(name, func(t *testing.T) {
			checkConsistent(t, data)
		})
	}
}

func checkConsistent(t testing.TB, data []byte) {
	// BODY sections carry NUL as 0x80 (IMAP literals cannot hold NUL).
	want := bytes.ReplaceAll(crlf(t, data), []byte{0}, []byte{0x80})
	for _, hint := range []int64{-1, int64(len(want))} {
		m := New(bytes.NewReader(data), int64(len(data)), hint)
		if v, err := m.VSize(); err != nil || v != int64(len(want)) {
			t.Fatalf("VSize() = %d, %v; want %d", v, err, len(want))
		}
		if got := section(t, m, &imap.FetchItemBodySection{}); !bytes.Equal(got, want) {
			t.Fatalf("BODY[] differs from the CRLF form (%d vs %d bytes)", len(got), len(want))
		}
		hdr := section(t, New(bytes.NewReader(data), int64(len(data)), hint), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
		text := section(t, New(bytes.NewReader(data), int64(len(data)), hint), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
		if !bytes.Equal(append(append([]byte(nil), hdr...), text...), want) {
			t.Fatalf("BODY[HEADER] + BODY[TEXT] != BODY[]")
		}
	}
	m := New(bytes.NewReader(data), int64(len(data)), -1)
	bs, err := m.BodyStructure()
	if err != nil {
		t.Fatal(err)
	}
	checkPart(t, m, want, nil, bs)
	// Partial ranges are slices of the whole.
	n := int64(len(want))
	for _, p := range []imap.SectionPartial{
		{Offset: 0, Size: 1}, {Offset: 1, Size: 10}, {Offset: n / 2, Size: 1 << 30},
		{Offset: n, Size: 5}, {Offset: n + 3, Size: 5}, {Offset: 0, Size: 0},
	} {
		got := section(t, m, &imap.FetchItemBodySection{Partial: &p})
		lo := min(p.Offset, int64(len(want)))
		hi := min(lo+p.Size, int64(len(want)))
		if !bytes.Equal(got, want[lo:hi]) {
			t.Fatalf("BODY[]<%d.%d> = %q, want %q", p.Offset, p.Size, trunc(got), trunc(want[lo:hi]))
		}
	}
}

func checkPart(t testing.TB, m *Message, whole []byte, path []int, bs imap.BodyStructure) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) == 0 {
			t.Fatalf("part %v: multipart without children", path)
		}
		for i, c := range bs.Children {
			checkPart(t, m, whole, append(append([]int(nil), path...), i+1), c)
		}
		if len(path) == 0 {
			return
		}
		body := section(t, m, &imap.FetchItemBodySection{Part: path})
		mimeHdr := section(t, m, &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierMIME})
		if !bytes.Contains(whole, append(mimeHdr, body...)) {
			t.Fatalf("part %v: MIME header and body are not consecutive in the message", path)
		}
	case *imap.BodyStructureSinglePart:
		p := path
		if len(p) == 0 {
			p = []int{1}
		}
		body := section(t, m, &imap.FetchItemBodySection{Part: p})
		if int64(len(body)) != int64(bs.Size) {
			t.Fatalf("part %v: size %d, BODY[%v] has %d bytes", p, bs.Size, p, len(body))
		}
		if !bytes.Contains(whole, body) {
			t.Fatalf("part %v: body not in the message", p)
		}
		lines := int64(bytes.Count(body, []byte{'\n'}))
		if bs.Text != nil && bs.Text.NumLines != lines {
			t.Fatalf("part %v: %d lines, body has %d", p, bs.Text.NumLines, lines)
		}
		mimeHdr := section(t, m, &imap.FetchItemBodySection{Part: p, Specifier: imap.PartSpecifierMIME})
		if !bytes.Contains(whole, append(mimeHdr, body...)) {
			t.Fatalf("part %v: MIME header and body are not consecutive in the message", p)
		}
		if msg := bs.MessageRFC822; msg != nil {
			if msg.NumLines != lines {
				t.Fatalf("part %v: message has %d lines, body has %d", p, msg.NumLines, lines)
			}
			h := section(t, m, &imap.FetchItemBodySection{Part: p, Specifier: imap.PartSpecifierHeader})
			text := section(t, m, &imap.FetchItemBodySection{Part: p, Specifier: imap.PartSpecifierText})
			if !bytes.Equal(append(h, text...), body) {
				t.Fatalf("part %v: HEADER + TEXT != the message", p)
			}
			switch inner := msg.BodyStructure.(type) {
			case *imap.BodyStructureMultiPart:
				checkPart(t, m, whole, p, inner)
			case *imap.BodyStructureSinglePart:
				// p.1 is the inner message's body.
				inBody := section(t, m, &imap.FetchItemBodySection{Part: append(append([]int(nil), p...), 1)})
				if !bytes.Equal(inBody, text) || int64(len(inBody)) != int64(inner.Size) {
					t.Fatalf("part %v.1: %d bytes, want the message's text (%d) and size %d", p, len(inBody), len(text), inner.Size)
				}
			}
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}

func TestBodyStructure(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"simple.eml", `("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 96 6 NIL NIL NIL NIL)`},
		{"mixed.eml", `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 40 1 NIL NIL NIL NIL)` +
			`("application" "pdf" ("name" "report.pdf") NIL "Quarterly report" "base64" 168 NIL ("attachment" ("filename" "report.pdf")) NIL NIL)` +
			`("image" "png" NIL "<dot@example.org>" NIL "base64" 98 NIL ("inline" ("filename" "dot.png")) NIL NIL)` +
			` "mixed" ("boundary" "outer-boundary") NIL NIL NIL)`},
		{"nested.eml", `((("text" "plain" ("charset" "iso-8859-1") NIL NIL "quoted-printable" 85 2 NIL NIL NIL NIL)` +
			`("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 70 0 NIL NIL NIL NIL)` +
			` "alternative" ("boundary" "alt") NIL NIL NIL)` +
			`("text" "csv" ("charset" "us-ascii" "name" "data.csv") NIL NIL "7bit" 12 1 NIL ("attachment" ("filename" "data.csv")) ("de" "en") NIL)` +
			` "mixed" ("boundary" "mix") NIL NIL NIL)`},
		{"rfc822.eml", `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)` +
			`("message" "rfc822" NIL NIL NIL "7bit" 400 ("Mon, 02 Nov 2026 10:15:00 +0100" "Lunch on Friday?" (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.net")) NIL NIL NIL "<20261102101500.1234@example.org>")` +
			` (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 13 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)` +
			` 17 NIL ("inline" NIL) NIL NIL)` +
			` "mixed" ("boundary" "fwd") NIL NIL NIL)`},
		{"encoded.eml", `("text" "plain" ("charset" "ISO-8859-1") NIL NIL "base64" 26 1 NIL NIL NIL NIL)`},
		{"8bit.eml", `("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)`},
		// No blank line: everything is header, the body is empty.
		{"noseparator.eml", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"nul.eml", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 27 2 NIL NIL NIL NIL)`},
		// No delimiter matches: one empty part, as Dovecot reports it.
		{"brokenboundary.eml", `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "real") NIL NIL NIL)`},
		// The inner multipart is never closed; the outer delimiter ends it.
		// The malformed "foo" parameter and the second boundary are ignored.
		{"unclosed.eml", `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)` +
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 19 0 NIL NIL NIL NIL) "alternative" ("boundary" "b2") NIL NIL NIL)` +
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 30 1 NIL NIL NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)`},
		// A bare CR ends no line: the whole file is one header line.
		{"cronly.eml", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"crlf.eml", `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 19 1 NIL NIL NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL)`},
	}
	for _, tt := range tests {
		data := readSample(t, tt.file)
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		bs, err := m.BodyStructure()
		if err != nil {
			t.Fatalf("%s: BodyStructure: %v", tt.file, err)
		}
		if got := formatBS(bs, true); got != tt.want {
			t.Errorf("%s: BodyStructure() =\n%s\nwant\n%s", tt.file, got, tt.want)
		}
	}
}

func TestBodyStructureDefaults(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"no content-type", "Subject: x\n\nhi\n", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)`},
		{"invalid content-type", "Content-Type: garbage\n\nhi\n", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)`},
		{"multipart without boundary", "Content-Type: multipart/mixed\n\nhi\n", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1 NIL NIL NIL NIL)`},
		{"digest default", "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\n\nbody\n--d--\n",
			`(("message" "rfc822" NIL NIL NIL "7bit" 22 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) "digest" ("boundary" "d") NIL NIL NIL)`},
		{"encoded message/rfc822 is opaque", "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoK\n",
			`("message" "rfc822" NIL NIL NIL "base64" 18 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL)`},
		{"rfc2231 parameters", "Content-Type: application/octet-stream;\n name*0*=utf-8''caf%C3%A9;\n name*1=\".txt\"\nContent-Disposition: attachment; filename*=iso-8859-1'de'K%F6ln.txt\n\nx\n",
			`("application" "octet-stream" ("name" "café.txt") NIL NIL "7bit" 3 NIL ("attachment" ("filename" "Köln.txt")) NIL NIL)`},
		{"comments and case", "Content-Type: Text/HTML (comment); Charset=\"UTF-8\" (more)\nContent-Transfer-Encoding: Quoted-Printable\n\nx",
			`("text" "html" ("charset" "UTF-8") NIL NIL "quoted-printable" 1 0 NIL NIL NIL NIL)`},
		{"empty body before delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n--b\n\n\n--b--\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`},
	}
	for _, tt := range tests {
		m := New(strings.NewReader(tt.msg), int64(len(tt.msg)), -1)
		bs, err := m.BodyStructure()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := formatBS(bs, true); got != tt.want {
			t.Errorf("%s: BodyStructure() =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
		checkConsistent(t, []byte(tt.msg))
	}
}

func TestSections(t *testing.T) {
	tests := []struct {
		file string
		item imap.FetchItemBodySection
		want string
	}{
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{1}}, "Please find the report attached.\r\nCheers"},
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{1}, Specifier: imap.PartSpecifierMIME},
			"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"},
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{3}, Partial: &imap.SectionPartial{Offset: 4, Size: 6}}, "Rw0KGg"},
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{4}}, ""},
		// Part 1 of a leaf is the leaf itself, as in Dovecot.
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{1, 1}}, "Please find the report attached.\r\nCheers"},
		{"mixed.eml", imap.FetchItemBodySection{Part: []int{1, 2}}, ""},
		{"mixed.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject", "TO", "X-Absent"}},
			"To: bob@example.net\r\nSubject: Report and photo\r\n\r\n"},
		{"mixed.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Content-Type", "message-id", "date", "mime-version"}},
			"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Report and photo\r\n\r\n"},
		{"nested.eml", imap.FetchItemBodySection{Part: []int{1, 2}}, "<html><body><p>Gr=C3=BC=C3=9Fe aus <b>K=C3=B6ln</b>!</p></body></html>"},
		{"nested.eml", imap.FetchItemBodySection{Part: []int{1, 1}, Specifier: imap.PartSpecifierMIME},
			"Content-Type: text/plain; charset=\"iso-8859-1\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"},
		{"rfc822.eml", imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}},
			"Subject: Lunch on Friday?\r\n\r\n"},
		{"rfc822.eml", imap.FetchItemBodySection{Part: []int{2, 2}}, "<p>Lunch?</p>"},
		{"rfc822.eml", imap.FetchItemBodySection{Part: []int{2, 1}, Specifier: imap.PartSpecifierMIME}, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"},
		{"rfc822.eml", imap.FetchItemBodySection{Part: []int{1}, Specifier: imap.PartSpecifierHeader}, ""},
		{"simple.eml", imap.FetchItemBodySection{Part: []int{1}, Partial: &imap.SectionPartial{Offset: 0, Size: 9}}, "Hi Bob,\r\n"},
		{"simple.eml", imap.FetchItemBodySection{Part: []int{1}, Specifier: imap.PartSpecifierMIME, HeaderFields: []string{"x"}},
			"Return-Path: <alice@example.org>\r\nDate: Mon, 02 Nov 2026 10:15:00 +0100\r\nFrom: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.net>, carol@example.com\r\nCc: \"Dave, Jr.\" <dave@example.com>\r\nSubject: Lunch on Friday?\r\nMessage-ID: <20261102101500.1234@example.org>\r\nIn-Reply-To: <prev.1@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"},
		{"simple.eml", imap.FetchItemBodySection{Part: []int{2}}, ""},
		{"noseparator.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader},
			"Subject: no separator\r\nFrom: a@example.org\r\nX-Note: this message has no body and no blank line"},
		{"noseparator.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}, ""},
		// HEADER.FIELDS ends each field and adds a blank line; .NOT keeps
		// the header as it is (as Dovecot does).
		{"noseparator.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"x-note"}},
			"X-Note: this message has no body and no blank line\r\n\r\n"},
		{"noseparator.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"subject"}},
			"From: a@example.org\r\nX-Note: this message has no body and no blank line"},
		{"nul.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}, "body with \x80 nul\x80 bytes\r\n\x80\r\n"},
		{"crlf.eml", imap.FetchItemBodySection{Part: []int{1}}, "mixed\r\nline endings"},
		{"cronly.eml", imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"from"}},
			"From: cr@example.org\rSubject: CR only\rContent-Type: text/plain\r\rline one\rline two\r\r\n\r\n"},
	}
	for _, tt := range tests {
		data := readSample(t, tt.file)
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		if got := string(section(t, m, &tt.item)); got != tt.want {
			t.Errorf("%s: BodySection(%+v) = %q, want %q", tt.file, tt.item, got, tt.want)
		}
	}
}

// TestEmbeddedMessageSections checks the sections of a message/rfc822
// part whose message gave its header's last line ending to the delimiter
// after it: the part keeps it (as in Dovecot, so sizes agree) and so does
// the message's HEADER (unlike Dovecot; RFC 3501 §6.4.5), so that HEADER
// and TEXT make up the part.
func TestEmbeddedMessageSections(t *testing.T) {
	tests := []struct {
		name, msg                  string
		part                       []int
		body, header, text, inMIME string // BODY[part], part.HEADER, part.TEXT, part.1.MIME
	}{
		{"blank line only, junk after delimiters (fuzz)",
			"Content-TYpe:multipArt/0;BoundArY= f \n\n0000\n--f0\nContent-TYpe:messAge/rfC822\n\n\n--f00",
			[]int{1}, "\r\n", "\r\n", "", "\r\n"},
		{"blank line before delimiter",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
			[]int{1}, "Subject: x\r\n\r\n", "Subject: x\r\n\r\n", "", "Subject: x\r\n\r\n"},
		{"header cut short by delimiter",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n--b--\n",
			[]int{1}, "Subject: x\r\n", "Subject: x\r\n", "", "Subject: x\r\n"},
		{"message in message, outer level",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
			[]int{1}, "Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n", "Content-Type: message/rfc822\r\n\r\n", "Subject: x\r\n\r\n",
			"Content-Type: message/rfc822\r\n\r\n"},
		{"message in message, inner level",
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: x\n\n--b--\n",
			[]int{1, 1}, "Subject: x\r\n\r\n", "Subject: x\r\n\r\n", "", "Subject: x\r\n\r\n"},
		{"CRLF, blank line before delimiter",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n--b--\r\n",
			[]int{1}, "Subject: x\r\n\r\n", "Subject: x\r\n\r\n", "", "Subject: x\r\n\r\n"},
	}
	for _, tt := range tests {
		m := New(strings.NewReader(tt.msg), int64(len(tt.msg)), -1)
		for _, c := range []struct {
			item imap.FetchItemBodySection
			want string
		}{
			{imap.FetchItemBodySection{Part: tt.part}, tt.body},
			{imap.FetchItemBodySection{Part: tt.part, Specifier: imap.PartSpecifierHeader}, tt.header},
			{imap.FetchItemBodySection{Part: tt.part, Specifier: imap.PartSpecifierText}, tt.text},
			{imap.FetchItemBodySection{Part: append(slices.Clone(tt.part), 1), Specifier: imap.PartSpecifierMIME}, tt.inMIME},
		} {
			if got := string(section(t, m, &c.item)); got != c.want {
				t.Errorf("%s: BodySection(%v %s) = %q, want %q", tt.name, c.item.Part, c.item.Specifier, got, c.want)
			}
		}
		checkConsistent(t, []byte(tt.msg))
	}
}

func TestHeaderFieldsContinuation(t *testing.T) {
	msg := "Received: from a\n\tby b\nSubject: one\n two\nX-A: 1\n\nbody\n"
	m := New(strings.NewReader(msg), int64(len(msg)), -1)
	got := section(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "Received"}})
	if want := "Received: from a\r\n\tby b\r\nSubject: one\r\n two\r\n\r\n"; string(got) != want {
		t.Errorf("HEADER.FIELDS = %q, want %q", got, want)
	}
}

func TestWrongVSize(t *testing.T) {
	data := readSample(t, "simple.eml")
	real := int64(len(crlf(t, data)))
	for _, hint := range []int64{real - 5, real + 5} {
		m := New(bytes.NewReader(data), int64(len(data)), hint)
		s, err := m.BodySection(&imap.FetchItemBodySection{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		n, err := s.WriteTo(&b)
		if !errors.Is(err, ErrSizeChanged) {
			t.Errorf("vsize %d (real %d): WriteTo error %v, want ErrSizeChanged", hint, real, err)
		}
		if n != hint || int64(b.Len()) != hint {
			t.Errorf("vsize %d: wrote %d (%d), want exactly the announced size", hint, b.Len(), n)
		}
	}
}

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{100, slurpSize + 1000} {
		body := strings.Repeat("line of text\n", size/13)
		msg := "Subject: file\nContent-Type: text/plain\n\n" + body
		p := filepath.Join(dir, fmt.Sprint(size))
		if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Open(p, -1)
		if err != nil {
			t.Fatal(err)
		}
		got := section(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
		if want := strings.ReplaceAll(body, "\n", "\r\n"); string(got) != want {
			t.Errorf("size %d: BODY[TEXT] differs", size)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing"), -1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) error %v, want ErrNotExist", err)
	}
}

// shortReader claims more bytes than it has, as a file truncated after its
// size was taken.
type shortReader struct{ *bytes.Reader }

func TestTruncatedFile(t *testing.T) {
	data := readSample(t, "mixed.eml")
	// The file claims 100 more bytes than it has.
	m := New(shortReader{bytes.NewReader(data)}, int64(len(data))+100, -1)
	bs, err := m.BodyStructure()
	if err != nil || bs == nil {
		t.Fatalf("BodyStructure of a short file: %v", err)
	}
	checkConsistent(t, data)
}
