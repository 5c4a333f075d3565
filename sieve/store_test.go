package sieve

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidScriptName(t *testing.T) {
	for name, want := range map[string]bool{
		"main": true, "my-filter_2.v1": true, "": false, ".hidden": false, "a/b": false,
		"..": false, "a b": false, "ü": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if got := ValidScriptName(name); got != want {
			t.Errorf("ValidScriptName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStore(t *testing.T) {
	home := t.TempDir()
	if s, name, err := LoadActive(home); s != nil || name != "" || err != nil {
		t.Fatalf("LoadActive(empty home) = %v, %q, %v, want nothing", s, name, err)
	}
	if err := SaveScript(home, "bad", []byte("fileinto \"x\";")); err == nil || !strings.Contains(err.Error(), "1:1:") {
		t.Errorf("SaveScript(bad script) = %v, want the check error", err)
	}
	if err := SaveScript(home, "../escape", []byte("keep;")); err == nil {
		t.Errorf("SaveScript(../escape) = nil, want an error")
	}
	if err := SaveScript(home, "main", []byte("discard;")); err != nil {
		t.Fatal(err)
	}
	if err := SaveScript(home, "other", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	if err := Activate(home, "missing"); !errors.Is(err, ErrNoScript) {
		t.Errorf("Activate(missing) = %v, want ErrNoScript", err)
	}
	if err := Activate(home, "main"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/main.sieve" {
		t.Errorf("link = %q, %v, want sieve/main.sieve", target, err)
	}
	s, name, err := LoadActive(home)
	if err != nil || name != "main" || s == nil {
		t.Fatalf("LoadActive = %v, %q, %v, want main", s, name, err)
	}
	if err := DeleteScript(home, "main"); err == nil {
		t.Errorf("DeleteScript(active) = nil, want an error")
	}
	if err := Activate(home, "other"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteScript(home, "main"); err != nil {
		t.Errorf("DeleteScript(main) = %v", err)
	}
	if names, err := ListScripts(home); err != nil || !reflect.DeepEqual(names, []string{"other"}) {
		t.Errorf("ListScripts = %q, %v, want [other]", names, err)
	}
	if src, err := ReadScript(home, "other"); err != nil || string(src) != "keep;" {
		t.Errorf("ReadScript(other) = %q, %v", src, err)
	}
	if err := Activate(home, ""); err != nil {
		t.Fatal(err)
	}
	if name, err := ActiveScript(home); name != "" || err != nil {
		t.Errorf("ActiveScript after deactivation = %q, %v", name, err)
	}
	// No temporary link may be left behind.
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if e.Name() != "sieve" {
			t.Errorf("left in home: %s", e.Name())
		}
	}
}

func TestLoadActiveRefusesEscapes(t *testing.T) {
	home := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.sieve")
	if err := os.WriteFile(secret, []byte("keep;"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{secret, "../secret.sieve", "sieve/../../x.sieve", "sieve/.x.sieve", "sieve/main.txt"} {
		link := filepath.Join(home, ".dovecot.sieve")
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if s, _, err := LoadActive(home); s != nil || err == nil {
			t.Errorf("LoadActive(link to %q) = %v, %v, want an error", target, s, err)
		}
	}
	// The script itself may not be a link either.
	os.Mkdir(filepath.Join(home, "sieve"), 0o700)
	if err := os.Symlink(secret, filepath.Join(home, "sieve", "main.sieve")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(home, ".dovecot.sieve"))
	os.Symlink("sieve/main.sieve", filepath.Join(home, ".dovecot.sieve"))
	if s, _, err := LoadActive(home); s != nil || err == nil {
		t.Errorf("LoadActive(script that is a link) = %v, %v, want an error", s, err)
	}
	// A regular .dovecot.sieve, as Dovecot users have, is the active script.
	os.Remove(filepath.Join(home, ".dovecot.sieve"))
	os.WriteFile(filepath.Join(home, ".dovecot.sieve"), []byte("discard;"), 0o600)
	if s, name, err := LoadActive(home); s == nil || err != nil || name != ".dovecot.sieve" {
		t.Errorf("LoadActive(regular file) = %v, %q, %v", s, name, err)
	}
	// A dangling link means no script.
	os.Remove(filepath.Join(home, ".dovecot.sieve"))
	os.Symlink("sieve/gone.sieve", filepath.Join(home, ".dovecot.sieve"))
	if s, name, err := LoadActive(home); s != nil || err != nil || name != "" {
		t.Errorf("LoadActive(dangling link) = %v, %q, %v, want nothing", s, name, err)
	}
}
