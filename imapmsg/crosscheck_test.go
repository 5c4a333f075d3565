package imapmsg

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// TestCrossCheckGoIMAP compares, for well-formed messages, the envelope,
// body structure and sections with what go-imap's own helpers make of the
// CRLF form (they buffer whole messages and are not exact for malformed
// ones, which is why the server does not use them).
func TestCrossCheckGoIMAP(t *testing.T) {
	for _, name := range []string{"simple.eml", "mixed.eml", "nested.eml", "rfc822.eml", "crlf.eml"} {
		data := readSample(t, name)
		wire := crlf(t, data)
		m := New(bytes.NewReader(data), int64(len(data)), -1)

		bs, err := m.BodyStructure()
		if err != nil {
			t.Fatal(err)
		}
		theirs := imapserver.ExtractBodyStructure(bytes.NewReader(wire))
		if got, want := normalise(formatBS(bs, true)), normalise(formatBS(theirs, true)); got != want {
			t.Errorf("%s: BodyStructure\n%s\ngo-imap\n%s", name, got, want)
		}

		env, err := m.Envelope()
		if err != nil {
			t.Fatal(err)
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(wire)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := formatEnv(env), formatEnv(imapserver.ExtractEnvelope(h)); got != want {
			t.Errorf("%s: Envelope\n%s\ngo-imap\n%s", name, got, want)
		}

		bs.Walk(func(path []int, part imap.BodyStructure) bool {
			items := []imap.FetchItemBodySection{{Part: path}}
			if len(path) == 0 {
				items = []imap.FetchItemBodySection{{}, {Specifier: imap.PartSpecifierText}}
			}
			if _, ok := part.(*imap.BodyStructureSinglePart); ok && len(path) > 0 {
				items = append(items, imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierMIME})
			} else if len(path) > 0 {
				// go-imap gives the line ending after a nested close
				// delimiter to the enclosing boundary, Dovecot (and we)
				// to the nested multipart: TestDovecotOracle checks these.
				items = items[:0]
			}
			for _, item := range items {
				got := section(t, New(bytes.NewReader(data), int64(len(data)), -1), &item)
				want := imapserver.ExtractBodySection(bytes.NewReader(wire), &item)
				if !bytes.Equal(got, want) {
					t.Errorf("%s: BODY[%v %s] = %q\ngo-imap %q", name, item.Part, item.Specifier, trunc(got), trunc(want))
				}
			}
			return true
		})
	}
}

// normalise lower-cases the transfer encodings, which go-imap keeps as
// written and its writer lower-cases, and gives text parts without a
// charset the default one (RFC 2045 §5.2), which we report as Dovecot does.
func normalise(s string) string {
	return strings.NewReplacer(`"BASE64"`, `"base64"`,
		`("text" "plain" NIL `, `("text" "plain" ("charset" "us-ascii") `).Replace(s)
}
