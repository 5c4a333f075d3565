package queue

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/spool"
)

func TestDKIMSigning(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	e := newEnv(t, "", "far.example "+srv.Addr)
	keys, _, err := dkimsign.Generate(e.root, "example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		for _, k := range keys {
			if name == k.RecordName() {
				return []string{k.Record()}, nil
			}
		}
		return nil, errors.New("no record")
	}
	e.start(t)
	enqueue := func(env *spool.Envelope, body string) {
		t.Helper()
		if _, err := e.spool.Enqueue(env, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	// Submitted by alice, sent locally, forwarded from outside, and
	// submitted with a From of a domain without keys.
	rcpt := []spool.Recipient{{Address: "bob@far.example"}}
	enqueue(&spool.Envelope{From: "alice@example.org", AuthUser: "alice@example.org", ClientAddr: "192.0.2.7", Recipients: rcpt}, msg+"submitted\n")
	enqueue(&spool.Envelope{From: "alice@example.org", Recipients: rcpt}, msg+"local\n")
	enqueue(&spool.Envelope{From: "x@elsewhere.example", ClientAddr: "192.0.2.8", Recipients: rcpt}, msg+"forwarded\n")
	enqueue(&spool.Envelope{From: "alice@example.org", AuthUser: "alice@example.org", Recipients: rcpt},
		"From: alice@other.example\nSubject: s\n\nother domain\n")
	msgs := srv.Wait(t, 4, 10*time.Second)
	for _, m := range msgs {
		body := string(m.Data)
		vs, err := dkim.VerifyWithOptions(strings.NewReader(body), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil {
			t.Fatalf("Verify = %v", err)
		}
		wantSigned := strings.HasSuffix(body, "submitted\r\n") || strings.HasSuffix(body, "local\r\n")
		if !wantSigned {
			if len(vs) != 0 {
				t.Errorf("message %q has %d signatures, want none", body, len(vs))
			}
			continue
		}
		if len(vs) != 2 {
			t.Fatalf("message %q has %d signatures, want 2", body, len(vs))
		}
		for _, v := range vs {
			if v.Err != nil || v.Domain != "example.org" {
				t.Errorf("signature of %s: %v", v.Domain, v.Err)
			}
		}
	}
	if n := e.log.count("event=dkim status=signed domain=example.org signatures=2"); n != 2 {
		t.Errorf("%d signing log lines, want 2:\n%s", n, e.log)
	}
}
