package users

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
)

func TestGeneratePassword(t *testing.T) {
	re := regexp.MustCompile(`^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}$`)
	seen := map[string]bool{}
	for range 20 {
		pw, err := GeneratePassword()
		if err != nil || !re.MatchString(pw) {
			t.Fatalf("GeneratePassword() = %q, %v; want four groups of four lowercase letters", pw, err)
		}
		if seen[pw] {
			t.Fatalf("GeneratePassword() repeated %q", pw)
		}
		seen[pw] = true
	}
}

func TestAppPasswords(t *testing.T) {
	src := "# app passwords\nbob@example.org:{BLF-CRYPT}$2y$05$fws3eYfvX7l6xVrHjFTAzeOKjdxOTZ92pYxIpl.PM5HXWzgSIFUIe:old phone:1700000000\n"
	a, err := ParseApp([]byte(src), "app-passwords")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(a.Marshal()); got != src {
		t.Errorf("Marshal() = %q, want input unchanged %q", got, src)
	}
	before := time.Now().Unix()
	pw, err := a.Add("alice@example.org", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add("ALICE@example.org", "phone"); !errors.Is(err, ErrExists) {
		t.Errorf("Add(same label) = %v, want ErrExists", err)
	}
	if _, err := a.Add("alice@example.org", "a:b"); err == nil {
		t.Errorf("Add(label with ':') succeeded")
	}
	if _, err := a.Add("alice@example.org", "laptop"); err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, p := range a.List("Alice@Example.org") {
		labels = append(labels, p.Label)
		if p.Created.Unix() < before || p.Created.Unix() > time.Now().Unix() {
			t.Errorf("Created = %v, want now", p.Created)
		}
	}
	if want := []string{"phone", "laptop"}; !reflect.DeepEqual(labels, want) {
		t.Errorf("List labels = %q, want %q", labels, want)
	}
	again, err := ParseApp(a.Marshal(), "app-passwords")
	if err != nil {
		t.Fatalf("ParseApp(Marshal()) = %v", err)
	}
	ps := again.List("alice@example.org")
	if len(ps) != 2 {
		t.Fatalf("after round trip List = %+v", ps)
	}
	if ok, err := VerifyPassword(ps[0].hash, pw); !ok || err != nil {
		t.Errorf("stored hash does not verify the returned password: %v, %v", ok, err)
	}
	if err := again.Revoke("alice@example.org", "phone"); err != nil {
		t.Fatal(err)
	}
	if err := again.Revoke("alice@example.org", "phone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Revoke = %v, want ErrNotFound", err)
	}
	if n := again.RevokeAll("alice@example.org"); n != 1 {
		t.Errorf("RevokeAll = %d, want 1", n)
	}
	if got := string(again.Marshal()); got != src {
		t.Errorf("after revoking alice's the file is %q, want %q", got, src)
	}
}

func TestParseAppErrors(t *testing.T) {
	for _, in := range []string{
		"a@b:h:label\n",
		"a@b:h:label:notanumber\n",
		"a@b:h::1\n",
		"a@b:h:l:1:extra\n",
		"a@b:h:l:1\nA@B:h2:l:2\n",
	} {
		if _, err := ParseApp([]byte(in), "app-passwords"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "app-passwords:") {
			t.Errorf("ParseApp(%q) = %v, want ErrMalformed naming the line", in, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	root := control.Root(t.TempDir())
	if ok, err := Authenticate(root, "alice@example.org", "x"); ok || err != nil {
		t.Fatalf("Authenticate on an empty root = %v, %v; want false, nil", ok, err)
	}
	h, _ := HashPassword("main pw")
	err := Update(root.Etc("users"), func(db *DB) error {
		if err := db.Add(Entry{Address: "alice@example.org", Hash: h}); err != nil {
			return err
		}
		return db.Add(Entry{Address: "old@example.org", Hash: "{SSHA}abc"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var app, oldApp string
	err = UpdateApp(root.Etc("app-passwords"), func(a *AppPasswords) error {
		var err error
		if app, err = a.Add("alice@example.org", "phone"); err != nil {
			return err
		}
		oldApp, err = a.Add("old@example.org", "phone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr, pw string
		want, wantErr  bool
	}{
		{"main password", "alice@example.org", "main pw", true, false},
		{"address case", "ALICE@example.ORG", "main pw", true, false},
		{"app password", "alice@example.org", app, true, false},
		{"wrong password", "alice@example.org", "main PW", false, false},
		{"another user's app password", "alice@example.org", oldApp, false, false},
		{"unknown user", "nobody@example.org", "main pw", false, false},
		{"unknown scheme, app password still works", "old@example.org", oldApp, true, false},
		{"unknown scheme, wrong password", "old@example.org", "x", false, true},
	} {
		ok, err := Authenticate(root, tc.addr, tc.pw)
		if ok != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: Authenticate(%q, %q) = %v, %v; want %v, error %v", tc.name, tc.addr, tc.pw, ok, err, tc.want, tc.wantErr)
		}
	}
	// A deleted user's leftover app passwords do not log in.
	if err := Update(root.Etc("users"), func(db *DB) error { return db.Remove("alice@example.org") }); err != nil {
		t.Fatal(err)
	}
	if ok, err := Authenticate(root, "alice@example.org", app); ok || err != nil {
		t.Errorf("Authenticate(removed user, app password) = %v, %v; want false, nil", ok, err)
	}
	if info, err := os.Stat(root.Etc("app-passwords")); err != nil || info.Mode().Perm() != fileMode {
		t.Errorf("app-passwords mode = %v, %v; want %v", info.Mode().Perm(), err, os.FileMode(fileMode))
	}
}

func FuzzLoadAppPasswords(f *testing.F) {
	f.Add([]byte("# c\na@b:{BLF-CRYPT}x:phone:1700000000\n\n"))
	f.Add([]byte("a@b:h:l:1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseApp(data, "fuzz")
		if err != nil {
			return
		}
		again, err := ParseApp(a.Marshal(), "fuzz")
		if err != nil {
			t.Fatalf("ParseApp(Marshal()) = %v for %q", err, data)
		}
		if !reflect.DeepEqual(a.All(), again.All()) {
			t.Fatalf("ParseApp(Marshal()).All() = %+v, want %+v", again.All(), a.All())
		}
	})
}
