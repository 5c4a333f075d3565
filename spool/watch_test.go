package spool

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestWatchWakesOnEnqueueFromAnotherProcess(t *testing.T) {
	s := openSpool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wake, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("Watch = %v", err)
	}
	// The first wake-up is there from the start: scan what came before.
	select {
	case <-wake:
	default:
		t.Fatal("Watch channel holds no initial wake-up")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_TEST_CHILD=enqueue", "SPOOL_TEST_DIR="+s.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("enqueuing child: %v\n%s", err, out)
	}
	// inotify queued the event before the child exited; the second is
	// only the time our goroutine needs to read it.
	select {
	case <-wake:
	case <-time.After(time.Second):
		t.Fatal("no wake-up within a second of the child's Enqueue")
	}
	if list, err := s.List(); err != nil || len(list) != 1 || list[0].From != "child@example.org" {
		t.Errorf("List = %v, %v; want the child's entry", list, err)
	}

	cancel()
	for range wake { // drain: the channel must close once ctx is done
	}
}

func TestEnqueueWithoutWatcher(t *testing.T) {
	s := openSpool(t)
	// Nobody watches: Enqueue must neither block nor fail, and a runner
	// that starts afterwards finds the entry on its first scan.
	env := enqueue(t, s, "early\n")
	wake, err := s.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	<-wake
	due, err := s.Due(time.Now())
	if err != nil || len(due) != 1 || due[0].ID != env.ID {
		t.Errorf("Due = %v, %v; want the early entry", due, err)
	}
}

func TestWatchEndsWhenCancelled(t *testing.T) {
	s := openSpool(t)
	ctx, cancel := context.WithCancel(context.Background())
	wake, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-wake
	cancel()
	if _, ok := <-wake; ok {
		t.Error("Watch channel delivered a wake-up after cancel, want closed")
	}
}
