package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/remote/smtptest"
)

// After 4 deliveries (3 local, 1 remote) and 2 failures (a bounce and a
// deferral), `sendq stats`, run after the runner stopped, shows them with
// the queue's one deferred entry; a second runner's deferral adds to the
// same counts.
func TestSendqStatsCountsAcrossProcesses(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		switch to {
		case "bad@far.example":
			return smtptest.Refuse(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		case "slow@far.example":
			return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
		}
		return nil
	}})
	root := sqRoot(t, "", map[string]string{"routes": "far.example " + srv.Addr + "\n", "retry-min": "1h\n", "retry-max": "2h\n"})
	for i := range 3 {
		sqSend(t, root, fmt.Sprintf("Subject: local %d\n\nx\n", i), "-i", "-f", "bob@example.org", "alice@example.org")
	}
	sqSend(t, root, "Subject: remote\n\nx\n", "-i", "-f", "alice@example.org", "ok@far.example")
	// From the null sender, so that the bounce is dropped, not delivered.
	sqSend(t, root, "Subject: bounced\n\nx\n", "-i", "-f", "", "bad@far.example")
	sqSend(t, root, "Subject: deferred\n\nx\n", "-i", "-f", "", "slow@far.example")
	ids := sqSpool(root)
	list, err := ids.IDs()
	if err != nil || len(list) != 6 {
		t.Fatalf("spool IDs %v, %v; want 6", list, err)
	}
	deferredID := list[5]

	r := startSendq(t, root)
	outcome := `status=(delivered|deferred|bounced) `
	sqWait(t, "six outcomes", 15*time.Second, func() bool { return r.count(outcome) == 6 })
	r.stop(t)
	if r.count(outcome) != 6 || r.count(`status=delivered `) != 4 {
		t.Fatalf("log:\n%s\nwant 4 deliveries, a bounce and a deferral", strings.Join(r.lines(), "\n"))
	}

	sq := func(args ...string) string {
		t.Helper()
		code, out, stderr := sqCommand(t, "", nil, append([]string{"--root", root}, args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("sendq %v = %d, stderr %q", args, code, stderr)
		}
		return out
	}
	out := sq("stats")
	for _, want := range []string{
		`(?m)^messages      1  \(1 recipients pending, \d+ bytes\)$`,
		`(?m)^  new         0  never tried$`,
		`(?m)^  deferred    1  tried, waiting for a retry$`,
		`(?m)^  held        0  until sendq release$`,
		`(?m)^oldest        \d+s  ` + deferredID + `  from=<>$`,
		`(?m)^destinations +recipients  messages  held$`,
		`(?m)^  far\.example +1 +1 +0$`,
		`(?m)^last hour     delivered=4 deferred=1 bounced=1$`,
		`(?m)^  failing     far\.example delivered=1 deferred=1 bounced=1$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("sendq stats lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "failing"); n != 1 {
		t.Errorf("sendq stats lists %d failing domains, want 1 (example.org only had deliveries):\n%s", n, out)
	}

	var st struct {
		Messages int `json:"messages"`
		Deferred int `json:"deferred"`
		Oldest   struct {
			ID string `json:"id"`
		} `json:"oldest"`
		LastHour struct {
			Delivered, Deferred, Bounced int
		} `json:"last_hour"`
	}
	js := sq("stats", "--json")
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("sendq stats --json: %v\n%s", err, js)
	}
	if st.Messages != 1 || st.Deferred != 1 || st.Oldest.ID != deferredID || st.LastHour.Delivered != 4 || st.LastHour.Deferred != 1 || st.LastHour.Bounced != 1 {
		t.Errorf("sendq stats --json = %+v\n%s", st, js)
	}

	// The counts are files: the runner's user owns them, others cannot
	// read them.
	files, _ := filepath.Glob(filepath.Join(root, "spool", "stats", "20[0-9]*"))
	if len(files) == 0 {
		t.Fatal("no hour file in spool/stats/")
	}
	for _, f := range files {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, info.Mode().Perm())
		}
	}

	// A second runner: flushed, the entry is deferred again, and the
	// count goes on from the first runner's.
	r2 := startSendq(t, root)
	sq("flush", deferredID)
	sqWait(t, "the second deferral", 15*time.Second, func() bool { return r2.count(`status=deferred `) == 1 })
	r2.stop(t)
	if out := sq("stats"); !strings.Contains(out, "\nlast hour     delivered=4 deferred=2 bounced=1\n") {
		t.Errorf("after a second runner's deferral, sendq stats:\n%s\nwant delivered=4 deferred=2 bounced=1", out)
	}
}
