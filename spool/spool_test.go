package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests re-execute the test binary as a separate enqueuing
// process: SPOOL_TEST_CHILD names what the child does, SPOOL_TEST_DIR where.
func TestMain(m *testing.M) {
	switch os.Getenv("SPOOL_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "enqueue":
		s, err := Open(os.Getenv("SPOOL_TEST_DIR"))
		if err == nil {
			_, err = s.Enqueue(newEnvelope("child@example.org"), strings.NewReader("Subject: from a child\n\nhi\n"))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "enqueue-blocking":
		s, err := Open(os.Getenv("SPOOL_TEST_DIR"))
		if err == nil {
			_, err = s.Enqueue(newEnvelope("child@example.org"), &stallingReader{})
		}
		fmt.Fprintln(os.Stderr, "enqueue returned:", err)
		os.Exit(1)
	default:
		if f, ok := childModes[os.Getenv("SPOOL_TEST_CHILD")]; ok {
			if err := f(os.Getenv("SPOOL_TEST_DIR")); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(2)
}

// childModes are more things a child can do (SPOOL_TEST_CHILD=name), in the
// directory SPOOL_TEST_DIR.
var childModes = map[string]func(dir string) error{}

// stallingReader gives the first part of a message, then says "ready" on
// stdout and blocks reading stdin, which the parent never writes: a client
// gone quiet in the middle of DATA.
type stallingReader struct{ calls int }

func (r *stallingReader) Read(p []byte) (int, error) {
	r.calls++
	if r.calls == 1 {
		return copy(p, "Subject: half a message\n\nthe first half\n"), nil
	}
	fmt.Println("ready")
	return os.Stdin.Read(p)
}

func newEnvelope(from string, rcpts ...string) *Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"bob@example.org"}
	}
	e := &Envelope{From: from, Body: Body8BitMIME, ClientAddr: "127.0.0.1:40000", Helo: "client.example.org"}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, Recipient{Address: r, Notify: "FAILURE,DELAY"})
	}
	return e
}

func openSpool(t testing.TB) *Spool {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func enqueue(t testing.TB, s *Spool, msg string, rcpts ...string) *Envelope {
	t.Helper()
	env := newEnvelope("alice@example.org", rcpts...)
	if _, err := s.Enqueue(env, strings.NewReader(msg)); err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	return env
}

func readMessage(t *testing.T, s *Spool, id string) string {
	t.Helper()
	f, err := s.OpenMessage(id)
	if err != nil {
		t.Fatalf("OpenMessage(%s) = %v", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dirNames lists a spool subdirectory, failing the test if it cannot.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestOpenCreatesPrivateLayout(t *testing.T) {
	s := openSpool(t)
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{s.dir, os.ModeDir | 0o711}, // others may only pass through, to maildrop/
		{s.queueDir, os.ModeDir | 0o700},
		{s.envDir, os.ModeDir | 0o700},
		{s.dropDir, os.ModeDir | os.ModeSticky | 0o733},
	} {
		info, err := os.Stat(d.path)
		if err != nil || info.Mode() != d.mode {
			t.Errorf("Stat(%s) = %v, %v; want mode %v", d.path, info.Mode(), err, d.mode)
		}
	}
	if _, err := Open(s.dir); err != nil {
		t.Errorf("Open of an existing spool = %v", err)
	}
}

func TestEnqueueLoadRoundTrip(t *testing.T) {
	s := openSpool(t)
	msg := "From: alice@example.org\nSubject: hi\n\nbody\n"
	env := newEnvelope("alice@example.org", "bob@example.org", "carol@example.net")
	env.Ret, env.EnvID, env.RequireTLS, env.SMTPUTF8, env.AuthUser = "FULL", "E1", true, true, "alice@example.org"
	env.Recipients[1].ORCPT = "rfc822;carol@example.net"
	before := time.Now()
	id, err := s.Enqueue(env, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	if !ValidID(id) || env.ID != id {
		t.Fatalf("Enqueue = %q, env.ID %q; want one valid ID", id, env.ID)
	}
	if env.Arrival.Before(before.Add(-time.Second)) || !env.NextAttempt.Equal(env.Arrival) {
		t.Errorf("Arrival %v, NextAttempt %v; want now, and due at once", env.Arrival, env.NextAttempt)
	}
	got, err := s.Load(id)
	if err != nil {
		t.Fatalf("Load(%s) = %v", id, err)
	}
	if !envEqual(got, env) {
		t.Errorf("Load(%s) = %+v, want %+v", id, got, env)
	}
	if m := readMessage(t, s, id); m != msg {
		t.Errorf("message = %q, want %q", m, msg)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("List = %v, %v; want the one entry", list, err)
	}
	if info, err := os.Stat(s.queuePath(id)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("Stat(%s) = %v, %v; want mode 0600", s.queuePath(id), info, err)
	}
	// One file per entry: the envelope, an empty line, the message (the
	// format of a drop). env/ holds envelopes of updated entries only.
	data, err := os.ReadFile(s.queuePath(id))
	if err != nil {
		t.Fatal(err)
	}
	head, err := MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(head) + "\n" + msg; string(data) != want {
		t.Errorf("queue file = %q, want %q", data, want)
	}
	if names := dirNames(t, s.envDir); len(names) != 0 {
		t.Errorf("env/ holds %v for an entry never updated", names)
	}
	m, err := s.OpenMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Size() != int64(len(msg)) {
		t.Errorf("OpenMessage(%s).Size() = %d, want %d", id, m.Size(), len(msg))
	}
}

// envEqual compares envelopes with time.Equal for the times.
func envEqual(a, b *Envelope) bool {
	ma, err1 := MarshalEnvelope(a)
	mb, err2 := MarshalEnvelope(b)
	return err1 == nil && err2 == nil && bytes.Equal(ma, mb)
}

func TestEnqueueRefusesInvalidEnvelope(t *testing.T) {
	s := openSpool(t)
	env := newEnvelope("alice@example.org")
	env.Recipients = nil
	if id, err := s.Enqueue(env, strings.NewReader("x\n")); !errors.Is(err, ErrInvalid) || IsTemporary(err) {
		t.Errorf("Enqueue without recipients = %q, %v; want a permanent ErrInvalid", id, err)
	}
	if names := dirNames(t, s.queueDir); len(names) != 0 {
		t.Errorf("queue/ holds %v after a refused Enqueue", names)
	}
}

func TestConcurrentEnqueues(t *testing.T) {
	s := openSpool(t)
	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = s.Enqueue(newEnvelope(fmt.Sprintf("sender%d@example.org", i)),
				strings.NewReader(fmt.Sprintf("Subject: %d\n\n%s\n", i, strings.Repeat("x", 1000*i))))
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Enqueue %d = %v", i, errs[i])
		}
		if j, dup := seen[ids[i]]; dup {
			t.Fatalf("Enqueue %d and %d both returned %s", i, j, ids[i])
		}
		seen[ids[i]] = i
	}
	list, err := s.List()
	if err != nil || len(list) != n {
		t.Fatalf("List = %d entries, %v; want %d", len(list), err, n)
	}
	for _, env := range list {
		i := seen[env.ID]
		if env.From != fmt.Sprintf("sender%d@example.org", i) {
			t.Errorf("entry %s has From %q, want sender%d", env.ID, env.From, i)
		}
		if m, want := readMessage(t, s, env.ID), fmt.Sprintf("Subject: %d\n\n%s\n", i, strings.Repeat("x", 1000*i)); m != want {
			t.Errorf("entry %s message has %d bytes, want %d", env.ID, len(m), len(want))
		}
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s := openSpool(t)
	env := enqueue(t, s, "x\n", "a@example.org", "b@example.org", "c@example.org", "d@example.org")

	// A reader racing the updates sees one whole version or the next,
	// never a mix: every recipient has the same attempt count.
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		last := 0
		for {
			select {
			case <-done:
				readerErr <- nil
				return
			default:
			}
			got, err := s.Load(env.ID)
			if err != nil {
				readerErr <- err
				return
			}
			k := got.Recipients[0].Attempts
			for _, r := range got.Recipients {
				if r.Attempts != k {
					readerErr <- fmt.Errorf("mixed envelope: %+v", got.Recipients)
					return
				}
			}
			if k < last {
				readerErr <- fmt.Errorf("attempts went back from %d to %d", last, k)
				return
			}
			last = k
		}
	}()
	for k := 1; k <= 100; k++ {
		for i := range env.Recipients {
			env.Recipients[i].Attempts = k
			env.Recipients[i].LastError = fmt.Sprintf("451 4.4.1 try %d", k)
		}
		if err := s.Update(env); err != nil {
			t.Fatalf("Update %d = %v", k, err)
		}
	}
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}

	// A refused update leaves the last good envelope.
	bad := *env
	bad.Recipients = nil
	if err := s.Update(&bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("Update without recipients = %v, want ErrInvalid", err)
	}
	got, err := s.Load(env.ID)
	if err != nil || got.Recipients[3].Attempts != 100 {
		t.Errorf("Load after refused Update = %+v, %v; want attempts 100", got, err)
	}
	if names := dirNames(t, s.envDir); len(names) != 1 {
		t.Errorf("env/ holds %v, want only the envelope", names)
	}
}

func TestUpdateNeverResurrects(t *testing.T) {
	s := openSpool(t)
	env := enqueue(t, s, "x\n")
	if err := s.Remove(env.ID); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	env.Recipients[0].State = Delivered
	if err := s.Update(env); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update after Remove = %v, want ErrNotFound", err)
	}
	if err := s.Remove(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	for _, d := range []string{s.queueDir, s.envDir} {
		if names := dirNames(t, d); len(names) != 0 {
			t.Errorf("%s holds %v after Remove and Update", d, names)
		}
	}
	if _, err := s.Load(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Remove = %v, want ErrNotFound", err)
	}
	if _, err := s.OpenMessage(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenMessage after Remove = %v, want ErrNotFound", err)
	}
}

func TestEntryLockSerialisesRunnerAndHold(t *testing.T) {
	s := openSpool(t)
	env := enqueue(t, s, "x\n")

	// The runner holds the entry for a delivery attempt...
	runner, err := s.Lock(env.ID, 0)
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	// ...so sendq hold, running meanwhile, cannot slip its change in
	// between the runner's Load and Update.
	s.LockWait = 0
	held := *env
	held.Hold = true
	if err := s.Update(&held); !errors.Is(err, ErrBusy) || !IsTemporary(err) {
		t.Errorf("Update during the runner's attempt = %v, want ErrBusy", err)
	}
	if err := s.Remove(env.ID); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove during the runner's attempt = %v, want ErrBusy", err)
	}
	got, err := runner.Load()
	if err != nil {
		t.Fatal(err)
	}
	got.Recipients[0].State, got.Recipients[0].Attempts = Delivered, 1
	if err := runner.Update(got); err != nil {
		t.Fatalf("runner Update = %v", err)
	}
	runner.Unlock()

	if err := s.Update(&held); err != nil {
		t.Fatalf("Update after the attempt = %v", err)
	}
	if _, err := s.Lock("0000000000000000", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of an unknown ID = %v, want ErrNotFound", err)
	}
	if _, err := s.Lock("../env/x", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of a path = %v, want ErrNotFound", err)
	}
}

func TestRunnerLockExcludesSecondRunner(t *testing.T) {
	s := openSpool(t)
	first, err := s.LockRunner()
	if err != nil {
		t.Fatalf("LockRunner = %v", err)
	}
	if l, err := s.LockRunner(); !errors.Is(err, ErrRunnerActive) {
		t.Fatalf("second LockRunner = %v, %v; want ErrRunnerActive", l, err)
	}
	first.Unlock()
	again, err := s.LockRunner()
	if err != nil {
		t.Fatalf("LockRunner after Unlock = %v", err)
	}
	again.Unlock()
}

func TestDue(t *testing.T) {
	s := openSpool(t)
	now := time.Now()
	later := enqueue(t, s, "1\n")
	later.NextAttempt = now.Add(time.Hour)
	held := enqueue(t, s, "2\n")
	held.Hold = true
	soon := enqueue(t, s, "3\n")
	soon.NextAttempt = now.Add(-time.Minute)
	done := enqueue(t, s, "4\n")
	done.Recipients[0].State = Failed
	done.NextAttempt = now.Add(-time.Hour)
	for _, e := range []*Envelope{later, held, soon, done} {
		if err := s.Update(e); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.Due(now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range due {
		got = append(got, e.ID)
	}
	// Ordered by next attempt; the finished entry is due so the runner
	// can bounce and remove it.
	if want := []string{done.ID, soon.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Due = %v, want %v", got, want)
	}
}

func TestListReportsDamagedEntriesAndGoesOn(t *testing.T) {
	s := openSpool(t)
	good := enqueue(t, s, "good\n")
	bad := enqueue(t, s, "bad\n")
	if err := os.WriteFile(s.envPath(bad.ID), []byte("postkit-envelope 1\nid "+bad.ID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if len(list) != 1 || list[0].ID != good.ID {
		t.Errorf("List = %v, want only the good entry", list)
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad.ID) {
		t.Errorf("List error = %v, want ErrInvalid naming %s", err, bad.ID)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(s *Spool) error
	}{
		{"queue directory missing", func(s *Spool) error { return os.RemoveAll(s.queueDir) }},
		{"queue directory replaced by a file", func(s *Spool) error {
			if err := os.RemoveAll(s.queueDir); err != nil {
				return err
			}
			return os.WriteFile(s.queueDir, nil, 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t)
			if err := tt.break_(s); err != nil {
				t.Fatal(err)
			}
			id, err := s.Enqueue(newEnvelope("alice@example.org"), strings.NewReader("Subject: x\n\nx\n"))
			var se *StorageError
			if err == nil || !IsTemporary(err) || !errors.As(err, &se) {
				t.Fatalf("Enqueue = %q, %v; want a temporary StorageError", id, err)
			}
			if !strings.HasPrefix(err.Error(), "spool: ") {
				t.Errorf("error %q lacks the spool: prefix", err)
			}
			for _, d := range []string{s.queueDir, s.envDir} {
				names, err := readDirNames(d)
				if err == nil && len(names) != 0 {
					t.Errorf("%s holds %v after a failed Enqueue", d, names)
				}
			}
		})
	}
}

func TestReaderErrorIsNotStorageError(t *testing.T) {
	s := openSpool(t)
	boom := errors.New("client went away")
	r := io.MultiReader(strings.NewReader("Subject: x\n\n"), errReader{boom})
	id, err := s.Enqueue(newEnvelope("alice@example.org"), r)
	if !errors.Is(err, boom) || IsTemporary(err) {
		t.Errorf("Enqueue = %q, %v; want the reader's error, not a storage fault", id, err)
	}
	if names := dirNames(t, s.queueDir); len(names) != 0 {
		t.Errorf("queue/ holds %v after a failed Enqueue", names)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestKilledEnqueueLeavesNoEntry kills an enqueuing process in the middle of
// the message: no entry may appear, and Clean must remove the leftovers.
func TestKilledEnqueueLeavesNoEntry(t *testing.T) {
	s := openSpool(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CHILD=enqueue-blocking", "SPOOL_TEST_DIR="+s.dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	if names := dirNames(t, s.queueDir); len(names) != 1 || !strings.HasPrefix(names[0], ".tmp.") {
		t.Errorf("queue/ holds %v while the child writes, want its one temporary file", names)
	}
	if n, err := s.Clean(0); n != 0 || err != nil {
		t.Errorf("Clean while the child is alive = %d, %v; want 0 (its file is locked)", n, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	list, err := s.List()
	if err != nil || len(list) != 0 {
		t.Errorf("List after kill = %v, %v; want nothing", list, err)
	}
	// A crash while writing an envelope leaves a temporary in env/.
	if err := os.WriteFile(filepath.Join(s.envDir, ".tmp.0123456789abcdef"), []byte("postkit-envelope 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Errorf("List with a temporary envelope = %v, %v; want nothing", list, err)
	}
	if n, err := s.Clean(time.Hour); n != 0 || err != nil {
		t.Errorf("Clean(1h) of fresh leftovers = %d, %v; want 0 (too young)", n, err)
	}
	if n, err := s.Clean(0); n != 2 || err != nil {
		t.Errorf("Clean(0) = %d, %v; want 2 (the two temporaries)", n, err)
	}
	for _, d := range []string{s.queueDir, s.envDir} {
		if names := dirNames(t, d); len(names) != 0 {
			t.Errorf("%s holds %v after Clean", d, names)
		}
	}
}

// gate is a message source that stops in the middle until released.
type gate struct {
	calls    int
	started  chan struct{}
	released chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	g.calls++
	switch g.calls {
	case 1:
		return copy(p, "Subject: slow\n\n"), nil
	case 2:
		close(g.started)
		<-g.released
		return copy(p, "the rest\n"), nil
	}
	return 0, io.EOF
}

func TestCleanSparesLiveWriterAndKeepsEntries(t *testing.T) {
	s := openSpool(t)
	kept := enqueue(t, s, "kept\n")
	g := &gate{started: make(chan struct{}), released: make(chan struct{})}
	result := make(chan error, 1)
	var id string
	go func() {
		var err error
		id, err = s.Enqueue(newEnvelope("slow@example.org"), g)
		result <- err
	}()
	<-g.started
	if n, err := s.Clean(0); n != 0 || err != nil {
		t.Errorf("Clean during a slow Enqueue = %d, %v; want 0", n, err)
	}
	close(g.released)
	if err := <-result; err != nil {
		t.Fatalf("slow Enqueue = %v", err)
	}
	if m := readMessage(t, s, id); m != "Subject: slow\n\nthe rest\n" {
		t.Errorf("slow message = %q", m)
	}
	if _, err := s.Load(kept.ID); err != nil {
		t.Errorf("Load(%s) after Clean = %v", kept.ID, err)
	}

	// A Remove that crashed between unlinking the queue file and the
	// updated envelope leaves the envelope: no entry, and Clean removes it.
	kept.Hold = true
	if err := s.Update(kept); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.queuePath(kept.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(kept.ID, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of an entry without queue file = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(kept.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of a leftover envelope = %v, want ErrNotFound", err)
	}
	if n, err := s.Clean(0); n != 1 || err != nil {
		t.Errorf("Clean with a leftover envelope = %d, %v; want 1", n, err)
	}
	if exists(s.envPath(kept.ID)) {
		t.Errorf("Clean left %s", s.envPath(kept.ID))
	}
	if list, _ := s.List(); len(list) != 1 || list[0].ID != id {
		t.Errorf("List after Clean = %v, want only %s", list, id)
	}
}

func BenchmarkEnqueue4K(b *testing.B) {
	s := openSpool(b)
	msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\n"), 64)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := s.Enqueue(newEnvelope("alice@example.org"), bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRemoveTakesUpdatedEnvelope(t *testing.T) {
	s := openSpool(t)
	env := enqueue(t, s, "x\n", "a@example.org", "b@example.org")
	env.Recipients[0].State = Delivered
	if err := s.Update(env); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(env.ID)
	if err != nil || got.Recipients[0].State != Delivered {
		t.Fatalf("Load after Update = %+v, %v; want a's state delivered", got, err)
	}
	// The queue file keeps the envelope as enqueued; env/ID wins.
	l, err := s.Lock(env.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Load(); err != nil || got.Recipients[0].State != Delivered {
		t.Errorf("EntryLock.Load = %+v, %v; want the updated envelope", got, err)
	}
	if err := l.Remove(); err != nil {
		t.Fatalf("Remove = %v", err)
	}
	l.Unlock()
	for _, d := range []string{s.queueDir, s.envDir} {
		if names := dirNames(t, d); len(names) != 0 {
			t.Errorf("%s holds %v after Remove", d, names)
		}
	}
}

func TestRenumberRewritesTheIDInPlace(t *testing.T) {
	s := openSpool(t)
	env := newEnvelope("alice@example.org")
	now := time.Now().UTC()
	id, err := newID(now)
	if err != nil {
		t.Fatal(err)
	}
	env.ID, env.Arrival, env.NextAttempt = id, now, now
	head, err := MarshalEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.createTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(append(head, '\n'), "msg\n"...)); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.renumber(f, head, id, now)
	if err != nil || fresh == id || !ValidID(fresh) {
		t.Fatalf("renumber = %q, %v; want a new valid ID", fresh, err)
	}
	if err := os.Rename(f.Name(), s.queuePath(fresh)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(fresh)
	if err != nil || got.ID != fresh || got.From != env.From {
		t.Errorf("Load(%s) = %+v, %v", fresh, got, err)
	}
	if m := readMessage(t, s, fresh); m != "msg\n" {
		t.Errorf("message = %q", m)
	}
}

func TestDamagedQueueFile(t *testing.T) {
	tests := []struct{ name, data string }{
		{"empty", ""},
		{"no empty line", "postkit-envelope 1\nid ID\n"},
		{"bad envelope", "postkit-envelope 1\nid ID\nbogus key\n\nmsg\n"},
		{"another id", "postkit-envelope 1\nid 0000000000000000\n\nmsg\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t)
			id, err := newID(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.queuePath(id), []byte(strings.ReplaceAll(tt.data, "ID", id)), 0o600); err != nil {
				t.Fatal(err)
			}
			if env, err := s.Load(id); !errors.Is(err, ErrInvalid) {
				t.Errorf("Load = %+v, %v; want ErrInvalid", env, err)
			}
			if tt.name != "bad envelope" && tt.name != "another id" {
				if m, err := s.OpenMessage(id); !errors.Is(err, ErrInvalid) {
					t.Errorf("OpenMessage = %v, %v; want ErrInvalid", m, err)
				}
			}
		})
	}
}

// FuzzQueueFile feeds arbitrary queue files to Load and OpenMessage: they
// never panic, and whatever Load accepts reads back the message after it.
func FuzzQueueFile(f *testing.F) {
	f.Add([]byte("postkit-envelope 1\nid ID\nfrom a@example.org\narrival 2026-11-22T07:02:13Z\nnext-attempt 2026-11-22T07:02:13Z\nhold no\ndelay-notified no\nsmtputf8 no\nrequiretls no\nrcpt b@example.org\n  state pending\n  attempts 0\n\nSubject: x\n\nbody\n"))
	f.Add([]byte("postkit-envelope 1\n\n\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := openSpool(t)
		id := "0PQ3K7T2M1A4B5C6"
		data = bytes.ReplaceAll(data, []byte("ID"), []byte(id))
		if err := os.WriteFile(s.queuePath(id), data, 0o600); err != nil {
			t.Fatal(err)
		}
		env, err := s.Load(id)
		if err != nil {
			return
		}
		if env.ID != id {
			t.Fatalf("Load accepted an envelope naming %q", env.ID)
		}
		m, err := s.OpenMessage(id)
		if err != nil {
			t.Fatalf("OpenMessage after a good Load = %v", err)
		}
		defer m.Close()
		got, err := io.ReadAll(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(data, got) || !bytes.Contains(data, []byte("\n\n")) {
			t.Fatalf("message %q is not the tail of the file", got)
		}
	})
}
