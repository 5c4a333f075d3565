package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RenameNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("RenameNoReplace onto an existing file = %v, want ErrExist", err)
	}
	if data, _ := os.ReadFile(b); string(data) != b {
		t.Errorf("the existing file now holds %q", data)
	}
	if _, err := os.Stat(a); err != nil {
		t.Errorf("the source is gone after a refused rename: %v", err)
	}
	if err := RenameNoReplace(a, c); err != nil {
		t.Fatalf("RenameNoReplace to a free name = %v", err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the source still exists: %v", err)
	}
	if data, _ := os.ReadFile(c); string(data) != a {
		t.Errorf("the new name holds %q, want %q", data, a)
	}
}
