package sieve

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeEncoded(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"$${hex:24 24}", "$$$", false},
		{"${hex:40}", "@", false},
		{"${HEX: 4 41 }", "\x04A", false},
		{"dear${hex:20 24 7b 4e}ame}", "dear ${Name}", false},
		{"Ein unerh${unicode:00F6}rt gro${unicode:00DF}er Test", "Ein unerhört großer Test", false},
		{"${unicode:1F600 20 41}", "😀 A", false},
		{"${hex:}", "${hex:}", false},
		{"${hex:123}", "${hex:123}", false},
		{"${hex:zz}", "${hex:zz}", false},
		{"${hex:41", "${hex:41", false},
		{"${other:41}", "${other:41}", false},
		{"${x ${hex:41}", "${x A", false},
		{"${unicode:D800}", "", true},
		{"${unicode:FFFFFFFFFF}", "", true},
		{"${unicode:0000000041}", "A", false},
		{"plain", "plain", false},
	}
	for _, tt := range tests {
		got, err := decodeEncoded(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("decodeEncoded(%q) = %q, %v, want %q (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestExpand(t *testing.T) {
	r := &run{vars: map[string]string{"company": "ACME", "a": "x"}, matchVars: []string{"all", "one"}}
	tests := []struct{ in, want string }{
		{"${Company}", "ACME"},
		{"${BAD${Company}", "${BADACME"},
		{"${President, ${Company} Inc.}", "${President, ACME Inc.}"},
		{"${0}-${1}-${2}-${01}", "all-one--one"},
		{"${99999999999999999999}", ""},
		{"${}", "${}"},
		{"$${a}}", "$x}"},
		{"${a", "${a"},
		{"${1a}", "${1a}"},
		{"no refs", "no refs"},
	}
	for _, tt := range tests {
		s, err := parseTemplate(tt.in)
		if err != nil {
			t.Errorf("parseTemplate(%q) = %v", tt.in, err)
			continue
		}
		if got := s.expand(r); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := parseTemplate("${a.b}"); err == nil {
		t.Errorf("parseTemplate(%q) = nil error, want unknown namespace", "${a.b}")
	}
}

func TestModifiers(t *testing.T) {
	tests := []struct {
		m        modifier
		in, want string
	}{
		{modLower, "ÄbC", "äbc"},
		{modUpper, "äbc", "ÄBC"},
		{modLowerFirst, "ÄBC", "äBC"},
		{modUpperFirst, "äbc", "Äbc"},
		{modUpperFirst, "", ""},
		{modQuoteWildcard, `a*b?c\d`, `a\*b\?c\\d`},
		{modLength, "Grüße", "5"},
		{modLength, "", "0"},
	}
	for _, tt := range tests {
		if got := applyModifier(tt.m, tt.in); got != tt.want {
			t.Errorf("applyModifier(%d, %q) = %q, want %q", tt.m, tt.in, got, tt.want)
		}
	}
	if got := truncate(strings.Repeat("ü", 3), 5); got != "üü" {
		t.Errorf("truncate(üüü, 5) = %q, want üü", got)
	}
}

func TestParseAddressList(t *testing.T) {
	type addr struct{ all, local, domain string }
	tests := []struct {
		in   string
		want []addr
	}{
		{"me@example.com", []addr{{"me@example.com", "me", "example.com"}}},
		{`"Me, Myself" <me@example.com>, you@example.org`, []addr{{"me@example.com", "me", "example.com"}, {"you@example.org", "you", "example.org"}}},
		{"me@example.com (Me, really)", []addr{{"me@example.com", "me", "example.com"}}},
		{"friends: a@example.org, b@example.org;, c@example.org", []addr{{"a@example.org", "a", "example.org"}, {"b@example.org", "b", "example.org"}, {"c@example.org", "c", "example.org"}}},
		{"undisclosed-recipients:;", nil},
		{"<@route.example:me@example.com>", []addr{{"me@example.com", "me", "example.com"}}},
		{`"john doe"@example.com`, []addr{{`"john doe"@example.com`, "john doe", "example.com"}}},
		{"Name <me+detail@Example.COM>", []addr{{"me+detail@Example.COM", "me+detail", "Example.COM"}}},
		{"not an address", []addr{{"not an address", "", ""}}},
		{"", nil},
	}
	for _, tt := range tests {
		var got []addr
		for _, a := range parseAddressList(tt.in) {
			got = append(got, addr{a.all, a.local, a.domain})
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseAddressList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAddressParts(t *testing.T) {
	tests := []struct {
		addr string
		part addressPart
		want string
		ok   bool
	}{
		{"ken+foo@example.com", partUser, "ken", true},
		{"ken+foo@example.com", partDetail, "foo", true},
		{"ken+foo+bar@example.com", partDetail, "foo+bar", true},
		{"ken+@example.com", partDetail, "", true},
		{"ken@example.com", partDetail, "", false},
		{"ken@example.com", partDomain, "example.com", true},
		{"broken", partAll, "broken", true},
		{"broken", partLocal, "", false},
	}
	for _, tt := range tests {
		got, ok := parseAddrSpec(tt.addr).part(tt.part)
		if got != tt.want || ok != tt.ok {
			t.Errorf("part(%q, %d) = %q, %v, want %q, %v", tt.addr, tt.part, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNewMessage(t *testing.T) {
	data := "Subject: folded\r\n  line\r\nX-A: 1\nx-a: 2\n\nbody\n"
	m, err := NewMessage(strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.headerValues("subject", index{}); !reflect.DeepEqual(got, []string{"folded line"}) {
		t.Errorf("Subject = %q, want [folded line]", got)
	}
	if got := m.headerValues("X-A", index{}); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("X-A = %q, want [1 2] in order", got)
	}
	if got := m.bodyParts(bodyRaw); len(got) != 1 || got[0].text != "body\n" {
		t.Errorf("raw body = %q, want body\\n", got)
	}
	for _, data := range []string{"", "\n\nbody", "no header at all", "Bad Header Line\nX: y\n\nz"} {
		if _, err := NewMessage(strings.NewReader(data), int64(len(data))); err != nil {
			t.Errorf("NewMessage(%q) = %v, want a message", data, err)
		}
	}
	if _, err := NewMessage(failingReader{}, 100); err == nil {
		t.Errorf("NewMessage(failing reader) = nil error, want the read error")
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("i/o error") }
