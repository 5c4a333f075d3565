package control

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// errText makes errors comparable: Cache must give Root's errors, word for
// word.
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// replaceFile writes content to a new file and renames it over name, as
// mkuser and safefile do: the file gets a new inode.
func replaceFile(t *testing.T, r Root, name, content string) {
	t.Helper()
	tmp := r.Etc(name + ".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.Etc(name)); err != nil {
		t.Fatal(err)
	}
}

// checkSameAsRoot asks c and c.Root the same four questions about name.
func checkSameAsRoot(t *testing.T, c *Cache, name string) {
	t.Helper()
	r := c.Root
	wantLines, wantErr := r.Lines(name)
	if got, err := c.Lines(name); !slices.Equal(got, wantLines) || (got == nil) != (wantLines == nil) || errText(err) != errText(wantErr) {
		t.Errorf("Cache.Lines(%q) = %q, %v; Root.Lines = %q, %v", name, got, err, wantLines, wantErr)
	}
	wantS, wantErr := r.String(name, "def")
	if got, err := c.String(name, "def"); got != wantS || errText(err) != errText(wantErr) {
		t.Errorf("Cache.String(%q) = %q, %v; Root.String = %q, %v", name, got, err, wantS, wantErr)
	}
	wantN, wantErr := r.Int(name, 7)
	if got, err := c.Int(name, 7); got != wantN || errText(err) != errText(wantErr) {
		t.Errorf("Cache.Int(%q) = %d, %v; Root.Int = %d, %v", name, got, err, wantN, wantErr)
	}
	wantN, wantErr = r.Size(name, 7)
	if got, err := c.Size(name, 7); got != wantN || errText(err) != errText(wantErr) {
		t.Errorf("Cache.Size(%q) = %d, %v; Root.Size = %d, %v", name, got, err, wantN, wantErr)
	}
}

func TestCacheAnswersAsRoot(t *testing.T) {
	r := Root(t.TempDir())
	files := map[string]string{
		"present":       "mx.example.org\n",
		"commented":     "# the limit\n\n   10M  \nignored\n",
		"empty":         "",
		"only-comments": "# nothing\n\n\t\n",
		"number":        "42\n",
		"bad-number":    "4x\n",
		"bad-size":      "10T\n",
		"crlf":          "1K\r\n::1\r\n",
		"too-long":      strings.Repeat("x", 2<<20) + "\n",
		"tls/cert.pem":  "-----BEGIN CERTIFICATE-----\n",
	}
	for name, content := range files {
		writeEtc(t, r, name, content)
	}
	// A directory where a file should be: reading it fails.
	if err := os.Mkdir(r.Etc("a-directory"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Root: r}
	names := []string{"missing", "a-directory", "tls/missing"}
	for name := range files {
		names = append(names, name)
	}
	// Twice: the first read, then the answers from the cache.
	for range 2 {
		for _, name := range names {
			checkSameAsRoot(t, c, name)
		}
	}
}

// TestCacheReadsReplacedFile: a file replaced by rename has a new inode,
// and a settled entry must not hide it.
func TestCacheReadsReplacedFile(t *testing.T) {
	r := Root(t.TempDir())
	writeEtc(t, r, "relay-clients", "127.0.0.1\n")
	c := &Cache{Root: r}
	if got, _ := c.Lines("relay-clients"); !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("Lines(relay-clients) = %q, want [127.0.0.1]", got)
	}
	settle(t, c, "relay-clients")
	replaceFile(t, r, "relay-clients", "192.0.2.1\n") // same size
	if got, _ := c.Lines("relay-clients"); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("Lines(relay-clients) after a rename = %q, want [192.0.2.1]", got)
	}
	// A file that appears, and one that goes away.
	if n, _ := c.Int("rate", 5); n != 5 {
		t.Fatalf("Int(missing rate) = %d, want 5", n)
	}
	settle(t, c, "rate")
	replaceFile(t, r, "rate", "9\n")
	if n, err := c.Int("rate", 5); err != nil || n != 9 {
		t.Errorf("Int(rate) after it appeared = %d, %v; want 9", n, err)
	}
	settle(t, c, "rate")
	if err := os.Remove(r.Etc("rate")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Int("rate", 5); err != nil || n != 5 {
		t.Errorf("Int(rate) after it was removed = %d, %v; want the default 5", n, err)
	}
}

// TestCacheRacyRewrite rewrites a file in place, to the same size, right
// after a read: inode, size and (coarse) times may all stay the same, and
// the Cache must read it again anyway.
func TestCacheRacyRewrite(t *testing.T) {
	r := Root(t.TempDir())
	writeEtc(t, r, "dnsbl-zones", "one.example\n")
	c := &Cache{Root: r}
	if got, _ := c.String("dnsbl-zones", ""); got != "one.example" {
		t.Fatalf("String(dnsbl-zones) = %q, want one.example", got)
	}
	before := StampOf(r.Etc("dnsbl-zones"))
	writeEtc(t, r, "dnsbl-zones", "two.example\n")
	if after := StampOf(r.Etc("dnsbl-zones")); after.ino != before.ino || after.size != before.size {
		t.Fatalf("the rewrite changed inode or size (%+v, %+v): it must be in place", before, after)
	}
	if got, _ := c.String("dnsbl-zones", ""); got != "two.example" {
		t.Errorf("String(dnsbl-zones) after a same-size rewrite in place = %q, want two.example", got)
	}
}

// settle pretends that the last read of name was long after the file's
// last change, as it will be in a long-running server.
func settle(t *testing.T, c *Cache, name string) {
	t.Helper()
	setLoadedAt(t, c, name, func(Stamp) time.Time { return time.Now().Add(2 * RacyWindow) })
}

// setLoadedAt sets the time of the last read of name to what at makes of
// the stamp taken before that read.
func setLoadedAt(t *testing.T, c *Cache, name string, at func(Stamp) time.Time) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.files[name]
	if f == nil {
		t.Fatalf("no cache entry for %s", name)
	}
	changed := *f
	changed.loadedAt = at(f.stamp)
	c.files[name] = &changed
}

// TestCacheTrustsSettledFile: an unchanged file, settled, is not read
// again; the proof is that Lines hands out the very slice of the last
// read, where every read makes a new one.
func TestCacheTrustsSettledFile(t *testing.T) {
	r := Root(t.TempDir())
	writeEtc(t, r, "milters", "unix:/run/a.sock\ninet:127.0.0.1:8891\n")
	c := &Cache{Root: r}
	first, err := c.Lines("milters")
	if err != nil || len(first) != 2 {
		t.Fatalf("Lines(milters) = %q, %v", first, err)
	}
	// Read in the tick of the file's last change (which a slow machine
	// could otherwise turn into a read more than RacyWindow later): not
	// settled, so read again, into a new slice.
	setLoadedAt(t, c, "milters", func(s Stamp) time.Time { return time.Unix(s.ctime.Unix()) })
	second, _ := c.Lines("milters")
	if &second[0] == &first[0] {
		t.Fatal("Lines(milters) right after the file was written gave the cached slice: the racy rule was not applied")
	}
	settle(t, c, "milters")
	third, _ := c.Lines("milters")
	fourth, _ := c.Lines("milters")
	if &third[0] != &second[0] || &fourth[0] != &second[0] {
		t.Error("Lines(milters) of a settled, unchanged file read it again")
	}
	// A settled file rewritten in place to another size is read again.
	writeEtc(t, r, "milters", "unix:/run/b.sock\n")
	if got, _ := c.Lines("milters"); !slices.Equal(got, []string{"unix:/run/b.sock"}) {
		t.Errorf("Lines(milters) after a rewrite = %q, want [unix:/run/b.sock]", got)
	}
}

// TestCacheDoesNotKeepErrors: a read that fails is reported again, and a
// repaired file is read.
func TestCacheDoesNotKeepErrors(t *testing.T) {
	r := Root(t.TempDir())
	if err := os.MkdirAll(r.Etc("size-limit"), 0o700); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Root: r}
	for i := range 2 {
		if n, err := c.Size("size-limit", 1); err == nil || n != 1 {
			t.Fatalf("Size(a directory), call %d = %d, %v; want the default and an error", i+1, n, err)
		}
	}
	if err := os.Remove(r.Etc("size-limit")); err != nil {
		t.Fatal(err)
	}
	writeEtc(t, r, "size-limit", "2K\n")
	if n, err := c.Size("size-limit", 1); err != nil || n != 2048 {
		t.Errorf("Size(repaired size-limit) = %d, %v; want 2048", n, err)
	}
}

func TestStampSettled(t *testing.T) {
	loaded := time.Unix(1_000_000, 0)
	at := func(d time.Duration) syscall.Timespec { return syscall.NsecToTimespec(loaded.Add(d).UnixNano()) }
	for _, tc := range []struct {
		name  string
		stamp Stamp
		want  bool
	}{
		{"missing file", Stamp{}, true},
		{"unknown", Stamp{unknown: true}, false},
		{"old times", Stamp{ino: 1, mtime: at(-time.Hour), ctime: at(-time.Hour)}, true},
		{"just older than the window", Stamp{ino: 1, mtime: at(-RacyWindow - time.Nanosecond), ctime: at(-RacyWindow - time.Nanosecond)}, true},
		{"mtime at the window's edge", Stamp{ino: 1, mtime: at(-RacyWindow), ctime: at(-time.Hour)}, false},
		{"recent ctime", Stamp{ino: 1, mtime: at(-time.Hour), ctime: at(-time.Millisecond)}, false},
		{"recent mtime", Stamp{ino: 1, mtime: at(-time.Millisecond), ctime: at(-time.Hour)}, false},
		{"changed after the load", Stamp{ino: 1, mtime: at(time.Second), ctime: at(time.Second)}, false},
	} {
		if got := tc.stamp.Settled(loaded); got != tc.want {
			t.Errorf("%s: Settled(%v) = %v, want %v", tc.name, loaded, got, tc.want)
		}
	}
}

func TestStampOf(t *testing.T) {
	r := Root(t.TempDir())
	if s := StampOf(r.Etc("missing")); s != (Stamp{}) {
		t.Errorf("StampOf(missing) = %+v, want the zero Stamp", s)
	}
	writeEtc(t, r, "f", "abc\n")
	s := StampOf(r.Etc("f"))
	if s.unknown || s.ino == 0 || s.size != 4 {
		t.Errorf("StampOf(f) = %+v, want a known stamp of 4 bytes", s)
	}
	replaceFile(t, r, "f", "abc\n")
	if again := StampOf(r.Etc("f")); again == s {
		t.Errorf("StampOf(f) after a rename = %+v, the same as before", again)
	}
	// A path through a file: stat fails with ENOTDIR, not ENOENT.
	if s := StampOf(filepath.Join(r.Etc("f"), "x")); !s.unknown {
		t.Errorf("StampOf(f/x) = %+v, want unknown", s)
	}
}

// TestCacheConcurrent reads a file from many goroutines while it is
// replaced again and again; run it with -race. Every answer must be one
// of the versions written, and the last version must be seen at the end.
func TestCacheConcurrent(t *testing.T) {
	r := Root(t.TempDir())
	writeEtc(t, r, "rate", "0\n")
	writeEtc(t, r, "other", "x\n")
	c := &Cache{Root: r}
	const versions = 50
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				n, err := c.Int("rate", -1)
				if err != nil || n < 0 || n > versions {
					errs <- fmt.Errorf("goroutine %d: Int(rate) = %d, %v", g, n, err)
					return
				}
				if s, err := c.String("other", ""); err != nil || s != "x" {
					errs <- fmt.Errorf("goroutine %d: String(other) = %q, %v", g, s, err)
					return
				}
			}
		}()
	}
	for v := 1; v <= versions; v++ {
		tmp := r.Etc("rate.tmp")
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(v)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, r.Etc("rate")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := c.Int("rate", -1); err != nil || n != versions {
		t.Errorf("Int(rate) after the last replacement = %d, %v; want %d", n, err, versions)
	}
}
