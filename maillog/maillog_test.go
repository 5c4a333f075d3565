package maillog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "alice@example.org", "alice@example.org"},
		{"angle brackets", "<bob@example.net>", "<bob@example.net>"},
		{"empty", "", `""`},
		{"space", "451 greylisted", `"451 greylisted"`},
		{"quote", `"a b"@example.org`, `"\"a b\"@example.org"`},
		{"equals", "a=b", `"a=b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline", "a\nsmtpd: forged", `"a\nsmtpd: forged"`},
		{"non-ASCII", "grüße@example.org", `"grüße@example.org"`},
		{"invalid UTF-8", "\xff", `"\xff"`},
		{"DEL", "a\x7f", `"a\x7f"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Line
	}{
		{"event and fields", `smtpd: accepted id=06H0 from=<bob@example.net> size=260`,
			Line{"smtpd", "accepted", []Field{{"id", "06H0"}, {"from", "<bob@example.net>"}, {"size", "260"}}}},
		{"no event", `sendq: id=06H0 rcpt=alice@example.org status=deferred reply="451 4.7.1 greylisted" delay=2s`,
			Line{"sendq", "", []Field{{"id", "06H0"}, {"rcpt", "alice@example.org"}, {"status", "deferred"},
				{"reply", "451 4.7.1 greylisted"}, {"delay", "2s"}}}},
		{"event only", `sendq: stopped`, Line{"sendq", "stopped", nil}},
		{"event with colon", `smtpd: inetd: mode=listen addr=127.0.0.1:25`,
			Line{"smtpd", "inetd:", []Field{{"mode", "listen"}, {"addr", "127.0.0.1:25"}}}},
		{"quoted with escapes", `pop3d: error user="a b" error="x \"y\"\nz"`,
			Line{"pop3d", "error", []Field{{"user", "a b"}, {"error", "x \"y\"\nz"}}}},
		{"empty quoted", `deliver: code=""`, Line{"deliver", "", []Field{{"code", ""}}}},
		{"quoted plain word", `sendq: error="x"`, Line{"sendq", "", []Field{{"error", "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no prefix", `accepted id=1`},
		{"prefix only", `smtpd: `},
		{"capital program", `SMTPD: x=1`},
		{"free text", `sendq: spool: open /x: permission denied`},
		{"two words", `inetd: running as root`},
		{"word after field", `smtpd: x=1 stopping`},
		{"unquoted space", `sendq: rcpt="a b"@example.org status=sent`},
		{"value with equals", `sendq: from=<a=b@example.org>`},
		{"value with backslash", `sendq: x=a\b`},
		{"non-ASCII bare", "sendq: rcpt=grüße@example.org"},
		{"empty bare value", `sendq: code= status=sent`},
		{"empty key", `sendq: =1`},
		{"double space", `sendq: a=1  b=2`},
		{"trailing space", `sendq: a=1 `},
		{"unterminated quote", `sendq: a="1 b=2`},
		{"text after quote", `sendq: a="1"x b=2`},
		{"bad escape", `sendq: a="\q"`},
		{"bad key", `sendq: a.b=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := Parse(tt.in); !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) = %+v, %v, want ErrSyntax", tt.in, l, err)
			}
		})
	}
}

func TestGet(t *testing.T) {
	l, err := Parse(`sendq: id=A rcpt=b@example.org id=C`)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := l.Get("id"); !ok || v != "A" {
		t.Errorf("Get(id) = %q, %v, want the first, A", v, ok)
	}
	if v, ok := l.Get("relay"); ok || v != "" {
		t.Errorf("Get(relay) = %q, %v, want none", v, ok)
	}
	if v := l.Value("rcpt"); v != "b@example.org" {
		t.Errorf("Value(rcpt) = %q", v)
	}
}

// FuzzQuoteParse checks that every value, written with Quote, reads back
// as itself and as one field, whatever it holds, and that Parse never
// panics on arbitrary lines.
func FuzzQuoteParse(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", `"q"`, "a=b", `\`, "\n", "grüße", "\xff", `x" y="z`} {
		f.Add(s, "sendq: id=1 reply="+s)
	}
	f.Fuzz(func(t *testing.T, value, line string) {
		Parse(line)
		s := "sendq: rcpt=" + Quote(value) + " status=deferred"
		l, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if len(l.Fields) != 2 || l.Fields[0].Value != value || l.Fields[1].Value != "deferred" {
			t.Fatalf("Parse(%q) = %+v, want rcpt=%q and status", s, l, value)
		}
		if strings.ContainsAny(Quote(value), "\n\r") {
			t.Fatalf("Quote(%q) = %q holds a line break", value, Quote(value))
		}
	})
}
