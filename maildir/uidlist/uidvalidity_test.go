package uidlist

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNextUIDValidity(t *testing.T) {
	root := t.TempDir()
	before := uint32(time.Now().Unix())
	first := NextUIDValidity(root)
	// Not below the current time; above it if this process already handed
	// out values this second (as Dovecot's fallback counter does).
	if first < before {
		t.Errorf("first value %d is below the current time %d", first, before)
	}
	for i := uint32(1); i <= 3; i++ {
		if v := NextUIDValidity(root); v != first+i {
			t.Errorf("value %d = %d, want %d", i, v, first+i)
		}
	}
	last := first + 3
	checkUIDValidityFiles(t, root, last)

	// The marker alone is enough (the main file is only a cache) ...
	os.Remove(filepath.Join(root, UIDValidityFileName))
	if v := NextUIDValidity(root); v != last+1 {
		t.Errorf("without the main file: %d, want %d", v, last+1)
	}
	last++
	// ... and a broken main file is ignored.
	os.WriteFile(filepath.Join(root, UIDValidityFileName), []byte("zz"), 0o600)
	if v := NextUIDValidity(root); v != last+1 {
		t.Errorf("with a broken main file: %d, want %d", v, last+1)
	}
	last++
	// A main file behind the marker (another process was faster) catches up.
	os.WriteFile(filepath.Join(root, UIDValidityFileName), []byte(fmt.Sprintf("%08x", last-1)), 0o600)
	if v := NextUIDValidity(root); v != last+1 {
		t.Errorf("with a stale main file: %d, want %d", v, last+1)
	}
	last++
	checkUIDValidityFiles(t, root, last)
}

// checkUIDValidityFiles checks Dovecot's two files for the last value.
func checkUIDValidityFiles(t *testing.T, root string, last uint32) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, UIDValidityFileName))
	if want := fmt.Sprintf("%08x", last); err != nil || string(data) != want {
		t.Errorf("%s = %q, %v, want %q", UIDValidityFileName, data, err, want)
	}
	matches, _ := filepath.Glob(filepath.Join(root, UIDValidityFileName+".*"))
	if want := filepath.Join(root, fmt.Sprintf("%s.%08x", UIDValidityFileName, last)); len(matches) != 1 || matches[0] != want {
		t.Errorf("markers = %q, want only %s", matches, want)
	}
}

func TestNextUIDValidityDuplicateMarkers(t *testing.T) {
	root := t.TempDir()
	for _, v := range []uint32{0x60000000, 0x60000005} {
		os.WriteFile(filepath.Join(root, fmt.Sprintf("%s.%08x", UIDValidityFileName, v)), nil, 0o444)
	}
	if v := NextUIDValidity(root); v != 0x60000006 {
		t.Errorf("NextUIDValidity = %#x, want 0x60000006", v)
	}
	checkUIDValidityFiles(t, root, 0x60000006)
}
