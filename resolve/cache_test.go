package resolve

import (
	"os"
	"testing"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/safefile"
)

func cacheKnows(t *testing.T, c *Cache, addr string) bool {
	t.Helper()
	r, err := c.Load()
	if err != nil {
		t.Fatalf("Cache.Load = %v", err)
	}
	a, err := address.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(a)
	return err == nil
}

func TestCacheLoadsAgainOnlyOnChange(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "users", "alice@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	c := &Cache{Root: root}
	if _, err := c.Load(); err != nil {
		t.Fatal(err)
	}
	if cacheKnows(t, c, "bob@example.org") {
		t.Fatal("bob is known before he is added")
	}

	// mkuser's way: a new file renamed over the old one.
	if err := safefile.WriteFile(root.Etc("users"), []byte("alice@example.org:{BLF-CRYPT}$2y$10$x::::::\nbob@example.org:{BLF-CRYPT}$2y$10$x::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !cacheKnows(t, c, "bob@example.org") {
		t.Error("a users file replaced by rename was not read again")
	}
	// An editor's way: the same file rewritten in place, another size.
	writeEtc(t, root, "users", "carol@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	if !cacheKnows(t, c, "carol@example.org") || cacheKnows(t, c, "bob@example.org") {
		t.Error("a users file rewritten in place was not read again")
	}
	// A file that did not exist appears.
	writeEtc(t, root, "aliases", "sales@example.org: carol@example.org\n")
	if !cacheKnows(t, c, "sales@example.org") {
		t.Error("a new aliases file was not read")
	}
	writeEtc(t, root, "domains", "lists.example\n")
	r, err := c.Load()
	if err != nil || !r.IsLocalDomain("lists.example") {
		t.Errorf("a new domains file was not read: %v", err)
	}
}

// TestCacheRacyRewrite rewrites a file in place to the same size right
// after a load: inode, size and (coarse) times may all stay the same, and
// the Cache must read it again anyway.
func TestCacheRacyRewrite(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "users", "alice@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	c := &Cache{Root: root}
	if !cacheKnows(t, c, "alice@example.org") {
		t.Fatal("alice unknown")
	}
	writeEtc(t, root, "users", "carol@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	if !cacheKnows(t, c, "carol@example.org") || cacheKnows(t, c, "alice@example.org") {
		t.Error("a same-size rewrite right after a load was not read again")
	}
}

// TestCacheTrustsSettledFiles: files last changed well before the load
// give the same Resolver back.
func TestCacheTrustsSettledFiles(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "users", "alice@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(root.Etc("users"), old, old); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Root: root}
	c.Load()
	// The change time is the chtimes call: now. Pretend the load was
	// later, as it will be in a long-running server.
	c.loadedAt = time.Now().Add(2 * control.RacyWindow)
	first := c.r
	if again, err := c.Load(); err != nil || again != first {
		t.Errorf("Cache.Load of settled files = %p, %v; want the same Resolver %p", again, err, first)
	}
	// With the times out of the picture, the stamp alone must notice a
	// file replaced by rename (a new inode).
	if err := safefile.WriteFile(root.Etc("users"), []byte("bob@example.org:{BLF-CRYPT}$2y$10$x::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !cacheKnows(t, c, "bob@example.org") {
		t.Error("a settled users file replaced by rename was not read again")
	}
}

func TestCacheReportsErrorsAndRecovers(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "users", "alice@example.org:{BLF-CRYPT}$2y$10$x::::::\n")
	writeEtc(t, root, "aliases", "not an alias line\n")
	c := &Cache{Root: root}
	if _, err := c.Load(); err == nil {
		t.Fatal("Cache.Load of a broken aliases file = nil error")
	}
	if _, err := c.Load(); err == nil {
		t.Error("second Cache.Load of the broken file = nil error: an error must not be cached as a Resolver")
	}
	writeEtc(t, root, "aliases", "sales@example.org: alice@example.org\n")
	if !cacheKnows(t, c, "sales@example.org") {
		t.Error("the repaired aliases file was not read")
	}
}
