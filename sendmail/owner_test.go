package sendmail

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRunRecordsUserAndOwner: the queued entry records who ran sendmail,
// and sendmail run as root (cron, scripts) leaves files that belong to the
// spool's owner, which the queue runner, running as that user, can read.
func TestRunRecordsUserAndOwner(t *testing.T) {
	env := testEnv(t)
	want := fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid())
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		if err := os.Mkdir(env.Root.SpoolDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(env.Root.SpoolDir(), uid, gid); err != nil {
			t.Fatal(err)
		}
		want = nobody.Uid + ":" + nobody.Gid
	}
	var stderr bytes.Buffer
	if code := Run([]string{"bob@far.example"}, strings.NewReader("Subject: s\n\nb\n"), io.Discard, &stderr, env, Commands{}); code != 0 {
		t.Fatalf("Run = %d: %s", code, stderr.String())
	}
	e, _ := onlyEntry(t, env)
	if e.LocalUID != strconv.Itoa(os.Geteuid()) {
		t.Errorf("entry's local-uid = %q, want %d", e.LocalUID, os.Geteuid())
	}
	for _, p := range []string{"queue", filepath.Join("queue", e.ID)} {
		info, err := os.Stat(filepath.Join(env.Root.SpoolDir(), p))
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != want {
			t.Errorf("spool/%s is owned by %s, want %s (the spool's owner)", p, got, want)
		}
	}
}

func TestRunRefusesTooBig(t *testing.T) {
	env := testEnv(t)
	big := io.MultiReader(strings.NewReader("Subject: big\n\n"), io.LimitReader(dots{}, MaxMessageSize))
	var stderr bytes.Buffer
	if code := Run([]string{"-i", "bob@far.example"}, big, io.Discard, &stderr, env, Commands{}); code != 65 || !strings.Contains(stderr.String(), "limit") {
		t.Errorf("Run with a message over %d bytes = %d (%s), want 65", MaxMessageSize, code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(env.Root.SpoolDir(), "queue")); err == nil {
		if names, _ := os.ReadDir(filepath.Join(env.Root.SpoolDir(), "queue")); len(names) != 0 {
			t.Errorf("a refused message left %v in the spool", names)
		}
	}
}

type dots struct{}

func (dots) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}
