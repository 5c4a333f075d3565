package msgauth

import (
	"strings"
	"testing"

	"github.com/postkit/postkit/mailheader"
)

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
	h := mailheader.ParseHeader([]byte(msg))
	kept, removed := WithoutOurs(h, ours)
	want := "Authentication-Results: other.example; dmarc=pass header.from=mx.example.org\r\n" +
		"Authentication-Results: mx.example.org.evil.test; spf=pass\r\n" +
		"ARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\n" +
		"Subject: Authentication-Results: mx.example.org; spf=pass\r\n" +
		"\r\n"
	if string(kept) != want || removed != 3 {
		t.Errorf("WithoutOurs removed %d, kept:\n%s\nwant 3 removed, kept:\n%s", removed, kept, want)
	}
}

func FuzzWithoutOurs(f *testing.F) {
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
		h := mailheader.ParseHeader(msg)
		kept, removed := WithoutOurs(h, ours)
		again := mailheader.ParseHeader(kept)
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
