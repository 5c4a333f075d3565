package msgauth

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

func TestAuthservID(t *testing.T) {
	tests := []struct {
		value, id string
		ok        bool
	}{
		{" mx.example.org; spf=pass", "mx.example.org", true},
		{"mx.example.org 1; none", "mx.example.org", true},
		{" (comment (nested) \\) ) mx.example.org;", "mx.example.org", true},
		{"mx.example.org(comment); none", "mx.example.org", true},
		{` "mx.example.org"; none`, "mx.example.org", true},
		{` "mx.ex\ample.org"; none`, "mx.example.org", true},
		{"\tMX.Example.ORG.;none", "MX.Example.ORG.", true},
		{" ; spf=pass", "", false},
		{" (unclosed mx.example.org; spf=pass", "", false},
		{` "unclosed`, "", false},
		{` ""; none`, "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		id, ok := AuthservID(tt.value)
		if id != tt.id || ok != tt.ok {
			t.Errorf("AuthservID(%q) = %q, %v, want %q, %v", tt.value, id, ok, tt.id, tt.ok)
		}
	}
}

func TestWithoutOurs(t *testing.T) {
	const ours = "mx.example.org"
	msg := "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a@b.test\r\n" +
		"authentication-results : (forged)\r\n \"MX.EXAMPLE.ORG.\"; dkim=pass\r\n" +
		"Authentication-Results: other.example; dmarc=pass header.from=mx.example.org\r\n" +
		"Authentication-Results: (broken mx.example.org; dkim=pass\r\n" +
		"Authentication-Results: mx.example.org.evil.test; spf=pass\r\n" +
		"ARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\n" +
		"Subject: Authentication-Results: mx.example.org; spf=pass\r\n" +
		"\r\n" +
		"Authentication-Results: mx.example.org; in the body\r\n"
	h := ParseHeader([]byte(msg))
	kept, removed := h.WithoutOurs(ours)
	want := "Authentication-Results: other.example; dmarc=pass header.from=mx.example.org\r\n" +
		"Authentication-Results: mx.example.org.evil.test; spf=pass\r\n" +
		"ARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\n" +
		"Subject: Authentication-Results: mx.example.org; spf=pass\r\n" +
		"\r\n"
	if string(kept) != want || removed != 3 {
		t.Errorf("WithoutOurs removed %d, kept:\n%s\nwant 3 removed, kept:\n%s", removed, kept, want)
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
	const ours = "mx.example.org"
	f.Fuzz(func(t *testing.T, msg []byte) {
		h := ParseHeader(msg)
		section := h.Bytes()
		if !bytes.HasPrefix(msg, section) {
			t.Fatalf("ParseHeader(%q).Bytes() = %q, not a prefix of the message", msg, section)
		}
		kept, removed := h.WithoutOurs(ours)
		again := ParseHeader(kept)
		if string(again.Bytes()) != string(kept) {
			t.Fatalf("the kept header %q does not parse back to itself: %q", kept, again.Bytes())
		}
		n := 0
		for _, f := range h.Fields {
			if f.Is(FieldName) && IsOurs(f.Value(), ours) {
				n++
				continue
			}
			if id, ok := AuthservID(f.Value()); ok && !strings.Contains(f.Value(), strings.Trim(id, `"`)) && !strings.Contains(f.Value(), `\`) {
				t.Fatalf("AuthservID(%q) = %q, which is not in the value", f.Value(), id)
			}
		}
		if n != removed {
			t.Fatalf("WithoutOurs removed %d fields, %d are ours", removed, n)
		}
		for _, f := range again.Fields {
			if f.Is(FieldName) && IsOurs(f.Value(), ours) {
				t.Fatalf("WithoutOurs(%q) kept %q", msg, f.Raw)
			}
		}
	})
}
