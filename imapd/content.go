package imapd

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/postkit/postkit/maildir"
)

// parsedMessage is what FETCH and SEARCH need of a message's content
// beyond its file: everything a MIME parser has to find. Sizes and bytes
// are those of the message with CRLF line endings, as IMAP clients see
// it.
type parsedMessage interface {
	Envelope() *imap.Envelope
	// BodyStructure is the extended structure (BODYSTRUCTURE); FETCH BODY
	// writes the non-extended part of it.
	BodyStructure() imap.BodyStructure
	// BodySection returns a BODY[section] other than the whole message,
	// without applying a partial range.
	BodySection(section *imap.FetchItemBodySection) ([]byte, error)
	// BinarySection returns BINARY[part] (RFC 3516): the part's content
	// with its Content-Transfer-Encoding undone.
	BinarySection(part []int) ([]byte, error)
	// Match reports whether the message matches the content keys of c:
	// Header, Body, Text, SentSince and SentBefore (the others are
	// checked by the caller).
	Match(c *imap.SearchCriteria) bool
}

// messageParser reads a message file of size bytes (LF line endings, as
// stored).
type messageParser func(r io.ReaderAt, size int64) (parsedMessage, error)

// libraryMessage is a parsedMessage built with go-imap's own helpers
// from the whole message read into memory.
type libraryMessage struct {
	data   []byte // CRLF form
	header textproto.Header
	body   []byte
}

func parseWithLibrary(r io.ReaderAt, size int64) (parsedMessage, error) {
	data, err := io.ReadAll(maildir.NewCRLFReader(io.NewSectionReader(r, 0, size)))
	if err != nil {
		return nil, err
	}
	m := &libraryMessage{data: data}
	br := bufio.NewReader(bytes.NewReader(data))
	h, err := textproto.ReadHeader(br)
	if err == nil {
		m.header = h
		m.body, _ = io.ReadAll(br)
	} else {
		m.body = data
	}
	return m, nil
}

func (m *libraryMessage) Envelope() *imap.Envelope { return imapserver.ExtractEnvelope(m.header) }

func (m *libraryMessage) BodyStructure() imap.BodyStructure {
	bs := imapserver.ExtractBodyStructure(bytes.NewReader(m.data))
	return fixBodyStructure(bs)
}

// fixBodyStructure replaces multiparts without parts, which go-imap
// cannot write, by empty text/plain parts.
func fixBodyStructure(bs imap.BodyStructure) imap.BodyStructure {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(b.Children) == 0 {
			return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Text: &imap.BodyStructureText{},
				Extended: &imap.BodyStructureSinglePartExt{}}
		}
		for i, c := range b.Children {
			b.Children[i] = fixBodyStructure(c)
		}
	case *imap.BodyStructureSinglePart:
		if b.MessageRFC822 != nil && b.MessageRFC822.BodyStructure != nil {
			b.MessageRFC822.BodyStructure = fixBodyStructure(b.MessageRFC822.BodyStructure)
		}
	}
	return bs
}

func (m *libraryMessage) BodySection(section *imap.FetchItemBodySection) ([]byte, error) {
	s := *section
	s.Partial = nil
	return imapserver.ExtractBodySection(bytes.NewReader(m.data), &s), nil
}

func (m *libraryMessage) BinarySection(part []int) ([]byte, error) {
	return imapserver.ExtractBinarySection(bytes.NewReader(m.data), &imap.FetchItemBinarySection{Part: part}), nil
}

func (m *libraryMessage) Match(c *imap.SearchCriteria) bool {
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		mh := mail.Header{Header: gomessage.Header{Header: m.header}}
		date, err := mh.Date()
		if err != nil || date.IsZero() {
			return false
		}
		d := dateOnly(date)
		if !c.SentSince.IsZero() && d.Before(dateOnly(c.SentSince)) {
			return false
		}
		if !c.SentBefore.IsZero() && !d.Before(dateOnly(c.SentBefore)) {
			return false
		}
	}
	for _, h := range c.Header {
		v := m.header.Get(h.Key)
		if !m.header.Has(h.Key) || !containsFold(v, h.Value) {
			return false
		}
	}
	for _, s := range c.Body {
		if !containsFold(string(m.body), s) {
			return false
		}
	}
	for _, s := range c.Text {
		if !containsFold(string(m.data), s) {
			return false
		}
	}
	return true
}

// dateOnly drops the time of day, keeping the date as written in t's
// own zone (RFC 9051 §6.4.4: dates disregard time and timezone).
func dateOnly(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
