package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/routes"
	"github.com/postkit/postkit/spool"
)

// logBuf collects log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) Logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logBuf) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type env struct {
	root  control.Root
	spool *spool.Spool
	log   *logBuf
	cfg   Config
}

// newEnv makes a root with users alice and carol of example.org and the
// aliases given, and a Config whose routes are routeLines.
func newEnv(t *testing.T, aliases string, routeLines ...string) *env {
	t.Helper()
	root := control.Root(t.TempDir())
	if err := os.MkdirAll(root.Etc(""), 0o700); err != nil {
		t.Fatal(err)
	}
	users := "alice@example.org:{BLF-CRYPT}$2y$10$x::::::\ncarol@example.org:{BLF-CRYPT}$2y$10$x::::::\n"
	os.WriteFile(root.Etc("users"), []byte(users), 0o600)
	os.WriteFile(root.Etc("aliases"), []byte(aliases), 0o600)
	sp, err := spool.Open(root.SpoolDir())
	if err != nil {
		t.Fatal(err)
	}
	table, err := routes.Parse(strings.Join(routeLines, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, spool: sp, log: &logBuf{}}
	e.cfg = Config{
		Root:           root,
		Hostname:       "mx.example.org",
		RetryMin:       100 * time.Millisecond,
		RetryMax:       time.Second,
		Lifetime:       time.Hour,
		Concurrency:    4,
		PerDestination: 2,
		Routes:         table,
		Remote: &remote.Client{Hostname: "mx.example.org", Timeouts: remote.Timeouts{
			Connect: 2 * time.Second, Command: 5 * time.Second, DataBlock: 5 * time.Second, DataEnd: 5 * time.Second}},
		Logf: e.log.Logf,
	}
	return e
}

// start runs a Runner until the test ends.
func (e *env) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(e.cfg, e.spool).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func (e *env) enqueue(t *testing.T, from string, msg string, rcpts ...string) *spool.Envelope {
	t.Helper()
	env := &spool.Envelope{From: from}
	for _, r := range rcpts {
		notify := ""
		if a, n, ok := strings.Cut(r, " NOTIFY="); ok {
			r, notify = a, n
		}
		env.Recipients = append(env.Recipients, spool.Recipient{Address: r, Notify: notify})
	}
	if _, err := e.spool.Enqueue(env, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	return env
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) empty() bool {
	ids, err := e.spool.IDs()
	return err == nil && len(ids) == 0
}

// mailbox returns the messages in user's Maildir new/.
func (e *env) mailbox(t *testing.T, user string) []string {
	t.Helper()
	dir := filepath.Join(e.root.MailDir(), "example.org", user, "new")
	entries, _ := os.ReadDir(dir)
	var msgs []string
	for _, ent := range entries {
		data, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, string(data))
	}
	return msgs
}

const msg = "From: alice@example.org\nSubject: test\n\nhello\n"

func TestLocalDelivery(t *testing.T) {
	e := newEnv(t, "")
	e.start(t)
	e.enqueue(t, "bob@far.example", msg, "alice@example.org")
	waitFor(t, "the entry to be delivered and removed", 5*time.Second, e.empty)
	got := e.mailbox(t, "alice")
	want := "Return-Path: <bob@far.example>\nDelivered-To: alice@example.org\n" + msg
	if len(got) != 1 || got[0] != want {
		t.Errorf("alice's mailbox = %q, want [%q]", got, want)
	}
	if e.log.count("status=delivered relay=local") != 1 {
		t.Errorf("log lacks the delivery:\n%s", e.log)
	}
}

func TestRetryAfter451ThenSuccess(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Data: func(n int) error {
		if n == 0 {
			return smtptest.Refuse(451, smtp.EnhancedCode{4, 3, 0}, "try again")
		}
		return nil
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.start(t)
	e.enqueue(t, "alice@example.org", msg, "bob@far.example")
	srv.Wait(t, 1, 5*time.Second)
	waitFor(t, "the entry to be removed", 5*time.Second, e.empty)
	if e.log.count("status=deferred") != 1 || e.log.count("status=delivered") != 1 {
		t.Errorf("log:\n%s\nwant one deferral, then a delivery", e.log)
	}
	if m := e.mailbox(t, "alice"); len(m) != 0 {
		t.Errorf("the sender got %d notifications, want none", len(m))
	}
}

func TestBounceForRefusedRecipient(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "gone@") {
			return smtptest.Refuse(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		}
		return nil
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.start(t)
	e.enqueue(t, "alice@example.org", msg, "gone@far.example", "bob@far.example")
	waitFor(t, "the bounce to reach alice", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	bounce := e.mailbox(t, "alice")[0]
	for _, want := range []string{"Return-Path: <>", "Final-Recipient: rfc822; gone@far.example", "Status: 5.1.1", "Action: failed", "Subject: hello"[:8]} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if strings.Contains(bounce, "bob@far.example") {
		t.Errorf("bounce mentions the delivered recipient:\n%s", bounce)
	}
	if m := srv.Messages(); len(m) != 1 || strings.Join(m[0].To, ",") != "bob@far.example" {
		t.Errorf("server got %+v, want one message for bob", m)
	}
}

func TestExpiryBouncesAndNullSenderIsNeverBounced(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.cfg.Lifetime = 500 * time.Millisecond
	e.start(t)
	e.enqueue(t, "alice@example.org", msg, "bob@far.example")
	// A bounce (null sender) that cannot be delivered is dropped.
	e.enqueue(t, "", msg, "nobody@example.org")
	waitFor(t, "the expiry bounce to reach alice", 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	bounce := e.mailbox(t, "alice")[0]
	for _, want := range []string{"Status: 4.4.7", "Action: failed", "greylisted", "message expired"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if e.log.count("status=dropped") != 1 || e.log.count("rcpt=nobody@example.org status=bounced") != 1 {
		t.Errorf("log:\n%s\nwant the bounce to <> dropped", e.log)
	}
}

func TestAliasExpansionDeliversLocalTargetOnce(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls <= 2 {
			return smtptest.Refuse(450, smtp.EnhancedCode{4, 2, 1}, "busy")
		}
		return nil
	}})
	e := newEnv(t, "team@example.org: alice@example.org, carol+lists@example.org, bob@far.example\n", "far.example "+srv.Addr)
	e.start(t)
	e.enqueue(t, "x@far.example", msg, "team@example.org")
	srv.Wait(t, 1, 5*time.Second)
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	if m := e.mailbox(t, "alice"); len(m) != 1 {
		t.Errorf("alice got %d copies, want 1 (retries of the remote target must not repeat her delivery)", len(m))
	}
	if m := e.mailbox(t, "carol"); len(m) != 1 || !strings.Contains(m[0], "Delivered-To: carol@example.org") {
		t.Errorf("carol got %q, want one copy", m)
	}
	m := srv.Messages()[0]
	if m.To[0] != "bob@far.example" {
		t.Errorf("remote target got %v", m.To)
	}
	if e.log.count("event=expand rcpt=team@example.org targets=3") != 1 {
		t.Errorf("log:\n%s", e.log)
	}
}

func TestUnknownUserAndAliasLoopBounce(t *testing.T) {
	e := newEnv(t, "a@example.org: b@example.org\nb@example.org: a@example.org\n")
	e.start(t)
	e.enqueue(t, "alice@example.org", msg, "nobody@example.org", "a@example.org", "carol@example.org")
	waitFor(t, "the bounce", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	bounce := e.mailbox(t, "alice")[0]
	for _, want := range []string{"rfc822; nobody@example.org", "Status: 5.1.1", "rfc822; a@example.org", "Status: 5.4.6"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if len(e.mailbox(t, "carol")) != 1 {
		t.Error("carol did not get the message")
	}
}

func TestNotifySuccessAndNever(t *testing.T) {
	e := newEnv(t, "")
	e.start(t)
	e.enqueue(t, "alice@example.org", msg, "carol@example.org NOTIFY=SUCCESS", "nobody@example.org NOTIFY=NEVER")
	waitFor(t, "the success report", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	report := e.mailbox(t, "alice")[0]
	if !strings.Contains(report, "Action: delivered") || strings.Contains(report, "nobody@") {
		t.Errorf("report:\n%s\nwant carol delivered and nothing about nobody (NOTIFY=NEVER)", report)
	}
}

func TestDelayWarningOnce(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	}})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.cfg.DelayWarning = 200 * time.Millisecond
	e.cfg.RetryMax = 100 * time.Millisecond
	e.start(t)
	entry := e.enqueue(t, "alice@example.org", msg, "bob@far.example", "dave@far.example NOTIFY=FAILURE")
	waitFor(t, "the delay warning", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	waitFor(t, "two more attempts", 5*time.Second, func() bool { return e.log.count("status=deferred") >= 8 })
	if n := len(e.mailbox(t, "alice")); n != 1 {
		t.Errorf("alice got %d delay warnings, want 1", n)
	}
	warning := e.mailbox(t, "alice")[0]
	if !strings.Contains(warning, "Action: delayed") || !strings.Contains(warning, "bob@far.example") || strings.Contains(warning, "dave@") {
		t.Errorf("warning:\n%s\nwant bob delayed, dave (NOTIFY=FAILURE) left out", warning)
	}
	got, err := e.spool.Load(entry.ID)
	if err != nil || !got.DelayNotified {
		t.Errorf("envelope after the warning: %+v, %v; want DelayNotified", got, err)
	}
}

func TestHeldEntryIsLeftAlone(t *testing.T) {
	e := newEnv(t, "")
	held := e.enqueue(t, "x@far.example", msg, "alice@example.org")
	held.Hold = true
	if err := e.spool.Update(held); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.enqueue(t, "x@far.example", msg, "carol@example.org")
	waitFor(t, "carol's message", 5*time.Second, func() bool { return len(e.mailbox(t, "carol")) == 1 })
	if len(e.mailbox(t, "alice")) != 0 {
		t.Fatal("a held entry was delivered")
	}
	held.Hold = false
	if err := e.spool.Update(held); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the released message", 5*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
}

// A queue longer than the active limit (MaxActivePerSlot × Concurrency),
// behind more held entries than the limit: the scans, which read envelopes
// only until the limit is reached, must still reach every entry.
func TestQueueLongerThanActiveLimit(t *testing.T) {
	e := newEnv(t, "")
	e.cfg.Concurrency = 1
	held := 2 * MaxActivePerSlot
	for range held {
		entry := e.enqueue(t, "x@far.example", msg, "carol@example.org")
		entry.Hold = true
		if err := e.spool.Update(entry); err != nil {
			t.Fatal(err)
		}
	}
	n := 3*MaxActivePerSlot + 5
	for range n {
		e.enqueue(t, "x@far.example", msg, "alice@example.org")
	}
	e.start(t)
	waitFor(t, fmt.Sprintf("%d messages for alice", n), 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == n })
	waitFor(t, "only the held entries left", 5*time.Second, func() bool {
		ids, err := e.spool.IDs()
		return err == nil && len(ids) == held
	})
	if got := len(e.mailbox(t, "carol")); got != 0 {
		t.Errorf("carol got %d messages from held entries", got)
	}
}

func TestSecondRunnerRefused(t *testing.T) {
	e := newEnv(t, "")
	e.start(t)
	waitFor(t, "the first runner's lock", 5*time.Second, func() bool {
		l, err := e.spool.LockRunner()
		if err == nil {
			l.Unlock()
		}
		return err != nil
	})
	err := New(e.cfg, e.spool).Run(context.Background())
	if !errors.Is(err, spool.ErrRunnerActive) {
		t.Errorf("second Run = %v, want ErrRunnerActive", err)
	}
}

// TestSlowDestinationDoesNotBlockOthers fills a destination that never
// answers with more entries than the concurrency allows; mail for another
// destination must still go out while they hang.
func TestSlowDestinationDoesNotBlockOthers(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				<-release
				c.Close()
			}()
		}
	}()
	defer func() {
		close(release)
		hang.Close()
		conns.Wait()
	}()
	fast := smtptest.Start(t, smtptest.Options{})
	e := newEnv(t, "", "slow.example "+hang.Addr().String(), "fast.example "+fast.Addr)
	e.cfg.Concurrency, e.cfg.PerDestination = 2, 1
	e.cfg.Remote.Timeouts.Command = time.Minute
	e.start(t)
	for range 5 {
		e.enqueue(t, "alice@example.org", msg, "x@slow.example")
	}
	e.enqueue(t, "alice@example.org", msg, "y@fast.example")
	fast.Wait(t, 1, 5*time.Second)
}

func TestBackoff(t *testing.T) {
	r := New(Config{RetryMin: time.Minute, RetryMax: 10 * time.Minute, Lifetime: time.Hour}, nil)
	now := time.Now()
	for _, tt := range []struct {
		attempts int
		want     time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {4, 8 * time.Minute}, {5, 10 * time.Minute}, {50, 10 * time.Minute}} {
		a := &attempt{r: r, env: &spool.Envelope{Arrival: now, Recipients: []spool.Recipient{{Attempts: tt.attempts}}}}
		got := a.nextAttempt(now).Sub(now)
		if lo, hi := tt.want*9/10, tt.want*11/10; got < lo || got > hi {
			t.Errorf("after %d attempts: next in %v, want %v ±10%%", tt.attempts, got, tt.want)
		}
	}
	// Never after the end of the lifetime: the last try is at expiry.
	a := &attempt{r: r, env: &spool.Envelope{Arrival: now.Add(-59 * time.Minute), Recipients: []spool.Recipient{{Attempts: 9}}}}
	if got := a.nextAttempt(now); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("next attempt near expiry = %v, want the expiry %v", got, now.Add(time.Minute))
	}
	// After it (a bounce that could not be enqueued), the backoff goes on:
	// never due at once.
	a = &attempt{r: r, env: &spool.Envelope{Arrival: now.Add(-2 * time.Hour), Recipients: []spool.Recipient{{Attempts: 2}}}}
	if got, want := a.nextAttempt(now).Sub(now), 2*time.Minute; got < want*9/10 || got > want*11/10 {
		t.Errorf("next attempt after expiry in %v, want %v ±10%%", got, want)
	}
}

func TestDeliveredRecipientIsNeverTriedAgain(t *testing.T) {
	e := newEnv(t, "")
	env := &spool.Envelope{From: "x@far.example", Recipients: []spool.Recipient{
		{Address: "alice@example.org", State: spool.Delivered, Attempts: 1},
		{Address: "carol@example.org"},
	}}
	if _, err := e.spool.Enqueue(env, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	waitFor(t, "the entry to be removed", 5*time.Second, e.empty)
	if n := len(e.mailbox(t, "alice")); n != 0 {
		t.Errorf("alice, recorded as delivered, got %d copies", n)
	}
	if n := len(e.mailbox(t, "carol")); n != 1 {
		t.Errorf("carol got %d copies, want 1", n)
	}
}
