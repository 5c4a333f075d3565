package queue

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/spool"
)

// TestPickupDrops: drops made before the runner starts, a broken one among
// them, and one made while it runs are delivered (the broken one refused
// and removed), each without waiting for a timer: the start and the drop's
// rename wake the runner.
func TestPickupDrops(t *testing.T) {
	e := newEnv(t, "")
	drop := func(subject string) {
		t.Helper()
		env := &spool.Envelope{From: "cron@mx.example.org", Recipients: []spool.Recipient{{Address: "alice@example.org"}}}
		if _, err := spool.Drop(e.spool.Dir(), env, strings.NewReader("Subject: "+subject+"\n\nhi\n")); err != nil {
			t.Fatal(err)
		}
	}
	drop("before the runner")
	broken := filepath.Join(e.spool.Dir(), spool.MaildropDir, "0PQ3K7T2M1A4B5C6.0123456789abcdefghijklmnop")
	if err := os.WriteFile(broken, []byte("postkit-envelope 1\nhold yes\n\nx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	waitFor(t, "the first drop in alice's mailbox", 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 1 })
	drop("while it runs")
	waitFor(t, "the second drop in alice's mailbox", 10*time.Second, func() bool { return len(e.mailbox(t, "alice")) == 2 })
	waitFor(t, "the spool to empty", 5*time.Second, e.empty)
	if names, _ := os.ReadDir(filepath.Dir(broken)); len(names) != 0 {
		t.Errorf("maildrop/ still holds %v", names)
	}
	if e.log.count("event=pickup") != 3 || e.log.count("status=refused") != 1 || e.log.count("status=queued") != 2 {
		t.Errorf("log:\n%s\nwant two drops queued and one refused", e.log)
	}
}
