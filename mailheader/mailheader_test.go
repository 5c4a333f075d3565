package mailheader

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	msg := "Received: from a\r\n\tby b\r\nFrom : Alice\r\n <a@x.test>\r\nno colon here\r\nSubject: s\r\n\r\nbody\r\nX-Not: header\r\n"
	h := ParseHeader([]byte(msg))
	var names []string
	for _, f := range h.Fields {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "Received,From,,Subject" {
		t.Errorf("field names %q", got)
	}
	if got := string(h.Bytes()); got != strings.TrimSuffix(msg, "body\r\nX-Not: header\r\n") {
		t.Errorf("Bytes() = %q", got)
	}
	if got := h.Values("from"); len(got) != 1 || got[0] != " Alice <a@x.test>" {
		t.Errorf("Values(from) = %q", got)
	}
	for _, tt := range []struct{ msg, bytes string }{
		{"", ""},
		{"\r\nbody", "\r\n"},
		{"A: b\n\nbody", "A: b\n\n"},
		{"A: b", "A: b"},
		{"A: b\r\n", "A: b\r\n"},
		{" leading: continuation\r\nA: b\r\n\r\n", " leading: continuation\r\nA: b\r\n\r\n"},
	} {
		if got := string(ParseHeader([]byte(tt.msg)).Bytes()); got != tt.bytes {
			t.Errorf("ParseHeader(%q).Bytes() = %q, want %q", tt.msg, got, tt.bytes)
		}
	}
}

func TestReadHeaderLimit(t *testing.T) {
	header := "Subject: " + strings.Repeat("x", 100) + "\r\n\r\n"
	r := bufio.NewReaderSize(strings.NewReader(header+"body"), 16)
	h, err := ReadHeader(r, len(header))
	if err != nil || string(h.Bytes()) != header {
		t.Fatalf("ReadHeader at the limit: %q, %v", h.Bytes(), err)
	}
	if rest, _ := r.ReadString(0); rest != "body" {
		t.Errorf("after the header, the reader holds %q, want the body", rest)
	}
	if _, err := ReadHeader(bufio.NewReaderSize(strings.NewReader(header), 16), len(header)-1); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("ReadHeader over the limit: %v, want ErrHeaderTooLarge", err)
	}
}

func FuzzHeader(f *testing.F) {
	for _, s := range []string{
		"Authentication-Results: mx.example.org; spf=pass\r\nSubject: x\r\n\r\nbody",
		"authentication-results :(c) \"mx.example.org\"\r\n ; none\r\n\r\n",
		"Authentication-Results: (unclosed\r\n\r\n",
		" x\r\nA: b\nc\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := ParseHeader(msg)
		section := h.Bytes()
		if !bytes.HasPrefix(msg, section) {
			t.Fatalf("ParseHeader(%q).Bytes() = %q, not a prefix of the message", msg, section)
		}
		again := ParseHeader(section)
		if string(again.Bytes()) != string(section) {
			t.Fatalf("the header section %q does not parse back to itself: %q", section, again.Bytes())
		}
	})
}
