package lda

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/resolve"
)

func TestToTargetSpamHeader(t *testing.T) {
	root := control.Root(t.TempDir())
	md, err := root.UserMaildir("alice", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := maildir.Create(md, "lists"); err != nil {
		t.Fatal(err)
	}
	alice, err := address.Parse("alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		rules  string // etc/spam-header; "" for none
		msg    string
		detail string
		folder string
	}{
		{"marked", "X-Spam: yes\n", "X-Spam: Yes\r\nSubject: x\r\n\r\nbody\r\n", "", ".Junk"},
		{"second rule, LF", "X-Spam: yes\nX-Spam-Flag: YES\n", "Subject: x\nX-Spam-Flag: YES\n\nbody\n", "", ".Junk"},
		{"marked beats the subaddress", "X-Spam: yes\n", "X-Spam: yes\r\n\r\nbody\r\n", "lists", ".Junk"},
		{"other value", "X-Spam: yes\n", "X-Spam: no\r\n\r\nbody\r\n", "", ""},
		{"in the body only", "X-Spam: yes\n", "Subject: x\r\n\r\nX-Spam: yes\r\n", "", ""},
		{"no file", "", "X-Spam: yes\r\n\r\nbody\r\n", "", ""},
		{"broken line skipped", "broken\nX-Spam: yes\n", "X-Spam: yes\r\n\r\nbody\r\n", "", ".Junk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(root.Etc("spam-header"))
			if tt.rules != "" {
				os.MkdirAll(filepath.Dir(root.Etc("spam-header")), 0o700)
				if err := os.WriteFile(root.Etc("spam-header"), []byte(tt.rules), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			msg, err := ReadMessage(strings.NewReader(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			target := resolve.Target{Kind: resolve.Local, Address: alice, Detail: tt.detail, Maildir: md}
			d, err := ToTarget(target, msg, Options{Hostname: "mx.example.org"})
			if err != nil {
				t.Fatalf("ToTarget: %v", err)
			}
			if want := filepath.Join(md, tt.folder, "new"); filepath.Dir(d.Path) != want {
				t.Errorf("delivered to %s, want a file in %s", d.Path, want)
			}
		})
	}
}
