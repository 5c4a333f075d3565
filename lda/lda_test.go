package lda

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sysexits"
)

func TestDeliveredTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want []string
	}{
		{"none", "Subject: x\n\nbody\n", nil},
		{"plain", "Delivered-To: alice@example.org\nSubject: x\n\n", []string{"alice@example.org"}},
		{"crlf and case", "delivered-to: Alice@Example.ORG\r\n\r\n", []string{"alice@example.org"}},
		{"angle brackets", "Delivered-To: <bob@example.org>\n\n", []string{"bob@example.org"}},
		{"folded", "Subject: x\nDelivered-To:\n\tcarol@example.org\n\n", []string{"carol@example.org"}},
		{"several", "Delivered-To: a@x.org\nDelivered-To: b@x.org\n\n", []string{"a@x.org", "b@x.org"}},
		{"only in body", "Subject: x\n\nDelivered-To: alice@example.org\n", nil},
		{"no separator", "Delivered-To: alice@example.org", []string{"alice@example.org"}},
		{"similar field", "X-Delivered-To: alice@example.org\n\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := deliveredTo([]byte(tc.msg))
			if len(got) != len(tc.want) {
				t.Fatalf("deliveredTo(%q) = %v, want %v", tc.msg, got, tc.want)
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("deliveredTo(%q) = %v, lacks %s", tc.msg, got, w)
				}
			}
		})
	}
}

func TestCodeClassifiesStorageErrors(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("maildir: write: %w", err) }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, sysexits.OK},
		{classify(wrap(syscall.ENOSPC)), sysexits.TempFail},
		{classify(wrap(syscall.EDQUOT)), sysexits.TempFail},
		{classify(wrap(syscall.EIO)), sysexits.TempFail},
		{classify(wrap(safefile.ErrLockTimeout)), sysexits.TempFail},
		{classify(wrap(syscall.EACCES)), sysexits.NoPerm},
		{classify(wrap(syscall.EROFS)), sysexits.NoPerm},
		{classify(wrap(syscall.ENOTDIR)), sysexits.CantCreat},
		{classify(errors.New("unknown")), sysexits.TempFail},
		{&Error{Code: sysexits.NoUser, Err: errors.New("x")}, sysexits.NoUser},
		{fmt.Errorf("context: %w", &Error{Code: sysexits.DataErr, Err: ErrLoop}), sysexits.DataErr},
	} {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestToTargetJunk(t *testing.T) {
	md := filepath.Join(t.TempDir(), "alice")
	if err := maildir.Create(md, "lists"); err != nil {
		t.Fatal(err)
	}
	alice, err := address.Parse("alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ReadMessage(strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		detail string
		junk   bool
		folder string // directory under the Maildir the message must land in
	}{
		{"inbox", "", false, ""},
		{"subaddress folder", "lists", false, ".lists"},
		{"junk, folder created", "", true, ".Junk"},
		{"junk wins over the subaddress", "lists", true, ".Junk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := resolve.Target{Kind: resolve.Local, Address: alice, Detail: tc.detail, Maildir: md}
			d, err := ToTarget(target, msg, Options{Hostname: "mx.example.org", Junk: tc.junk})
			if err != nil {
				t.Fatalf("ToTarget: %v", err)
			}
			if want := filepath.Join(md, tc.folder, "new"); filepath.Dir(d.Path) != want {
				t.Errorf("delivered to %s, want a file in %s", d.Path, want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(md, ".Junk", maildir.FolderMarker)); err != nil {
		t.Errorf("the Junk folder lda created is no Maildir++ folder: %v", err)
	}
}

// TestBeforeStore: every Maildir file a delivery stores (INBOX, Sieve's
// copies with and without flags) is announced to BeforeStore with its
// final path before it is there; an error from it stores nothing and is a
// temporary failure unless it carries its own code.
func TestBeforeStore(t *testing.T) {
	msg, err := ReadMessage(strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		script string
		files  int
	}{
		{"inbox", "", 1},
		{"fileinto with flags and keep", `require ["fileinto", "imap4flags"]; fileinto :flags "\\Flagged" "Lists"; keep;`, 2},
		{"fileinto copy", `require ["fileinto", "copy"]; fileinto :copy "Lists";`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newSieveFixture(t, tt.script)
			if err := maildir.Create(f.target.Maildir, "Lists"); err != nil {
				t.Fatal(err)
			}
			var announced []string
			opt := Options{Hostname: "mx.example.org", BeforeStore: func(path string) error {
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("BeforeStore(%q): the file is there already (%v)", path, err)
				}
				announced = append(announced, path)
				return nil
			}}
			d, err := ToTarget(f.target, msg, opt)
			if err != nil {
				t.Fatalf("ToTarget: %v", err)
			}
			if len(announced) != tt.files || !slices.Contains(announced, d.Path) {
				t.Errorf("BeforeStore got %q, want %d paths with the delivered %s", announced, tt.files, d.Path)
			}
			for _, p := range announced {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("announced %s, not stored: %v", p, err)
				}
			}
		})
	}

	refusals := []struct {
		name string
		err  error
		code int
	}{
		{"plain error is temporary", errors.New("journal: disk full"), sysexits.TempFail},
		{"own code kept", &Error{Code: sysexits.NoPerm, Err: errors.New("no")}, sysexits.NoPerm},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			// Two copies: the second is refused, and the first is taken
			// back.
			f := newSieveFixture(t, `require ["fileinto", "copy"]; fileinto :copy "Lists";`)
			if err := maildir.Create(f.target.Maildir, "Lists"); err != nil {
				t.Fatal(err)
			}
			calls := 0
			_, err := ToTarget(f.target, msg, Options{Hostname: "mx.example.org", BeforeStore: func(string) error {
				calls++
				if calls == 2 {
					return tt.err
				}
				return nil
			}})
			if Code(err) != tt.code || !errors.Is(err, tt.err) {
				t.Errorf("ToTarget with BeforeStore failing = %v (code %d), want code %d wrapping %v", err, Code(err), tt.code, tt.err)
			}
			if files := append(f.files(""), f.files("Lists")...); len(files) != 0 {
				t.Errorf("stored %q although BeforeStore refused", files)
			}
		})
	}
}
