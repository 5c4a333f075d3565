package spamheader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postkit/postkit/control"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		want Rule
		ok   bool
	}{
		{"X-Spam: yes", Rule{"X-Spam", "yes"}, true},
		{"  X-Spam-Flag :   YES  ", Rule{"X-Spam-Flag", "YES"}, true},
		{"X-Spam-Status: Yes, score", Rule{"X-Spam-Status", "Yes, score"}, true},
		{"X-Spam", Rule{}, false},
		{"X-Spam:", Rule{}, false},
		{": yes", Rule{}, false},
		{"X Spam: yes", Rule{}, false},
		{"X-Späm: yes", Rule{}, false},
		{"X-Spam: y\x00es", Rule{}, false},
		{"X-Spam: " + strings.Repeat("y", 201), Rule{}, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.line)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, ok %v", tt.line, got, err, tt.want, tt.ok)
		}
	}
}

func TestMarked(t *testing.T) {
	rules := []Rule{{"X-Spam", "yes"}, {"X-Spam-Status", "Yes"}}
	tests := []struct {
		name string
		msg  string
		want bool
	}{
		{"exact", "From: a\r\nX-Spam: yes\r\n\r\nbody\r\n", true},
		{"case of name and value", "x-spam: YES\n\nbody\n", true},
		{"white space", "X-Spam:\t yes \r\n\r\n", true},
		{"folded", "X-Spam-Status: Yes,\r\n\tscore=7.1\r\n\r\n", true},
		{"followed by a comma", "X-Spam-Status: Yes, score=7.1\r\n\r\n", true},
		{"a longer word", "X-Spam-Status: Yesterday\r\n\r\n", false},
		{"no", "X-Spam: no\r\n\r\n", false},
		{"other field", "X-Spam-Level: yes\r\n\r\n", false},
		{"in the body only", "Subject: x\r\n\r\nX-Spam: yes\r\n", false},
		{"no header", "", false},
	}
	for _, tt := range tests {
		r, got := Marked([]byte(tt.msg), rules)
		if got != tt.want {
			t.Errorf("%s: Marked(%q) = %v, %v; want %v", tt.name, tt.msg, r, got, tt.want)
		}
	}
	if _, got := Marked([]byte("X-Spam: yes\r\n\r\n"), nil); got {
		t.Errorf("Marked with no rules = true")
	}
}

func TestLoad(t *testing.T) {
	root := control.Root(t.TempDir())
	rules, bad, err := Load(root)
	if err != nil || len(rules) != 0 || len(bad) != 0 {
		t.Fatalf("Load without the file = %v, %v, %v", rules, bad, err)
	}
	os.MkdirAll(filepath.Join(string(root), "etc"), 0o700)
	os.WriteFile(root.Etc(File), []byte("# rspamd\nX-Spam: yes\nbroken\nX-Spam-Flag: YES\n"), 0o600)
	rules, bad, err = Load(root)
	if err != nil || len(rules) != 2 || len(bad) != 1 {
		t.Fatalf("Load = %v, %v, %v; want two rules and one bad line", rules, bad, err)
	}
	if got := strings.Join(Names(rules), ","); got != "X-Spam,X-Spam-Flag" {
		t.Errorf("Names = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"X-Spam: yes", "X-Spam-Flag: YES", "broken", ":", "a:b:c"} {
		f.Add(s, "X-Spam: yes\r\n\r\n")
	}
	f.Fuzz(func(t *testing.T, line, msg string) {
		r, err := Parse(line)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v, which reads back as %+v, %v", line, r, again, err)
		}
		// A field written from the rule is always marked.
		if _, ok := Marked([]byte(r.String()+"\r\n\r\n"), []Rule{r}); !ok {
			t.Fatalf("rule %+v does not match its own field", r)
		}
		Marked([]byte(msg), []Rule{r})
	})
}
