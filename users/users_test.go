package users

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	bcryptCost = bcrypt.MinCost
	os.Exit(m.Run())
}

const sample = `# postkit users
alice@example.org:{BLF-CRYPT}$2y$05$fws3eYfvX7l6xVrHjFTAzeOKjdxOTZ92pYxIpl.PM5HXWzgSIFUIe::::::

Bob@Example.ORG:{SHA512-CRYPT}$6$x4MJ0Q//X4GVW7lN$Ls4aALxEC9KOsx18Va6XRcvdd..ojaiddQRmB5SViAoRJjgknHPpI4IxOJSD9i57dWZh.TsBY68ZHYniWRNXh.:1000:1000:Bob B:/home/bob:/bin/false:userdb_quota_rule=*:storage=1G
carol@example.net:{PLAIN}secret
  # indented comment
dave
`

func TestParseKeepsEverything(t *testing.T) {
	src := strings.Replace(sample, "dave\n", "", 1)
	db, err := Parse([]byte(src), "users")
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if got := string(db.Marshal()); got != src {
		t.Errorf("Marshal() =\n%s\nwant the input unchanged:\n%s", got, src)
	}
	bob, ok := db.Lookup("bob@example.org")
	want := Entry{
		Address: "Bob@Example.ORG",
		Hash:    "{SHA512-CRYPT}$6$x4MJ0Q//X4GVW7lN$Ls4aALxEC9KOsx18Va6XRcvdd..ojaiddQRmB5SViAoRJjgknHPpI4IxOJSD9i57dWZh.TsBY68ZHYniWRNXh.",
		UID:     "1000", GID: "1000", Gecos: "Bob B", Home: "/home/bob", Shell: "/bin/false",
		Extra: "userdb_quota_rule=*:storage=1G",
	}
	if !ok || bob != want {
		t.Errorf("Lookup(bob@example.org) = %+v, %v; want %+v", bob, ok, want)
	}
	if !db.Exists("ALICE@example.org") || db.Exists("alice@example.com") {
		t.Errorf("Exists is not case-insensitive on the address only")
	}
	if got, want := db.Domains(), []string{"example.net", "example.org"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}
	var addrs []string
	for _, e := range db.All() {
		addrs = append(addrs, e.Address)
	}
	if want := []string{"alice@example.org", "Bob@Example.ORG", "carol@example.net"}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("All() addresses = %q, want %q", addrs, want)
	}
}

func TestChangesKeepOtherLines(t *testing.T) {
	src := strings.Replace(sample, "dave\n", "", 1)
	db, err := Parse([]byte(src), "users")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetHash("BOB@example.org", "{BLF-CRYPT}new"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetHash("carol@example.net", "{BLF-CRYPT}c"); err != nil {
		t.Fatal(err)
	}
	if err := db.Remove("alice@EXAMPLE.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.Add(Entry{Address: "erin@example.com", Hash: "{BLF-CRYPT}e"}); err != nil {
		t.Fatal(err)
	}
	want := `# postkit users

Bob@Example.ORG:{BLF-CRYPT}new:1000:1000:Bob B:/home/bob:/bin/false:userdb_quota_rule=*:storage=1G
carol@example.net:{BLF-CRYPT}c
  # indented comment
erin@example.com:{BLF-CRYPT}e::::::
`
	if got := string(db.Marshal()); got != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}
	if db.Exists("alice@example.org") {
		t.Errorf("alice still exists after Remove")
	}
	if e, ok := db.Lookup("erin@example.com"); !ok || e.Hash != "{BLF-CRYPT}e" {
		t.Errorf("Lookup(erin) = %+v, %v after Add", e, ok)
	}
}

func TestMutationErrors(t *testing.T) {
	db, _ := Parse([]byte("alice@example.org:x\n"), "users")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"add duplicate in other case", db.Add(Entry{Address: "ALICE@example.org", Hash: "y"}), ErrExists},
		{"set hash of unknown", db.SetHash("bob@example.org", "y"), ErrNotFound},
		{"remove unknown", db.Remove("bob@example.org"), ErrNotFound},
		{"add with colon in hash", db.Add(Entry{Address: "b@example.org", Hash: "a:b"}), nil},
		{"add with newline in home", db.Add(Entry{Address: "b@example.org", Home: "/x\n"}), nil},
		{"add with empty address", db.Add(Entry{Hash: "x"}), nil},
		{"add with space in address", db.Add(Entry{Address: "a b@example.org"}), nil},
		{"set hash with colon", db.SetHash("alice@example.org", "a:b"), nil},
	} {
		if tc.err == nil || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
			t.Errorf("%s: error = %v, want an error wrapping %v", tc.name, tc.err, tc.want)
		}
	}
	if got := string(db.Marshal()); got != "alice@example.org:x\n" {
		t.Errorf("failed changes changed the file: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, where string
	}{
		{"no colon", "# c\nalice@example.org\n", "users:2:"},
		{"empty user", "alice@example.org:x\n:hash\n", "users:2:"},
		{"space in user", "bob smith@example.org:x\n", "users:1:"},
		{"duplicate", "a@example.org:x\n\nA@EXAMPLE.ORG:y\n", "users:3:"},
		{"control character", "a\x01@example.org:x\n", "users:1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "users")
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.where) {
				t.Errorf("Parse(%q) = %v, want ErrMalformed naming %s", tc.in, err, tc.where)
			}
		})
	}
}

func TestLoadMissingAndBad(t *testing.T) {
	dir := t.TempDir()
	db, err := Load(filepath.Join(dir, "users"))
	if err != nil || len(db.All()) != 0 {
		t.Fatalf("Load(missing) = %v, %v; want empty DB", db, err)
	}
	p := filepath.Join(dir, "bad")
	os.WriteFile(p, []byte("x@y:1\nnocolon\n"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Errorf("Load(bad) = %v, want an error naming %s:2", err, p)
	}
}

func TestUpdateConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "users")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				errs <- Update(p, func(db *DB) error {
					return db.Add(Entry{Address: fmt.Sprintf("u%d-%d@example.org", g, i), Hash: "h"})
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Update = %v", err)
		}
	}
	db, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.All()); n != 100 {
		t.Errorf("after 10x10 concurrent Adds the file has %d users, want 100", n)
	}
	info, err := os.Stat(p)
	if err != nil || info.Mode().Perm() != fileMode {
		t.Errorf("mode of users = %v, %v; want %v", info.Mode().Perm(), err, os.FileMode(fileMode))
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users")
	os.WriteFile(p, []byte("# keep\na@example.org:x\n"), 0o600)
	boom := errors.New("boom")
	err := Update(p, func(db *DB) error {
		db.Remove("a@example.org")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "# keep\na@example.org:x\n" {
		t.Errorf("file after failed Update = %q", got)
	}
	// A successful change keeps the admin's mode.
	if err := Update(p, func(db *DB) error { return db.Add(Entry{Address: "b@example.org", Hash: "y"}) }); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o600 {
		t.Errorf("mode after Update = %v, want the old 0600", info.Mode().Perm())
	}
	if got, _ := os.ReadFile(p); string(got) != "# keep\na@example.org:x\nb@example.org:y::::::\n" {
		t.Errorf("file after Update = %q", got)
	}
}

func TestUpdateMalformedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users")
	os.WriteFile(p, []byte("broken\n"), 0o600)
	called := false
	err := Update(p, func(db *DB) error { called = true; return nil })
	if !errors.Is(err, ErrMalformed) || called {
		t.Errorf("Update(malformed) = %v, fn called %v; want ErrMalformed and no call", err, called)
	}
}

func FuzzLoadUsers(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("a@b:c\r\nx@y:z:1:2:3:4:5:6:7:8\n"))
	f.Add([]byte("\n\n#\n"))
	f.Add([]byte("a:b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		again, err := Parse(db.Marshal(), "fuzz")
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v for input %q", err, data)
		}
		if !reflect.DeepEqual(db.All(), again.All()) {
			t.Fatalf("Parse(Marshal()).All() = %+v, want %+v", again.All(), db.All())
		}
		// A changed entry is rebuilt from its fields and must read back too.
		if all := db.All(); len(all) > 0 {
			if err := db.SetHash(all[0].Address, "{BLF-CRYPT}x"); err != nil {
				t.Fatal(err)
			}
			again, err := Parse(db.Marshal(), "fuzz")
			if err != nil {
				t.Fatalf("Parse(Marshal()) after SetHash = %v", err)
			}
			if !reflect.DeepEqual(db.All(), again.All()) {
				t.Fatalf("after SetHash Parse(Marshal()).All() = %+v, want %+v", again.All(), db.All())
			}
		}
	})
}
