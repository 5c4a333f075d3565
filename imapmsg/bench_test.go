package imapmsg

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// benchMessage is a typical newsletter-sized message: a dozen header
// fields with Received lines, a multipart/alternative with quoted-printable
// text and HTML, about 6 KB.
func benchMessage(i int) []byte {
	var b strings.Builder
	for r := range 4 {
		fmt.Fprintf(&b, "Received: from relay%d.example.net (relay%d.example.net [192.0.2.%d])\n\tby mx.example.org with ESMTPS id %08x\n\tfor <alice@example.org>; Mon, 02 Nov 2026 10:%02d:00 +0100\n", r, r, r, i, r)
	}
	fmt.Fprintf(&b, "Date: Mon, 02 Nov 2026 10:15:%02d +0100\nFrom: \"Newsletter %d\" <news%d@lists.example.com>\nTo: Alice Example <alice@example.org>\n", i%60, i, i)
	fmt.Fprintf(&b, "Cc: bob@example.net, \"Carol C.\" <carol@example.com>\nSubject: =?UTF-8?Q?Issue_%d:_Gr=C3=BC=C3=9Fe?= and news\nMessage-ID: <%d.news@lists.example.com>\n", i, i)
	b.WriteString("List-Id: <news.lists.example.com>\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"=_alt\"\n\n--=_alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
	for l := range 30 {
		fmt.Fprintf(&b, "Paragraph %d of issue %d: lorem ipsum dolor sit amet, consectetur adipiscing =\nelit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n", l, i)
	}
	b.WriteString("\n--=_alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<html><body>\n")
	for l := range 20 {
		fmt.Fprintf(&b, "<p>Paragraph %d: lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\n", l)
	}
	b.WriteString("</body></html>\n--=_alt--\n")
	return []byte(b.String())
}

func BenchmarkEnvelope(b *testing.B) {
	data := benchMessage(1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		if _, err := m.Envelope(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyStructure(b *testing.B) {
	data := benchMessage(1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		if _, err := m.BodyStructure(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchText searches 1,000 message files for a string that is in
// none of them (the worst case: every text part is decoded and read to
// its end); ns/op is for all 1,000.
func BenchmarkSearchText(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	var total int64
	for i := range 1000 {
		p := filepath.Join(dir, fmt.Sprint(i))
		data := benchMessage(i)
		total += int64(len(data))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	c := imap.SearchCriteria{Text: []string{"no such words"}}
	b.SetBytes(total)
	for b.Loop() {
		mt := NewMatcher(&c)
		for _, p := range paths {
			ok, err := mt.Match(&MessageInfo{}, func() (*Message, error) { return Open(p, -1) })
			if err != nil || ok {
				b.Fatalf("Match = %v, %v", ok, err)
			}
		}
	}
}
