package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/spool"
)

// testRoot makes a postkit root with users alice and bob in example.org and
// the given aliases file contents.
func testRoot(t *testing.T, aliases string) string {
	t.Helper()
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	// deliver never checks passwords, so the hash is only well-formed.
	users := "alice@example.org:{BLF-CRYPT}$2y$05$Aj0TCk6SjZkxLQcnRaTgvuI8q4Ma0WEBjG5XUbgP0Bm7tyBWIfmFK::::::\n" +
		"bob@example.org:{BLF-CRYPT}$2y$05$Aj0TCk6SjZkxLQcnRaTgvuI8q4Ma0WEBjG5XUbgP0Bm7tyBWIfmFK::::::\n"
	writeFile(t, filepath.Join(etc, "users"), users)
	writeFile(t, filepath.Join(etc, "aliases"), aliases)
	writeFile(t, filepath.Join(etc, "hostname"), "mx.example.org\n")
	return root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runDeliver runs the deliver binary with msg on stdin and returns its exit
// code and standard error.
func runDeliver(t *testing.T, msg string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(Bin(t, "deliver"), args...)
	cmd.Stdin = strings.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stderr.String()
	default:
		t.Fatalf("running deliver: %v", err)
		return -1, ""
	}
}

// mailFiles returns the files in the new/ directory of a user's folder
// (folder "" is INBOX).
func mailFiles(t *testing.T, root, user, folder string) []string {
	t.Helper()
	local, domain, _ := strings.Cut(user, "@")
	dir := filepath.Join(root, "mail", domain, local)
	if folder != "" {
		dir = filepath.Join(dir, "."+folder)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(dir, "new", e.Name()))
	}
	return files
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const testMessage = "From: Bob <bob@remote.example>\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nline one\r\n.dot line\r\n\r\nlast line\r\n"

func TestDeliverExactBytesAndName(t *testing.T) {
	root := testRoot(t, "")
	code, stderr := runDeliver(t, testMessage, "--root", root, "-f", "bob@remote.example", "alice@example.org")
	if code != 0 {
		t.Fatalf("deliver exit %d, stderr %q; want 0", code, stderr)
	}
	files := mailFiles(t, root, "alice@example.org", "")
	if len(files) != 1 {
		t.Fatalf("alice has %d new messages, want 1", len(files))
	}
	want := "Return-Path: <bob@remote.example>\nDelivered-To: alice@example.org\n" +
		strings.ReplaceAll(testMessage, "\r\n", "\n")
	got := readFile(t, files[0])
	if got != want {
		t.Errorf("stored message =\n%q\nwant\n%q", got, want)
	}
	name := filepath.Base(files[0])
	wantSizes := fmt.Sprintf(",S=%d,W=%d", len(want), len(want)+strings.Count(want, "\n"))
	if !strings.HasSuffix(name, wantSizes) || !strings.Contains(name, ".mx.example.org,") {
		t.Errorf("file name %q, want host mx.example.org and suffix %s", name, wantSizes)
	}
	if info, _ := os.Stat(files[0]); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "mail/example.org/alice/tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files after delivery, want 0", len(tmp))
	}
	if !strings.Contains(stderr, "status=delivered") {
		t.Errorf("stderr %q has no delivery log line", stderr)
	}
}

func TestDeliverNullSenderAndCase(t *testing.T) {
	root := testRoot(t, "")
	code, stderr := runDeliver(t, "Subject: x\n\nbody\n", "--root", root, "ALICE@Example.ORG")
	if code != 0 {
		t.Fatalf("exit %d (%s)", code, stderr)
	}
	files := mailFiles(t, root, "alice@example.org", "")
	if len(files) != 1 || !strings.HasPrefix(readFile(t, files[0]), "Return-Path: <>\nDelivered-To: alice@example.org\n") {
		t.Fatalf("files %v; want one with Return-Path <> and Delivered-To alice@example.org", files)
	}
}

func TestDeliverExitCodes(t *testing.T) {
	root := testRoot(t, "loop1@example.org: loop2@example.org\nloop2@example.org: loop1@example.org\n")
	for _, tc := range []struct {
		name string
		msg  string
		args []string
		want int
	}{
		{"unknown user", testMessage, []string{"nobody@example.org"}, 67},
		{"loop", "Delivered-To: alice@example.org\nSubject: x\n\nbody\n", []string{"alice@example.org"}, 65},
		{"loop folded and case", "Subject: x\nDelivered-To:\n  <Alice@Example.org>\n\nbody\n", []string{"alice@example.org"}, 65},
		{"alias loop", testMessage, []string{"loop1@example.org"}, 65},
		{"no recipient", testMessage, nil, 64},
		{"bad address", testMessage, []string{"not an address"}, 64},
		{"bad sender", testMessage, []string{"-f", "a@b@c", "alice@example.org"}, 64},
		{"maildir and address", testMessage, []string{"--maildir", t.TempDir(), "alice@example.org"}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root}, tc.args...)
			code, stderr := runDeliver(t, tc.msg, args...)
			if code != tc.want {
				t.Errorf("deliver %v: exit %d (stderr %q), want %d", tc.args, code, stderr, tc.want)
			}
			if strings.TrimSpace(stderr) == "" {
				t.Errorf("deliver %v: nothing on stderr; an error must say what happened", tc.args)
			}
			for _, u := range []string{"alice@example.org", "bob@example.org"} {
				if n := len(mailFiles(t, root, u, "")); n != 0 {
					t.Errorf("%s got %d messages, want 0", u, n)
				}
			}
		})
	}
	// A Delivered-To in the body is not a loop.
	code, stderr := runDeliver(t, "Subject: x\n\nDelivered-To: alice@example.org\n", "--root", root, "alice@example.org")
	if code != 0 {
		t.Errorf("Delivered-To in the body: exit %d (%s), want 0", code, stderr)
	}
}

func TestDeliverAliasesAndSubaddress(t *testing.T) {
	root := testRoot(t, "sales@example.org: alice@example.org, bob@example.org\n@example.org: bob@example.org\n")
	// Folders made by hand with only new/ (deliver completes them), and a Sent.
	for _, f := range []string{".lists/new", ".Sent/new"} {
		if err := os.MkdirAll(filepath.Join(root, "mail/example.org/alice", f), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"sales@example.org"}, {"whoever@example.org"}, {"alice+lists@example.org"}, {"alice+none@example.org"}, {"alice+Sent@example.org"}} {
		if code, stderr := runDeliver(t, testMessage, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("deliver %v: exit %d (%s)", args, code, stderr)
		}
	}
	counts := map[string]int{
		"alice INBOX": len(mailFiles(t, root, "alice@example.org", "")),
		"alice lists": len(mailFiles(t, root, "alice@example.org", "lists")),
		"bob INBOX":   len(mailFiles(t, root, "bob@example.org", "")),
	}
	counts["alice Sent"] = len(mailFiles(t, root, "alice@example.org", "Sent"))
	// alice+Sent lands in INBOX: a sender never picks Sent, Drafts or Trash.
	want := map[string]int{"alice INBOX": 3, "alice lists": 1, "alice Sent": 0, "bob INBOX": 2}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s has %d messages, want %d", k, counts[k], n)
		}
	}
	for _, f := range mailFiles(t, root, "bob@example.org", "") {
		if !strings.Contains(readFile(t, f), "\nDelivered-To: bob@example.org\n") {
			t.Errorf("%s lacks Delivered-To: bob@example.org", f)
		}
	}
}

func TestDeliverToMaildir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", "Maildir")
	code, stderr := runDeliver(t, testMessage, "--maildir", dir, "-f", "bob@remote.example")
	if code != 0 {
		t.Fatalf("exit %d (%s)", code, stderr)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("new/ has %d entries (%v), want 1", len(entries), err)
	}
	got := readFile(t, filepath.Join(dir, "new", entries[0].Name()))
	want := "Return-Path: <bob@remote.example>\n" + strings.ReplaceAll(testMessage, "\r\n", "\n")
	if got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	for _, sub := range []string{"cur", "tmp"} {
		if info, err := os.Stat(filepath.Join(dir, sub)); err != nil || !info.IsDir() {
			t.Errorf("%s/ missing: %v", sub, err)
		}
	}
}

func TestDeliverConcurrentToOneMaildir(t *testing.T) {
	root := testRoot(t, "")
	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = runDeliver(t, fmt.Sprintf("Subject: %d\n\nmessage %d\n", i, i), "--root", root, "alice@example.org")
		}()
	}
	wg.Wait()
	files := mailFiles(t, root, "alice@example.org", "")
	if len(files) != n {
		t.Fatalf("%d files, want %d (codes %v)", len(files), n, codes)
	}
	seen := map[string]bool{}
	for _, f := range files {
		body := readFile(t, f)
		i := strings.Index(body, "message ")
		if i < 0 {
			t.Fatalf("%s is incomplete: %q", f, body)
		}
		seen[body[i:]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
}

// A deliver process killed at any moment leaves either nothing or the whole
// message in new/, never a partial file.
func TestDeliverKilledLeavesNothingPartial(t *testing.T) {
	root := testRoot(t, "")
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 1<<17) // 8 MiB
	msg := "Subject: big\n\n" + body
	want := "Return-Path: <>\nDelivered-To: alice@example.org\n" + msg
	delivered := 0
	for i := range 8 {
		cmd := exec.Command(Bin(t, "deliver"), "--root", root, "alice@example.org")
		cmd.Stdin = strings.NewReader(msg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(40)+i*5) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		files := mailFiles(t, root, "alice@example.org", "")
		for _, f := range files[delivered:] {
			if got := readFile(t, f); got != want {
				t.Fatalf("kill %d left a partial message in new/: %d bytes, want %d", i, len(got), len(want))
			}
		}
		delivered = len(files)
	}
}

// On a full disk deliver exits 75 (the MTA retries) and leaves nothing behind.
func TestDeliverDiskFullIsTemporary(t *testing.T) {
	root := testRoot(t, "")
	mail := filepath.Join(root, "mail")
	if err := os.MkdirAll(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mail).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", mail).Run()
	big := "Subject: big\n\n" + strings.Repeat("x", 1<<20) + "\n"
	code, stderr := runDeliver(t, big, "--root", root, "alice@example.org")
	if code != 75 {
		t.Fatalf("deliver on a full disk: exit %d (%s), want 75", code, stderr)
	}
	for _, sub := range []string{"new", "cur", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(mail, "example.org/alice", sub))
		if len(entries) != 0 {
			t.Errorf("%s/ holds %d files after a failed delivery, want 0", sub, len(entries))
		}
	}
	if code, stderr := runDeliver(t, testMessage, "--root", root, "alice@example.org"); code != 0 {
		t.Errorf("small message after the failure: exit %d (%s), want 0", code, stderr)
	}
}

// An alias with a remote target delivers the local part and queues the
// remote copy for sendq, marked with a Delivered-To for the alias.
func TestDeliverForwardsRemoteAliasTargets(t *testing.T) {
	root := testRoot(t, "fwd@example.org: carol@remote.example, alice@example.org\n")
	code, stderr := runDeliver(t, testMessage, "--root", root, "-f", "bob@remote.example", "fwd@example.org")
	if code != 0 {
		t.Fatalf("exit %d (%s), want 0", code, stderr)
	}
	if n := len(mailFiles(t, root, "alice@example.org", "")); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
	sp, err := spool.Open(filepath.Join(root, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	envs, err := sp.List()
	if err != nil || len(envs) != 1 {
		t.Fatalf("spool has %d entries (%v), want 1", len(envs), err)
	}
	env := envs[0]
	if env.From != "bob@remote.example" || len(env.Recipients) != 1 || env.Recipients[0].Address != "carol@remote.example" {
		t.Errorf("queued envelope from %q to %+v, want bob@remote.example to carol@remote.example", env.From, env.Recipients)
	}
	f, err := sp.OpenMessage(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	want := "Delivered-To: fwd@example.org\n" + strings.ReplaceAll(testMessage, "\r\n", "\n")
	if string(got) != want {
		t.Errorf("queued message %q, want %q", got, want)
	}
	if !strings.Contains(stderr, "status=forwarded queue="+env.ID) {
		t.Errorf("log %q does not name the queue ID %s", stderr, env.ID)
	}
	// The copy coming back to the alias is a loop.
	if code, _ := runDeliver(t, string(got), "--root", root, "fwd@example.org"); code != 65 {
		t.Errorf("message returning to the alias: exit %d, want 65", code)
	}
}
