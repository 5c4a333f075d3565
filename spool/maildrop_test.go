package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logLines collects the lines Pickup logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func dropEnvelope() *Envelope {
	return &Envelope{
		From:       "cron@host.example.org",
		Ret:        "HDRS",
		EnvID:      "env-1",
		Body:       Body8BitMIME,
		Recipients: []Recipient{{Address: "bob@example.org", Notify: "FAILURE"}, {Address: "carol@far.example", ORCPT: "rfc822;carol@far.example"}},
		// Fields a submitter may not choose: Drop leaves them out.
		Hold: true, AuthUser: "mallory@example.org", ClientAddr: "192.0.2.1:1", LocalUID: "0",
	}
}

func TestDropThenPickup(t *testing.T) {
	s := openSpool(t)
	name, err := Drop(s.dir, dropEnvelope(), strings.NewReader("Subject: dropped\n\nbody\n"))
	if err != nil {
		t.Fatalf("Drop = %v", err)
	}
	if !validDropName(name) || ValidID(name) {
		t.Errorf("Drop named its file %q, not a drop name", name)
	}
	info, err := os.Stat(filepath.Join(s.dropDir, name))
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("drop file: %v, %v; want mode 0644 (the runner reads it as another user)", info, err)
	}
	if names := dirNames(t, s.dropDir); len(names) != 1 {
		t.Errorf("maildrop/ holds %q, want only the drop (no temporary file)", names)
	}

	var log logLines
	n, err := s.Pickup(log.logf)
	if err != nil || n != 1 {
		t.Fatalf("Pickup = %d, %v; want 1 (log: %s)", n, err, log.String())
	}
	if names := dirNames(t, s.dropDir); len(names) != 0 {
		t.Errorf("maildrop/ holds %q after Pickup, want nothing", names)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v; want one entry", list, err)
	}
	e := list[0]
	want := strconv.Itoa(os.Geteuid())
	if e.LocalUID != want || e.Hold || e.AuthUser != "" || e.ClientAddr != "" || e.From != "cron@host.example.org" ||
		e.Ret != "HDRS" || e.EnvID != "env-1" || e.Body != Body8BitMIME || len(e.Recipients) != 2 ||
		e.Recipients[0].Notify != "FAILURE" || e.Recipients[1].ORCPT != "rfc822;carol@far.example" {
		t.Errorf("queued envelope = %+v; want the drop's sender, recipients and DSN fields, local-uid %s, nothing else", e, want)
	}
	if msg := readMessage(t, s, e.ID); msg != "Subject: dropped\n\nbody\n" {
		t.Errorf("queued message = %q", msg)
	}
	if !strings.Contains(log.String(), "drop="+name+" uid="+want+" id="+e.ID+" status=queued") {
		t.Errorf("log = %q, want a line for the queued drop", log.String())
	}
	if n, err := s.Pickup(log.logf); n != 0 || err != nil {
		t.Errorf("second Pickup = %d, %v; want 0, nil", n, err)
	}
}

func TestDropTooBig(t *testing.T) {
	s := openSpool(t)
	_, err := Drop(s.dir, dropEnvelope(), io.LimitReader(zeros{}, MaxDropMessage+1))
	if !errors.Is(err, ErrTooBig) {
		t.Errorf("Drop of %d bytes = %v, want ErrTooBig", MaxDropMessage+1, err)
	}
	if names := dirNames(t, s.dropDir); len(names) != 0 {
		t.Errorf("a refused Drop left %q", names)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestSubmitAsOwnerEnqueues(t *testing.T) {
	s := openSpool(t)
	env := &Envelope{From: "a@example.org", Recipients: []Recipient{{Address: "b@example.org"}}}
	id, err := Submit(s.dir, env, strings.NewReader("x\n"))
	if err != nil || !ValidID(id) || env.ID != id {
		t.Fatalf("Submit = %q, %v (env.ID %q); want a queue ID", id, err, env.ID)
	}
	got, err := s.Load(id)
	if err != nil || got.LocalUID != strconv.Itoa(os.Geteuid()) {
		t.Errorf("Load = %+v, %v; want local-uid %d", got, err, os.Geteuid())
	}
}

// validDrop returns the bytes of a drop as Drop writes them.
func validDrop(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, MaildropDir), 0o700)
	name, err := Drop(dir, dropEnvelope(), strings.NewReader("Subject: s\n\nb\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, MaildropDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPickupRefusesBadDrops puts in maildrop/ what a hostile or broken local
// user could: each is refused and removed (or left, if it is a drop still
// being written), never queued, and the runner goes on with the next.
func TestPickupRefusesBadDrops(t *testing.T) {
	good := validDrop(t)
	head, body, _ := bytes.Cut(good, []byte("\n\n"))
	replace := func(old, new string) []byte {
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name  string
		make  func(t *testing.T, path string)
		why   string // in the log line
		stays bool   // a temporary file: left for Clean
	}{
		{"garbage", file([]byte("GET / HTTP/1.0\n\n")), "invalid envelope", false},
		{"no empty line", file(head), "truncated", false},
		{"empty", file(nil), "truncated", false},
		{"hold", file(replace("hold no", "hold yes")), "as Drop writes them", false},
		{"delivered", file(replace("state pending", "state delivered")), "as Drop writes them", false},
		{"auth-user", file(replace("requiretls no\n", "requiretls no\nauth-user boss@example.org\n")), "as Drop writes them", false},
		{"local-uid", file(replace("requiretls no\n", "requiretls no\nlocal-uid 0\n")), "as Drop writes them", false},
		{"unknown key", file(replace("requiretls no\n", "requiretls no\nfuture x\n")), "unknown key", false},
		{"bad recipient", file(replace("rcpt bob@example.org", "rcpt bob@@example.org")), "recipient", false},
		{"long line", file(append(append([]byte("postkit-envelope 1\nfrom "), bytes.Repeat([]byte("a"), maxDropLine+10)...), "\n\n"...)), "longer than", false},
		{"too big", func(t *testing.T, p string) {
			file(good)(t, p)
			if err := os.Truncate(p, maxDropSize+1); err != nil {
				t.Fatal(err)
			}
		}, "too big", false},
		{"message too big", func(t *testing.T, p string) {
			file(good)(t, p)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := io.Copy(f, io.LimitReader(zeros{}, MaxDropMessage+1-int64(len(body)))); err != nil {
				t.Fatal(err)
			}
		}, "too big", false},
		{"symlink", func(t *testing.T, p string) {
			target := filepath.Join(t.TempDir(), "target")
			file(good)(t, target)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link", false},
		{"hard link", func(t *testing.T, p string) {
			target := filepath.Join(filepath.Dir(p), ".tmp.other")
			file(good)(t, target)
			if err := os.Link(target, p); err != nil {
				t.Fatal(err)
			}
		}, "2 links", false},
		{"fifo", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file", false},
		{"directory", func(t *testing.T, p string) {
			if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file", false},
		{"not a drop name", file(good), "not a drop name", false},
		{"partial drop", file(good[:len(good)/2]), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t)
			name, _ := newDropName(time.Now())
			switch tt.name {
			case "not a drop name":
				name = "notadrop"
			case "partial drop":
				name = ".tmp.0123456789abcdef"
			}
			tt.make(t, filepath.Join(s.dropDir, name))
			// A good drop after the bad one: Pickup goes on.
			if _, err := Drop(s.dir, dropEnvelope(), strings.NewReader("good\n")); err != nil {
				t.Fatal(err)
			}
			var log logLines
			n, err := s.Pickup(log.logf)
			if err != nil || n != 1 {
				t.Errorf("Pickup = %d, %v; want 1 (only the good drop) (log: %s)", n, err, log.String())
			}
			if ids, _ := s.IDs(); len(ids) != 1 {
				t.Errorf("the spool holds %d entries, want 1", len(ids))
			}
			refused := strings.Contains(log.String(), "status=refused")
			if tt.stays && refused || !tt.stays && (!refused || !strings.Contains(log.String(), tt.why)) {
				t.Errorf("log = %q, want a refusal saying %q (or none for a drop being written)", log.String(), tt.why)
			}
			left := dirNames(t, s.dropDir)
			for _, l := range left {
				switch {
				case l == name && tt.stays:
				case strings.HasPrefix(l, ".tmp."):
					// The hard link's other name, a renamed directory: Clean's.
				default:
					t.Errorf("maildrop/ still holds %q after Pickup", l)
				}
			}
			if tt.stays && (len(left) != 1 || left[0] != name) {
				t.Errorf("maildrop/ holds %q, want the partial drop %q left alone", left, name)
			}
		})
	}
}

// file returns a maker that writes data to a file (mode 0644).
func file(data []byte) func(t *testing.T, p string) {
	return func(t *testing.T, p string) {
		t.Helper()
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchWakesOnDrop(t *testing.T) {
	s := openSpool(t)
	wake, err := s.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	<-wake // the initial one
	if _, err := Drop(s.dir, dropEnvelope(), strings.NewReader("x\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after a drop")
	}
}

func TestCleanRemovesStaleDropTemporaries(t *testing.T) {
	s := openSpool(t)
	stale := filepath.Join(s.dropDir, ".tmp.0011223344556677")
	fresh := filepath.Join(s.dropDir, ".tmp.8899aabbccddeeff")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := s.Clean(time.Hour); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, s.dropDir); len(names) != 1 || names[0] != filepath.Base(fresh) {
		t.Errorf("after Clean maildrop/ holds %q, want only the fresh temporary", names)
	}
	// A spool of the old layout, without maildrop/: Clean and Pickup do
	// not mind.
	os.RemoveAll(s.dropDir)
	if _, err := s.Clean(time.Hour); err != nil {
		t.Errorf("Clean without maildrop/ = %v", err)
	}
	if n, err := s.Pickup(t.Logf); n != 0 || err != nil {
		t.Errorf("Pickup without maildrop/ = %d, %v", n, err)
	}
}

func TestLocalUIDInEnvelope(t *testing.T) {
	for _, tt := range []struct {
		uid string
		ok  bool
	}{{"0", true}, {"65534", true}, {"4294967295", true}, {"4294967296", false}, {"01", false}, {"-1", false}, {"root", false}} {
		e := newEnvelope("a@example.org")
		e.ID, e.LocalUID = "0PQ3K7T2M1A4B5C6", tt.uid
		data, err := MarshalEnvelope(e)
		if (err == nil) != tt.ok {
			t.Errorf("MarshalEnvelope with local-uid %q = %v, want ok %v", tt.uid, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		back, err := ParseEnvelope(data)
		if err != nil || back.LocalUID != tt.uid {
			t.Errorf("ParseEnvelope(%q) = %+v, %v; want local-uid %s", data, back, err, tt.uid)
		}
	}
}

// childBinary copies the test binary to a directory every user may enter,
// for children that run as another user.
func childBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "spool.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// asNobody runs the test binary's child mode as user nobody.
func asNobody(t *testing.T, mode, dir string) ([]byte, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a child as another user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	cmd := exec.Command(childBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CHILD="+mode, "SPOOL_TEST_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

// TestSubmitAsAnotherUserDrops: a user who does not own the spool submits
// through maildrop/ (it cannot even look into env/ and msg/), and the queue
// runner records that user's uid.
func TestSubmitAsAnotherUserDrops(t *testing.T) {
	s := openSpool(t)
	os.Chmod(filepath.Dir(s.dir), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(s.dir)), 0o755)
	out, err := asNobody(t, "submit", s.dir)
	if err != nil {
		t.Fatalf("Submit as nobody: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "drop ") {
		t.Errorf("Submit as nobody returned %q, want a drop", out)
	}
	var log logLines
	if n, err := s.Pickup(log.logf); n != 1 || err != nil {
		t.Fatalf("Pickup = %d, %v (log %s)", n, err, log.String())
	}
	list, _ := s.List()
	nobody, _ := user.Lookup("nobody")
	if len(list) != 1 || list[0].LocalUID != nobody.Uid || list[0].From != "nobody@example.org" {
		t.Errorf("queued %+v, want nobody's message with local-uid %s", list, nobody.Uid)
	}
}

// TestRootGivesFilesToOwner: root (sendq hold, sendmail, deliver run by an
// administrator) writes into a spool that belongs to another user: every
// file and directory it makes belongs to that user, who can go on.
func TestRootGivesFilesToOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files away needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := enqueue(t, s, "from root\n")
	env.Hold = true
	if err := s.Update(env); err != nil {
		t.Fatal(err)
	}
	l, err := s.LockRunner()
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	want := nobody.Uid + ":" + nobody.Gid
	for _, p := range []string{s.queueDir, s.envDir, s.dropDir, s.queuePath(env.ID), s.envPath(env.ID), filepath.Join(dir, "runner.lock")} {
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != want {
			t.Errorf("%s is owned by %s, want %s (the spool's owner)", p, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "env", ".tmp.")); err == nil {
		t.Error("a temporary envelope was left")
	}
}

func FuzzReadDrop(f *testing.F) {
	good := validDrop(f)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte("hold no"), []byte("hold yes"), 1))
	f.Add([]byte("postkit-envelope 1\n\n"))
	f.Add([]byte("\n\nbody"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		env, err := readDrop(br)
		if err != nil {
			return
		}
		if env.Hold || env.DelayNotified || env.AuthUser != "" || env.ClientAddr != "" || env.Helo != "" || env.Junk != "" || env.LocalUID != "" {
			t.Errorf("readDrop(%q) accepted a field only the queue sets: %+v", data, env)
		}
		for _, r := range env.Recipients {
			if r.State != Pending || r.Attempts != 0 || r.LastError != "" || !r.LastAttempt.IsZero() {
				t.Errorf("readDrop(%q) accepted a recipient with delivery state: %+v", data, r)
			}
		}
		if _, err := MarshalEnvelope(env); err != nil {
			t.Errorf("readDrop(%q) accepted an envelope that does not marshal: %v", data, err)
		}
	})
}

func init() {
	childModes["submit"] = func(dir string) error {
		env := &Envelope{From: "nobody@example.org", Recipients: []Recipient{{Address: "root@example.org"}}}
		id, err := Submit(dir, env, strings.NewReader("Subject: from nobody\n\n"))
		if err != nil {
			return err
		}
		if _, err := os.ReadDir(filepath.Join(dir, "env")); err == nil {
			return errors.New("nobody can list env/")
		}
		if ValidID(id) {
			fmt.Printf("queue %s\n", id)
		} else {
			fmt.Printf("drop %s\n", id)
		}
		return nil
	}
}
