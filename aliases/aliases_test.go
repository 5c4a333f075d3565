package aliases

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const sample = `# aliases for example.org
sales@example.org: alice@example.org, Bob@Example.org

  Postmaster@Example.ORG :alice@example.org,
@example.org: alice@example.org
# forwarders
fwd@example.net: someone@elsewhere.example,other@remote.example
`

func TestParseKeepsEverything(t *testing.T) {
	tab, err := Parse([]byte(sample), "aliases")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tab.Marshal()); got != sample {
		t.Errorf("Marshal() =\n%s\nwant the input unchanged:\n%s", got, sample)
	}
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{"SALES@example.org", []string{"alice@example.org", "Bob@Example.org"}},
		{"postmaster@example.org", []string{"alice@example.org"}},
		{"@EXAMPLE.org", []string{"alice@example.org"}},
		{"fwd@example.net", []string{"someone@elsewhere.example", "other@remote.example"}},
		{"nobody@example.org", nil},
	} {
		got, ok := tab.Lookup(tc.key)
		if !reflect.DeepEqual(got, tc.want) || ok != (tc.want != nil) {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tc.key, got, ok, tc.want)
		}
	}
	if got, want := tab.Domains(), []string{"example.net", "example.org"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Domains() = %q, want %q", got, want)
	}
	var keys []string
	for _, a := range tab.All() {
		keys = append(keys, a.Key)
	}
	if want := []string{"@example.org", "fwd@example.net", "Postmaster@Example.ORG", "sales@example.org"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("All() keys = %q, want %q", keys, want)
	}
}

func TestChanges(t *testing.T) {
	tab, err := Parse([]byte(sample), "aliases")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		err  error
		want error // nil: must succeed; else errors.Is
	}{
		{"add to existing, one already there", tab.Add("sales@EXAMPLE.org", "carol@example.org", "bob@example.org"), nil},
		{"add new", tab.Add("info@example.com", "alice@example.org"), nil},
		{"remove one target", tab.Remove("fwd@example.net", "OTHER@remote.example"), nil},
		{"remove whole alias", tab.Remove("postmaster@example.org"), nil},
		{"remove last target removes alias", tab.Remove("@example.org", "alice@example.org"), nil},
		{"remove unknown alias", tab.Remove("nope@example.org"), ErrNotFound},
		{"remove unknown target", tab.Remove("sales@example.org", "alice@example.org", "zed@example.org"), ErrNotFound},
	}
	for _, s := range steps {
		if s.want == nil && s.err != nil || s.want != nil && !errors.Is(s.err, s.want) {
			t.Errorf("%s: error = %v, want %v", s.name, s.err, s.want)
		}
	}
	want := `# aliases for example.org
sales@example.org: alice@example.org, Bob@Example.org, carol@example.org

# forwarders
fwd@example.net: someone@elsewhere.example
info@example.com: alice@example.org
`
	if got := string(tab.Marshal()); got != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}
}

func TestInvalidAdds(t *testing.T) {
	tab, _ := Parse(nil, "aliases")
	for _, tc := range []struct {
		key     string
		targets []string
	}{
		{"sales", []string{"a@example.org"}},
		{"sales@", []string{"a@example.org"}},
		{"sales@example.org", nil},
		{"sales@example.org", []string{"alice"}},
		{"sales@example.org", []string{"@example.org"}},
		{"sales@example.org", []string{"a@example.org, b@example.org"}},
		{"sa les@example.org", []string{"a@example.org"}},
		{"#sales@example.org", []string{"a@example.org"}},
		{"sales@example.org", []string{"a@exa\nmple.org"}},
	} {
		if err := tab.Add(tc.key, tc.targets...); err == nil {
			t.Errorf("Add(%q, %q) succeeded, want an error", tc.key, tc.targets)
		}
	}
	if got := tab.Marshal(); len(got) != 0 {
		t.Errorf("failed Adds changed the table: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, where string
	}{
		{"no colon", "# x\nsales@example.org alice@example.org\n", "aliases:2:"},
		{"bare local key", "postmaster: alice@example.org\n", "aliases:1:"},
		{"no targets", "sales@example.org:\n", "aliases:1:"},
		{"bad target", "sales@example.org: alice\n", "aliases:1:"},
		{"space in target", "sales@example.org: alice smith@example.org\n", "aliases:1:"},
		{"duplicate", "a@example.org: b@example.org\nA@example.ORG: c@example.org\n", "aliases:2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "aliases")
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.where) {
				t.Errorf("Parse(%q) = %v, want ErrMalformed naming %s", tc.in, err, tc.where)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	tab, err := Load(filepath.Join(t.TempDir(), "aliases"))
	if err != nil || len(tab.All()) != 0 {
		t.Errorf("Load(missing) = %v, %v; want an empty table", tab, err)
	}
}

func TestUpdateConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "aliases")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				errs <- Update(p, func(tab *Table) error {
					return tab.Add("list@example.org", fmt.Sprintf("u%d-%d@example.org", g, i))
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
	tab, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if targets, _ := tab.Lookup("list@example.org"); len(targets) != 100 {
		t.Errorf("after 10x10 concurrent Adds the alias has %d targets, want 100", len(targets))
	}
	if info, err := os.Stat(p); err != nil || info.Mode().Perm() != fileMode {
		t.Errorf("mode = %v, %v; want %v", info.Mode().Perm(), err, os.FileMode(fileMode))
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "aliases")
	os.WriteFile(p, []byte(sample), 0o600)
	err := Update(p, func(tab *Table) error {
		tab.Remove("sales@example.org")
		return tab.Remove("nope@example.org")
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update = %v, want ErrNotFound from fn", err)
	}
	if got, _ := os.ReadFile(p); string(got) != sample {
		t.Errorf("file after failed Update = %q", got)
	}
	os.WriteFile(p, []byte("broken\n"), 0o600)
	if err := Update(p, func(*Table) error { return nil }); !errors.Is(err, ErrMalformed) {
		t.Errorf("Update(malformed file) = %v, want ErrMalformed", err)
	}
}

func FuzzLoadAliases(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("a@b: c@d,,e@f,\r\n@x: y@z"))
	f.Add([]byte("\n#\n \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		again, err := Parse(tab.Marshal(), "fuzz")
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v for %q", err, data)
		}
		if !reflect.DeepEqual(tab.All(), again.All()) {
			t.Fatalf("Parse(Marshal()).All() = %q, want %q", again.All(), tab.All())
		}
		// Changed aliases are rebuilt from their parts and must read back too.
		if all := tab.All(); len(all) > 0 {
			if err := tab.Add(all[0].Key, "new@example.org"); err != nil {
				t.Fatal(err)
			}
			again, err := Parse(tab.Marshal(), "fuzz")
			if err != nil {
				t.Fatalf("Parse(Marshal()) after Add = %v", err)
			}
			if !reflect.DeepEqual(tab.All(), again.All()) {
				t.Fatalf("after Add Parse(Marshal()).All() = %q, want %q", again.All(), tab.All())
			}
		}
	})
}
