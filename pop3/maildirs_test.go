package pop3

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postkit/postkit/maildir"
)

// TestMaildirsSeesChanges: a remembered UID list never hides what changed
// since the last session: new mail, flag changes, removals.
func TestMaildirsSeesChanges(t *testing.T) {
	dir := newMaildir(t)
	var ms Maildirs
	open := func() []string {
		t.Helper()
		m, err := ms.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		return uidls(m)
	}
	first := open()
	if again := open(); !slices.Equal(again, first) {
		t.Errorf("second session: %q, want %q", again, first)
	}
	if _, err := maildir.Dir(dir).Deliver(strings.NewReader("Subject: five\n\n"), maildir.DeliverOptions{Hostname: "test"}); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(dir, "cur")
	if err := os.Rename(filepath.Join(cur, "1700000002.M2P100.test:2,"), filepath.Join(cur, "1700000002.M2P100.test:2,F")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cur, "1700000001.M1P100.test,S=34,W=39:2,")); err != nil {
		t.Fatal(err)
	}
	want := []string{first[1], first[2], first[3], UIDL(5, fixtureValidity)}
	if got := open(); !slices.Equal(got, want) {
		t.Errorf("after delivery, flag change and removal: %q, want %q", got, want)
	}
	m, err := ms.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := ms.Open(dir, nil); err != ErrInUse {
		t.Errorf("second Open while the first session is open = %v, want ErrInUse", err)
	}
}

func TestMaildirsRemembersTheLastOpened(t *testing.T) {
	ms := Maildirs{Remember: 2}
	var dirs []string
	for range 3 {
		dir := newMaildir(t)
		dirs = append(dirs, dir)
		m, err := ms.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	// Opening the second again makes the third the older one.
	m, err := ms.Open(dirs[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	var kept []string
	for e := ms.order.Front(); e != nil; e = e.Next() {
		kept = append(kept, e.Value.(interface{ Dir() string }).Dir())
	}
	if want := []string{dirs[1], dirs[2]}; !slices.Equal(kept, want) || len(ms.lists) != 2 {
		t.Errorf("remembered %q (%d in the map), want %q", kept, len(ms.lists), want)
	}
}
