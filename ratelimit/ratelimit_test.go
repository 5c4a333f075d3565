package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
)

// childEnv makes the test binary a worker of TestTwoProcesses: it takes
// events from the limiter its variables describe and prints how many were
// allowed.
const childEnv = "RATELIMIT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	n, _ := strconv.Atoi(os.Getenv("RATELIMIT_TEST_EVENTS"))
	limit, _ := strconv.Atoi(os.Getenv("RATELIMIT_TEST_LIMIT"))
	l := &Limiter{Dir: os.Getenv(childEnv), Limit: limit, Window: time.Hour}
	// Start together: the parent removes the file when both are ready.
	gate := os.Getenv("RATELIMIT_TEST_GATE")
	os.WriteFile(gate+"."+strconv.Itoa(os.Getpid()), nil, 0o600)
	for {
		if _, err := os.Stat(gate); errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	allowed := 0
	for i := 0; i < n; i++ {
		d, err := l.Take("client")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if d.Allowed {
			allowed++
		}
	}
	fmt.Println(allowed)
	return 0
}

// clock is a settable time for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_800_000_000, 0)} }
func newLimiter(t *testing.T, limit int, window time.Duration, c *clock) *Limiter {
	return &Limiter{Dir: filepath.Join(t.TempDir(), "rl"), Limit: limit, Window: window, Now: c.now}
}

func take(t *testing.T, l *Limiter, key string) Decision {
	t.Helper()
	d, err := l.Take(key)
	if err != nil {
		t.Fatalf("Take(%q): %v", key, err)
	}
	return d
}

func TestBurstThenSteadyRate(t *testing.T) {
	c := newClock()
	l := newLimiter(t, 3, time.Minute, c)
	for i := 1; i <= 3; i++ {
		if d := take(t, l, "192.0.2.1"); !d.Allowed {
			t.Fatalf("event %d of a burst of 3: refused", i)
		}
	}
	d := take(t, l, "192.0.2.1")
	if d.Allowed || d.RetryAfter != 20*time.Second {
		t.Fatalf("4th event = %+v, want refused, retry after 20s", d)
	}
	// Another key has its own count.
	if d := take(t, l, "192.0.2.2"); !d.Allowed {
		t.Fatalf("other key refused")
	}
	// A refused event is not counted: 20s later exactly one more fits.
	c.advance(20 * time.Second)
	if d := take(t, l, "192.0.2.1"); !d.Allowed {
		t.Fatalf("after 20s: refused")
	}
	if d := take(t, l, "192.0.2.1"); d.Allowed {
		t.Fatalf("second event after 20s allowed")
	}
	// A quiet minute gives the whole burst back.
	c.advance(time.Minute)
	for i := 1; i <= 3; i++ {
		if d := take(t, l, "192.0.2.1"); !d.Allowed {
			t.Fatalf("after a quiet minute, event %d refused", i)
		}
	}
}

func TestPeekCountsNothing(t *testing.T) {
	c := newClock()
	l := newLimiter(t, 1, time.Hour, c)
	for i := 0; i < 3; i++ {
		if d, err := l.Peek("alice@example.org"); err != nil || !d.Allowed {
			t.Fatalf("Peek #%d = %+v, %v; want allowed", i, d, err)
		}
	}
	take(t, l, "alice@example.org")
	d, err := l.Peek("alice@example.org")
	if err != nil || d.Allowed || d.RetryAfter != time.Hour {
		t.Fatalf("Peek after the one event = %+v, %v; want refused for an hour", d, err)
	}
}

func TestOffTouchesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rl")
	l := &Limiter{Dir: dir, Limit: 0, Window: time.Minute}
	for i := 0; i < 5; i++ {
		if d, err := l.Take("x"); err != nil || !d.Allowed {
			t.Fatalf("Take with limit 0 = %+v, %v", d, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("limit 0 made %s (%v)", dir, err)
	}
}

// Two processes (this test binary, run again) share one directory: the
// total allowed is exactly the limit.
func TestTwoProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rl")
	gate := filepath.Join(t.TempDir(), "gate")
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, "RATELIMIT_TEST_EVENTS=40",
			"RATELIMIT_TEST_LIMIT=50", "RATELIMIT_TEST_GATE="+gate)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ready, _ := filepath.Glob(gate + ".*")
		if len(ready) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workers did not start")
		}
		time.Sleep(time.Millisecond)
	}
	os.Remove(gate)
	total := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, outs[i])
		}
		n, err := strconv.Atoi(strings.TrimSpace(outs[i].String()))
		if err != nil {
			t.Fatalf("worker %d printed %q", i, outs[i])
		}
		total += n
	}
	if total != 50 {
		t.Errorf("two processes taking 40 events each under a limit of 50: %d allowed, want 50", total)
	}
}

// Goroutines of one process share it the same way (each Take locks).
func TestConcurrentTakes(t *testing.T) {
	l := &Limiter{Dir: filepath.Join(t.TempDir(), "rl"), Limit: 30, Window: time.Hour}
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				d, err := l.Take("k")
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 30 {
		t.Errorf("80 concurrent events under a limit of 30: %d allowed", allowed)
	}
}

func entryNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// Expired entries are removed by the next sweep; the table never holds
// more than MaxEntries, and a new key beyond that is allowed uncounted.
func TestSweepAndBound(t *testing.T) {
	c := newClock()
	l := newLimiter(t, 1, time.Minute, c)
	l.MaxEntries = 3
	for _, k := range []string{"a", "b", "c"} {
		take(t, l, k)
	}
	d, err := l.Take("d")
	if !errors.Is(err, ErrFull) || !d.Allowed {
		t.Fatalf("Take(new key, table full) = %+v, %v; want allowed with ErrFull", d, err)
	}
	if names := entryNames(t, l.Dir); len(names) != 3 {
		t.Fatalf("entries %q, want 3", names)
	}
	// Known keys are still counted while the table is full.
	if d := take(t, l, "a"); d.Allowed {
		t.Errorf("a second event of a within the minute was allowed")
	}
	// A minute on, a, b and c have expired: the sweep removes them and
	// the new key gets its entry.
	c.advance(time.Minute)
	take(t, l, "d")
	if names := entryNames(t, l.Dir); len(names) != 1 || names[0] != "d" {
		t.Fatalf("entries after the sweep %q, want [d]", names)
	}
	// Garbage and directories in the table go at the next sweep too.
	os.WriteFile(filepath.Join(l.Dir, "junk"), []byte("not a time\n"), 0o600)
	os.Mkdir(filepath.Join(l.Dir, "subdir"), 0o700)
	c.advance(time.Minute + time.Second)
	take(t, l, "e")
	if names := entryNames(t, l.Dir); len(names) != 1 || names[0] != "e" {
		t.Fatalf("entries after the second sweep %q, want [e]", names)
	}
}

// A garbled entry (a crash while writing it) reads as a quiet key.
func TestGarbledEntry(t *testing.T) {
	c := newClock()
	l := newLimiter(t, 1, time.Hour, c)
	take(t, l, "k")
	if err := os.WriteFile(filepath.Join(l.Dir, "k"), []byte("12x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := take(t, l, "k"); !d.Allowed {
		t.Errorf("garbled entry: refused")
	}
}

// Failures allow the event and say why.
func TestFailuresAllow(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	l := &Limiter{Dir: filepath.Join(file, "rl"), Limit: 1, Window: time.Minute}
	for i := 0; i < 2; i++ {
		if d, err := l.Take("k"); err == nil || !d.Allowed {
			t.Fatalf("Take under a file = %+v, %v; want allowed and an error", d, err)
		}
	}
}

func TestEntryName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2::", "2001:db8:1:2::"},
		{"alice@example.org", "alice@example.org"},
		{"alice+x@example.org", "alice+x@example.org"},
		{"../etc/passwd", "=" + "hash"},
		{".hidden", "=" + "hash"},
		{"a/b", "=" + "hash"},
		{"Ünïcode@example.org", "=" + "hash"},
		{strings.Repeat("a", 201), "=" + "hash"},
	}
	for _, tt := range tests {
		got := EntryName(tt.key)
		if tt.want == "=hash" {
			if len(got) != 41 || got[0] != '=' {
				t.Errorf("EntryName(%q) = %q, want = and 40 hex digits", tt.key, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("EntryName(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if EntryName("a/b") == EntryName("a/c") {
		t.Errorf("two keys share a hashed name")
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2::99", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
	}
	for _, tt := range tests {
		if got := ClientKey(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("ClientKey(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1800000000000000000\n", 1800000000000000000, true},
		{"0\n", 0, true},
		{"1800000000000000000", 0, false},
		{"\n", 0, false},
		{"-5\n", 0, false},
		{"+5\n", 0, false},
		{"99999999999999999999\n", 0, false},
		{"12 \n", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseEntry([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseEntry(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseSwept(t *testing.T) {
	tests := []struct {
		in    string
		swept int64
		count int
		ok    bool
	}{
		{"1800000000000000000 42\n", 1800000000000000000, 42, true},
		{"5 0\n", 5, 0, true},
		{"5\n", 0, 0, false},
		{"5 x\n", 0, 0, false},
		{"5 3", 0, 0, false},
		{"5  3\n", 0, 0, false},
	}
	for _, tt := range tests {
		swept, count, ok := ParseSwept([]byte(tt.in))
		if swept != tt.swept || count != tt.count || ok != tt.ok {
			t.Errorf("ParseSwept(%q) = %d, %d, %v; want %d, %d, %v", tt.in, swept, count, ok, tt.swept, tt.count, tt.ok)
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{"1800000000000000000\n", "0\n", "", "x\n", "1 2\n", "-1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tat, ok := ParseEntry(data); ok {
			if again, ok := ParseEntry(FormatEntry(tat)); !ok || again != tat {
				t.Errorf("ParseEntry(%q) = %d, which reads back as %d, %v", data, tat, again, ok)
			}
			if tat < 0 {
				t.Errorf("ParseEntry(%q) = %d, negative", data, tat)
			}
		}
		if swept, count, ok := ParseSwept(data); ok && (swept < 0 || count < 0) {
			t.Errorf("ParseSwept(%q) = %d, %d", data, swept, count)
		}
	})
}

func FuzzEntryName(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "alice@example.org", "../x", ".", "", "a/b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name := EntryName(key)
		if err := control.SafeElement(name); err != nil || name == "." || name == ".." {
			t.Errorf("EntryName(%q) = %q, not a safe path element", key, name)
		}
		if name[0] == '.' {
			t.Errorf("EntryName(%q) = %q, a hidden name (the limiter's own files)", key, name)
		}
	})
}
