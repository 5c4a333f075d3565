package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/spool"
)

// TestConnectionReuseLogged: the second of two messages for the same
// destination goes over the connection the first left in remote's cache,
// and its log line says so; the first does not.
func TestConnectionReuseLogged(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	e := newEnv(t, "", "far.example "+srv.Addr)
	e.start(t)
	for i, body := range []string{"first\n", "second\n"} {
		env := &spool.Envelope{From: "alice@example.org", Recipients: []spool.Recipient{{Address: "bob@far.example"}}}
		if _, err := e.spool.Enqueue(env, strings.NewReader(msg+body)); err != nil {
			t.Fatal(err)
		}
		srv.Wait(t, i+1, 10*time.Second)
	}
	// The second delivery is logged once the runner has recorded it.
	deadline := time.Now().Add(10 * time.Second)
	for e.log.count("status=delivered") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.log.count("status=delivered"); n != 2 {
		t.Fatalf("%d deliveries logged, want 2:\n%s", n, e.log)
	}
	if n := e.log.count("conn=reused"); n != 1 {
		t.Errorf("%d log lines say conn=reused, want 1 (the second delivery):\n%s", n, e.log)
	}
}
