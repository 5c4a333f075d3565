package control

import (
	"os"
	"path/filepath"
	"testing"
)

func writeEtc(t *testing.T, r Root, name, content string) {
	t.Helper()
	p := r.Etc(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsWhenMissing(t *testing.T) {
	r := Root(t.TempDir())
	if s, err := r.String("hostname", "def"); err != nil || s != "def" {
		t.Errorf("String(missing) = %q, %v; want def, nil", s, err)
	}
	if n, err := r.Int("recipient-limit", 100); err != nil || n != 100 {
		t.Errorf("Int(missing) = %d, %v; want 100, nil", n, err)
	}
	if lines, err := r.Lines("relay-clients"); err != nil || lines != nil {
		t.Errorf("Lines(missing) = %q, %v; want nil, nil", lines, err)
	}
}

func TestReadControlFiles(t *testing.T) {
	r := Root(t.TempDir())
	writeEtc(t, r, "hostname", "# our name\n\n  mx.example.org  \nignored\n")
	writeEtc(t, r, "size-limit", "10M\n")
	writeEtc(t, r, "recipient-limit", "abc\n")
	writeEtc(t, r, "relay-clients", "127.0.0.1\n# comment\n::1\n")
	if s, _ := r.String("hostname", "x"); s != "mx.example.org" {
		t.Errorf("String(hostname) = %q, want mx.example.org", s)
	}
	if h, _ := r.Hostname("flag.example"); h != "flag.example" {
		t.Errorf("Hostname(flag) = %q, want flag.example", h)
	}
	if h, _ := r.Hostname(""); h != "mx.example.org" {
		t.Errorf("Hostname(\"\") = %q, want mx.example.org", h)
	}
	if n, err := r.Size("size-limit", 1); err != nil || n != 10<<20 {
		t.Errorf("Size(size-limit) = %d, %v; want %d", n, err, 10<<20)
	}
	if n, err := r.Int("recipient-limit", 100); err == nil || n != 100 {
		t.Errorf("Int(bad) = %d, %v; want default and an error", n, err)
	}
	lines, _ := r.Lines("relay-clients")
	if len(lines) != 2 || lines[0] != "127.0.0.1" || lines[1] != "::1" {
		t.Errorf("Lines(relay-clients) = %q", lines)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1024", 1024, true}, {"4k", 4096, true}, {"50M", 50 << 20, true},
		{"1G", 1 << 30, true}, {"", 0, false}, {"M", 0, false}, {"-1", 0, false}, {"1T", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestParseSizeEmpty is the regression test for a panic FuzzParseSize
// found: ParseSize("") indexed s[-1:]. imapd passes its --append-limit
// flag to ParseSize as given, so "--append-limit=" crashed it.
func TestParseSizeEmpty(t *testing.T) {
	if n, err := ParseSize(""); err == nil || n != 0 {
		t.Errorf("ParseSize(\"\") = %d, %v; want 0 and an error", n, err)
	}
}

func TestUserMaildirRefusesEscapes(t *testing.T) {
	r := Root("/r")
	if p, err := r.UserMaildir("alice", "example.org"); err != nil || p != "/r/mail/example.org/alice" {
		t.Errorf("UserMaildir(alice, example.org) = %q, %v", p, err)
	}
	for _, bad := range [][2]string{
		{"..", "example.org"}, {"alice", ".."}, {"a/b", "example.org"}, {"alice", "x/../y"},
		{".alice", "example.org"}, {"al\x00ice", "example.org"}, {"", "example.org"}, {"alice", ""},
		{"a\nb", "example.org"}, {"a\\b", "example.org"},
	} {
		if p, err := r.UserMaildir(bad[0], bad[1]); err == nil {
			t.Errorf("UserMaildir(%q, %q) = %q, want an error", bad[0], bad[1], p)
		}
	}
}
