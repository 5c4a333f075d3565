package sendq

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/queue"
	"github.com/postkit/postkit/selfsigned"
	"github.com/postkit/postkit/spool"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"300", 5 * time.Minute, true},
		{"0", 0, true},
		{"5m", 5 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"5d", 120 * time.Hour, true},
		{"250ms", 250 * time.Millisecond, true},
		{"-5m", 0, false},
		{"5 minutes", 0, false},
		{"d", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func writeEtc(t *testing.T, root control.Root, name, content string) {
	t.Helper()
	if err := os.MkdirAll(root.Etc(""), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root.Etc(name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	root := control.Root(t.TempDir())
	writeEtc(t, root, "hostname", "mx.example.org\n")
	writeEtc(t, root, "dns", "127.0.0.1:5353\n")
	cfg, err := LoadConfig(root, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetryMin != queue.DefaultRetryMin || cfg.RetryMax != queue.DefaultRetryMax || cfg.Lifetime != 5*24*time.Hour ||
		cfg.DelayWarning != 4*time.Hour || cfg.Concurrency != 20 || cfg.PerDestination != 5 {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.Remote.Port != 25 || cfg.Remote.Timeouts.Command != 5*time.Minute || cfg.Remote.Hostname != "mx.example.org" {
		t.Errorf("remote defaults = %+v", cfg.Remote)
	}

	for name, value := range map[string]string{
		"retry-min": "2", "retry-max": "10s", "queue-lifetime": "1d", "delay-warning": "0",
		"concurrency": "3", "concurrency-per-destination": "1", "timeout-connect": "1s",
		"timeout-command": "2s", "timeout-data-block": "3s", "timeout-data-end": "4s", "smtp-port": "2525",
		"routes": "* 127.0.0.1:2587\n",
	} {
		writeEtc(t, root, name, value+"\n")
	}
	cfg, err = LoadConfig(root, Overrides{Hostname: "flag.example", DNS: "192.0.2.53"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RetryMin != 2*time.Second || cfg.RetryMax != 10*time.Second || cfg.Lifetime != 24*time.Hour || cfg.DelayWarning != 0 ||
		cfg.Concurrency != 3 || cfg.PerDestination != 1 || cfg.Hostname != "flag.example" {
		t.Errorf("config from control files = %+v", cfg)
	}
	if tt := cfg.Remote.Timeouts; tt.Connect != time.Second || tt.Command != 2*time.Second || tt.DataBlock != 3*time.Second || tt.DataEnd != 4*time.Second || cfg.Remote.Port != 2525 {
		t.Errorf("remote from control files = %+v", cfg.Remote)
	}
	if r := cfg.Routes.Lookup("x.example"); r == nil || r.Port != 2587 {
		t.Errorf("routes = %v", r)
	}
	if f, ok := cfg.Remote.MTASTS.(*mtasts.Fetcher); !ok || f.Port != 443 || f.RootCAs != nil || cfg.Remote.RootCAs != nil || f.CacheDir != filepath.Join(string(root), "cache", "mta-sts") {
		t.Errorf("MTA-STS defaults = %+v", cfg.Remote.MTASTS)
	}
	certPEM, _, err := selfsigned.Generate([]string{"ca.test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeEtc(t, root, "tls-roots.pem", string(certPEM))
	writeEtc(t, root, "mta-sts-port", "8443\n")
	cfg, err = LoadConfig(root, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Remote.MTASTS.(*mtasts.Fetcher); f.Port != 8443 || f.RootCAs == nil || cfg.Remote.RootCAs != f.RootCAs {
		t.Errorf("MTA-STS from control files = %+v", f)
	}

	for name, bad := range map[string]string{"retry-min": "soon", "concurrency": "0", "smtp-port": "70000", "routes": "x\n",
		"tls-roots.pem": "no certificate\n", "mta-sts-port": "0"} {
		root := control.Root(t.TempDir())
		writeEtc(t, root, "dns", "127.0.0.1\n")
		writeEtc(t, root, name, bad)
		if _, err := LoadConfig(root, Overrides{Hostname: "h"}); err == nil {
			t.Errorf("LoadConfig with %s = %q succeeded", name, bad)
		}
	}
}

func newSpool(t *testing.T) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func enqueue(t *testing.T, sp *spool.Spool, from string, rcpts ...string) *spool.Envelope {
	t.Helper()
	env := &spool.Envelope{From: from}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, spool.Recipient{Address: r})
	}
	if _, err := sp.Enqueue(env, strings.NewReader("Subject: x\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestListAndShow(t *testing.T) {
	sp := newSpool(t)
	var b strings.Builder
	if err := List(&b, sp); err != nil || b.String() != "Mail queue is empty\n" {
		t.Errorf("List of an empty queue = %q, %v", b.String(), err)
	}
	env := enqueue(t, sp, "alice@example.org", "bob@far.example", "carol@example.org")
	env.Recipients[0].Attempts, env.Recipients[0].LastError = 2, "451 4.7.1 greylisted"
	env.Recipients[1].State = spool.Delivered
	env.NextAttempt = time.Now().Add(10 * time.Minute)
	env.Hold = true
	if err := sp.Update(env); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := List(&b, sp); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{env.ID + "  age=0s  size=17  from=<alice@example.org>  next=", "  held\n",
		"  pending    bob@far.example  attempts=2  error=\"451 4.7.1 greylisted\"\n",
		"  delivered  carol@example.org  attempts=0\n", "-- 1 entries, 17 bytes\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("List output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := Show(&b, sp, env.ID); err != nil || !strings.Contains(b.String(), "rcpt bob@far.example\n") || !strings.HasSuffix(b.String(), "--- message ---\nSubject: x\n\nbody\n") {
		t.Errorf("Show = %q, %v", b.String(), err)
	}
	if err := Show(&b, sp, "0000000000000000"); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Show(unknown) = %v, want ErrNotFound", err)
	}
}

func TestFlushHoldRemove(t *testing.T) {
	sp := newSpool(t)
	a := enqueue(t, sp, "x@example.org", "y@example.org")
	b := enqueue(t, sp, "x@example.org", "z@example.org")
	later := time.Now().Add(time.Hour).UTC()
	for _, e := range []*spool.Envelope{a, b} {
		e.NextAttempt = later
		if err := sp.Update(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := Hold(sp, b.ID, true); err != nil {
		t.Fatal(err)
	}
	if n, err := Flush(sp, ""); n != 1 || err != nil {
		t.Errorf("Flush() = %d, %v; want 1 (the held entry stays)", n, err)
	}
	due, _ := sp.Due(time.Now())
	if len(due) != 1 || due[0].ID != a.ID {
		t.Errorf("due after flush = %v, want only %s", due, a.ID)
	}
	if err := Hold(sp, b.ID, false); err != nil {
		t.Fatal(err)
	}
	if n, err := Flush(sp, b.ID); n != 1 || err != nil {
		t.Errorf("Flush(%s) = %d, %v; want 1", b.ID, n, err)
	}
	if due, _ := sp.Due(time.Now()); len(due) != 2 {
		t.Errorf("due after release and flush = %d entries, want 2", len(due))
	}
	if _, err := Flush(sp, "0000000000000000"); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Flush(unknown) = %v, want ErrNotFound", err)
	}
	if err := Remove(sp, a.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := sp.IDs(); len(ids) != 1 || ids[0] != b.ID {
		t.Errorf("IDs after rm = %v, want only %s", ids, b.ID)
	}
	if err := Hold(sp, a.ID, true); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Hold(removed) = %v, want ErrNotFound", err)
	}
}

func TestSendmailCommands(t *testing.T) {
	root := control.Root(t.TempDir())
	cmds := SendmailCommands(root)
	var b strings.Builder
	if err := cmds.List(&b); err != nil || b.String() != "Mail queue is empty\n" {
		t.Errorf("-bp on a new root = %q, %v", b.String(), err)
	}
	sp, err := spool.Open(root.SpoolDir())
	if err != nil {
		t.Fatal(err)
	}
	e := enqueue(t, sp, "a@example.org", "b@example.org")
	e.NextAttempt = time.Now().Add(time.Hour)
	if err := sp.Update(e); err != nil {
		t.Fatal(err)
	}
	if err := cmds.Flush(); err != nil {
		t.Fatal(err)
	}
	if due, _ := sp.Due(time.Now()); len(due) != 1 {
		t.Errorf("-q left %d entries due, want 1", len(due))
	}
}
