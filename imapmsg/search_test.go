package imapmsg

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func opener(data []byte, calls *int) func() (*Message, error) {
	return func() (*Message, error) {
		*calls++
		return New(bytes.NewReader(data), int64(len(data)), -1), nil
	}
}

func TestMatchContents(t *testing.T) {
	tests := []struct {
		name string
		file string
		c    imap.SearchCriteria
		want bool
	}{
		{"body utf-8 case-insensitive", "simple.eml", imap.SearchCriteria{Body: []string{"CAFÉ"}}, true},
		{"body is not header", "simple.eml", imap.SearchCriteria{Body: []string{"example.org"}}, false},
		{"text includes header", "simple.eml", imap.SearchCriteria{Text: []string{"lunch ON friday"}}, true},
		{"text includes field names", "simple.eml", imap.SearchCriteria{Text: []string{"in-reply-to: <prev"}}, true},
		{"qp latin-1", "nested.eml", imap.SearchCriteria{Body: []string{"grüße aus köln"}}, true},
		{"qp soft line break", "nested.eml", imap.SearchCriteria{Body: []string{"weichen Umbruch weitergeht"}}, true},
		{"html part utf-8", "nested.eml", imap.SearchCriteria{Body: []string{"<b>köln</b>"}}, true},
		{"csv attachment is text", "nested.eml", imap.SearchCriteria{Body: []string{"1,2,3"}}, true},
		{"base64 latin-1", "encoded.eml", imap.SearchCriteria{Body: []string{"köln!"}}, true},
		{"binary attachment not searched", "mixed.eml", imap.SearchCriteria{Body: []string{"PDF-1.4"}}, false},
		{"preamble not searched", "mixed.eml", imap.SearchCriteria{Body: []string{"multi-part message"}}, false},
		{"all strings needed", "simple.eml", imap.SearchCriteria{Body: []string{"café", "nowhere"}}, false},
		{"nested message header in text", "rfc822.eml", imap.SearchCriteria{Text: []string{"20261102101500.1234"}}, true},
		{"nested message body", "rfc822.eml", imap.SearchCriteria{Body: []string{"<p>lunch?</p>"}}, true},
		{"header encoded word", "encoded.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "müller"}}}, true},
		{"header subject base64 word", "encoded.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "subject", Value: "GRÜSSE"}}}, false},
		{"header subject decoded", "encoded.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "subject", Value: "grüße aus"}}}, true},
		{"header 8-bit", "8bit.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "GRÜßE"}}}, true},
		{"header empty value: present", "simple.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "message-id", Value: ""}}}, true},
		{"header empty value: absent", "simple.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Spam", Value: ""}}}, false},
		{"header other field", "simple.eml", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "alice"}}}, false},
		{"not body", "simple.eml", imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"café"}}}}, false},
		{"or body", "simple.eml", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"nowhere"}}, {Text: []string{"alice"}}}}}, true},
		{"nul bytes", "nul.eml", imap.SearchCriteria{Body: []string{"with \x00 nul"}}, true},
		{"cr only has no body", "cronly.eml", imap.SearchCriteria{Body: []string{"line one"}}, false},
		{"cr only header", "cronly.eml", imap.SearchCriteria{Text: []string{"line one"}}, true},
		{"empty string", "cronly.eml", imap.SearchCriteria{Body: []string{""}}, true},
		{"sent date from header", "simple.eml", imap.SearchCriteria{SentSince: day(2026, 11, 2), SentBefore: day(2026, 11, 3)}, true},
		{"sent before", "simple.eml", imap.SearchCriteria{SentBefore: day(2026, 11, 2)}, false},
	}
	for _, tt := range tests {
		data := readSample(t, tt.file)
		calls := 0
		mt := NewMatcher(&tt.c)
		info := &MessageInfo{SeqNum: 1, UID: 1, InternalDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Size: 100}
		got, err := mt.Match(info, opener(data, &calls))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: Match(%s) = %v, want %v", tt.name, tt.file, got, tt.want)
		}
		if calls != 1 {
			t.Errorf("%s: message opened %d times, want once", tt.name, calls)
		}
	}
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestMatchMetadata(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	info := &MessageInfo{
		SeqNum:       5,
		UID:          42,
		Flags:        []imap.Flag{imap.FlagSeen, "$Forwarded", "\\Recent"},
		InternalDate: time.Date(2026, 11, 3, 0, 30, 0, 0, berlin), // 2 November in UTC
		Size:         1000,
	}
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want bool
	}{
		{"all", imap.SearchCriteria{}, true},
		{"seq", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 5)}}, true},
		{"seq miss", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(4)}}, false},
		{"uid range", imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: 40, Stop: 50}}}}, true},
		{"uid miss", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(41)}}, false},
		{"flag case-insensitive", imap.SearchCriteria{Flag: []imap.Flag{"\\SEEN", "$forwarded"}}, true},
		{"unflagged", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagFlagged}}, true},
		{"new", imap.SearchCriteria{Flag: []imap.Flag{"\\Recent"}, NotFlag: []imap.Flag{imap.FlagSeen}}, false},
		{"larger", imap.SearchCriteria{Larger: 999}, true},
		{"larger equal", imap.SearchCriteria{Larger: 1000}, false},
		{"smaller", imap.SearchCriteria{Smaller: 1001}, true},
		{"smaller equal", imap.SearchCriteria{Smaller: 1000}, false},
		{"on (internal date's own zone)", imap.SearchCriteria{Since: day(2026, 11, 3), Before: day(2026, 11, 4)}, true},
		{"before", imap.SearchCriteria{Before: day(2026, 11, 3)}, false},
		{"since", imap.SearchCriteria{Since: day(2026, 11, 4)}, false},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Larger: 10}}}, false},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Larger: 5000}, {Flag: []imap.Flag{imap.FlagSeen}}}}}, true},
		{"nested or not", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Larger: 5000}, {Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen}}}}}}}, false},
		{"sent date from envelope", imap.SearchCriteria{SentSince: day(2026, 1, 1)}, false},
	}
	for _, tt := range tests {
		mt := NewMatcher(&tt.c)
		info := *info
		info.Envelope = &imap.Envelope{Date: time.Date(2025, 5, 5, 10, 0, 0, 0, time.UTC)}
		if mt.NeedsMessage(true) {
			t.Errorf("%s: NeedsMessage(true) = true, want false", tt.name)
		}
		got, err := mt.Match(&info, func() (*Message, error) { return nil, errors.New("must not open") })
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMatchSentDateFallback(t *testing.T) {
	// Without a Date field the internal date counts.
	msg := []byte("Subject: no date\n\nbody\n")
	calls := 0
	c := imap.SearchCriteria{SentSince: day(2026, 11, 1)}
	info := &MessageInfo{InternalDate: time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)}
	mt := NewMatcher(&c)
	if !mt.NeedsMessage(false) {
		t.Error("NeedsMessage(false) = false for SENTSINCE")
	}
	got, err := mt.Match(info, opener(msg, &calls))
	if err != nil || !got {
		t.Errorf("Match = %v, %v; want true", got, err)
	}
}

func TestMatchOpenError(t *testing.T) {
	c := imap.SearchCriteria{Body: []string{"x"}}
	want := errors.New("gone")
	got, err := NewMatcher(&c).Match(&MessageInfo{}, func() (*Message, error) { return nil, want })
	if got || !errors.Is(err, want) {
		t.Errorf("Match = %v, %v; want false, %v", got, err, want)
	}
}

func TestMatchAcrossChunks(t *testing.T) {
	// The strings straddle the 64 KiB pieces the text is read in, and a
	// UTF-8 character is cut at a piece boundary.
	pad := strings.Repeat("a", bufSize-3)
	msg := "Content-Type: text/plain; charset=utf-8\n\n" + pad + "NEEDLE ÄÖÜ haystack" + strings.Repeat("b", 10<<20) + " TAIL\n"
	for _, tt := range []struct {
		s    string
		want bool
	}{{"needle äöü", true}, {"bbb tail", true}, {"needle äöü haystackbb", true}, {"missing", false}} {
		c := imap.SearchCriteria{Body: []string{tt.s}}
		calls := 0
		got, err := NewMatcher(&c).Match(&MessageInfo{}, opener([]byte(msg), &calls))
		if err != nil || got != tt.want {
			t.Errorf("BODY %q = %v, %v; want %v", tt.s, got, err, tt.want)
		}
	}
}
