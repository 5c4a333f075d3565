package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFolderMapping(t *testing.T) {
	root := Dir("/m/example.org/alice")
	tests := []struct {
		name, imap, want string
	}{
		{"inbox upper", "INBOX", ""},
		{"inbox lower", "inbox", ""},
		{"inbox mixed", "InBoX", ""},
		{"plain", "Sent", ".Sent"},
		{"hierarchy", "a/b", ".a.b"},
		{"three levels", "Archive/2024/Q1", ".Archive.2024.Q1"},
		{"inbox child keeps case", "inbox/x", ".inbox.x"},
		{"space", "Sent Items", ".Sent Items"},
		{"umlaut", "Entwürfe", ".Entw&APw-rfe"},
		{"ampersand", "&", ".&-"},
		{"ampersand inside", "Tom & Jerry", ".Tom &- Jerry"},
		{"japanese", "日本語", ".&ZeVnLIqe-"},
		{"japanese child", "a/日本語", ".a.&ZeVnLIqe-"},
		{"emoji surrogate pair", "📧", ".&2D3c5w-"},
		{"run then ascii", "äöx", ".&AOQA9g-x"},
		{"tilde and backslash", `~\`, `.~\`},
		{"dash", "-", ".-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := root.Folder(tt.imap)
			if err != nil {
				t.Fatalf("Folder(%q) = %v", tt.imap, err)
			}
			want := root
			if tt.want != "" {
				want = Dir(filepath.Join(string(root), tt.want))
			}
			if got != want {
				t.Fatalf("Folder(%q) = %q, want %q", tt.imap, got, want)
			}
			if tt.want == "" {
				return
			}
			back, err := FolderName(tt.want)
			if err != nil || back != tt.imap {
				t.Errorf("FolderName(%q) = %q, %v; want %q", tt.want, back, err, tt.imap)
			}
		})
	}
}

func TestFolderRefusals(t *testing.T) {
	root := Dir(t.TempDir())
	tests := []struct{ name, imap string }{
		{"empty", ""},
		{"parent escape", "../x"},
		{"dotdot alone", ".."},
		{"dot alone", "."},
		{"leading dot", ".x"},
		{"double dot", "a..b"},
		{"dot inside", "a.b"},
		{"dot level", "a/./b"},
		{"dotdot level", "a/../b"},
		{"nul", "a\x00b"},
		{"newline", "a\nb"},
		{"del", "a\x7fb"},
		{"c1 control", "a\u0085b"},
		{"empty level", "a//b"},
		{"leading slash", "/a"},
		{"trailing slash", "a/"},
		{"only slash", "/"},
		{"wildcard star", "a*"},
		{"wildcard percent", "a%b"},
		{"invalid utf-8", "a\xffb"},
		{"too long", strings.Repeat("x", 255)},
		{"too long once encoded", strings.Repeat("ü", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := root.Folder(tt.imap)
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("Folder(%q) = %q, %v; want ErrInvalidName", tt.imap, d, err)
			}
			if err := Create(string(root), tt.imap); !errors.Is(err, ErrInvalidName) {
				t.Errorf("Create(root, %q) = %v; want ErrInvalidName", tt.imap, err)
			}
		})
	}
	if entries, _ := os.ReadDir(string(root)); len(entries) != 0 {
		t.Errorf("refused Create calls left %d entries in the root", len(entries))
	}
}

func TestFolderNameRefusesNonCanonical(t *testing.T) {
	tests := []struct{ name, elem string }{
		{"no dot", "Sent"},
		{"dot only", "."},
		{"dotdot", ".."},
		{"empty level", ".a..b"},
		{"trailing dot", ".a."},
		{"inbox", ".INBOX"},
		{"inbox lower", ".inbox"},
		{"unterminated shift", ".&APw"},
		{"base64 for ascii", ".&AGE-"},
		{"ampersand base64", ".&ACY-"},
		{"adjacent shifts", ".&AOQ-&APY-"},
		{"odd bytes", ".&AP-"},
		{"stray bits", ".&APx-"},
		{"lone high surrogate", ".&2D0-"},
		{"lone low surrogate", ".&3Oc-"},
		{"raw utf-8", ".Entwürfe"},
		{"control in base64", ".&AAo-"},
		{"raw control", ".a\tb"},
		{"slash base64", ".&APw/-"},
		{"wildcard", ".a*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := FolderName(tt.elem); !errors.Is(err, ErrInvalidName) {
				t.Errorf("FolderName(%q) = %q, %v; want ErrInvalidName", tt.elem, got, err)
			}
		})
	}
}

func TestCreateAndFolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "example.org", "alice")
	folders := []string{"Sent", "a/b", "Entwürfe", "&", "日本語", "INBOX"}
	for range 2 { // idempotent
		if err := Create(path, folders...); err != nil {
			t.Fatalf("Create = %v", err)
		}
	}
	root := Dir(path)
	for _, name := range folders {
		d, _ := root.Folder(name)
		for _, sub := range []string{"cur", "new", "tmp"} {
			info, err := os.Stat(filepath.Join(string(d), sub))
			if err != nil || !info.IsDir() {
				t.Fatalf("%s/%s: %v, want a directory", d, sub, err)
			}
			if perm := info.Mode().Perm(); perm != 0o700 {
				t.Errorf("%s/%s mode = %v, want 0700", d, sub, perm)
			}
		}
		marker := filepath.Join(string(d), FolderMarker)
		info, err := os.Stat(marker)
		if d == root {
			if err == nil {
				t.Errorf("root has a %s file; only folders should", FolderMarker)
			}
			continue
		}
		if err != nil || info.Size() != 0 || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want an empty 0600 file", marker, info, err)
		}
	}
	// Things Folders must skip: a file, a directory with no IMAP name, INBOX
	// under another name, a non-dot directory.
	os.WriteFile(filepath.Join(path, ".file"), nil, 0o600)
	for _, junk := range []string{".x..y", ".INBOX", ".Entwürfe", "plain", ".&AGE-"} {
		os.Mkdir(filepath.Join(path, junk), 0o700)
	}
	got, err := root.Folders()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"&", "Entwürfe", "Sent", "a/b", "日本語"}
	if !slices.Equal(got, want) {
		t.Errorf("Folders() = %q, want %q", got, want)
	}
}

func TestCreateOverFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alice")
	os.WriteFile(path, []byte("x"), 0o600)
	if err := Create(path); err == nil {
		t.Fatal("Create over a regular file succeeded")
	}
}

func TestFind(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "Maildir"))
	if err := Create(string(d)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new/1.M1P1Q1.host,S=5", "cur/2.M2P2Q2.host,S=7:2,S", "cur/22.M2P2Q2.host,S=7:2,"} {
		if err := os.WriteFile(filepath.Join(string(d), p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ base, want string }{
		{"1.M1P1Q1.host,S=5", "new/1.M1P1Q1.host,S=5"},
		{"2.M2P2Q2.host,S=7", "cur/2.M2P2Q2.host,S=7:2,S"},
		{"2.M2P2Q2.host", ""}, // a prefix of a name is not its base
		{"3.M3P3Q3.host,S=1", ""},
	}
	for _, tt := range tests {
		got, ok := d.Find(tt.base)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Find(%q) = %q, %v; want %q", tt.base, got, ok, tt.want)
		}
	}
}
