package spool

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spoolFiles returns the contents of every file in queue/ and env/, by
// path: what Pickup must leave alone.
func spoolFiles(t *testing.T, s *Spool) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, d := range []string{s.queueDir, s.envDir} {
		for _, name := range dirNames(t, d) {
			data, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.Join(filepath.Base(d), name)] = string(data)
		}
	}
	return files
}

// writeDrop puts a drop as Drop writes it into maildrop/ under name.
func writeDrop(t *testing.T, s *Spool, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dropDir, name), validDrop(t), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dropName returns a drop name starting with queue ID id.
func dropName(id string) string { return id + "." + strings.Repeat("a", dropNameLen-IDLen-1) }

func TestPickupKeepsTheDropsID(t *testing.T) {
	s := openSpool(t)
	name, err := Drop(s.dir, dropEnvelope(), strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	var log logLines
	if n, err := s.Pickup(log.logf); n != 1 || err != nil {
		t.Fatalf("Pickup = %d, %v; want 1 (log: %s)", n, err, log.String())
	}
	ids, err := s.IDs()
	if err != nil || len(ids) != 1 || ids[0] != name[:IDLen] {
		t.Errorf("IDs() = %q, %v after the pickup of drop %s; want [%s], the drop's ID", ids, err, name, name[:IDLen])
	}
}

// TestPickupAfterCrashQueuesOnce: a runner queued a drop and was killed
// before it removed it. The next Pickup finds the entry by the drop's ID,
// leaves it as it is, and removes the drop without queuing it again.
func TestPickupAfterCrashQueuesOnce(t *testing.T) {
	uid := strconv.Itoa(os.Geteuid())
	tests := []struct {
		name    string
		crash   func(t *testing.T, s *Spool, id string) // what happened after the import
		entries int
	}{
		{"entry as queued", func(*testing.T, *Spool, string) {}, 1},
		{"entry updated", func(t *testing.T, s *Spool, id string) {
			env, err := s.Load(id)
			if err != nil {
				t.Fatal(err)
			}
			env.Recipients[0].Attempts = 1
			if err := s.Update(env); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"entry delivered, removal half done", func(t *testing.T, s *Spool, id string) {
			env, err := s.Load(id)
			if err != nil {
				t.Fatal(err)
			}
			env.Recipients[0].State = Delivered
			if err := s.Update(env); err != nil {
				t.Fatal(err)
			}
			// Remove's first step: env/ID outlives the queue file.
			if err := os.Remove(s.queuePath(id)); err != nil {
				t.Fatal(err)
			}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t)
			name, err := Drop(s.dir, dropEnvelope(), strings.NewReader("Subject: once\n\nonce\n"))
			if err != nil {
				t.Fatal(err)
			}
			// The import without the removal: what a kill in between leaves.
			gotUID, id, err := s.importDrop(name, true)
			if err != nil || gotUID != uid || id != name[:IDLen] {
				t.Fatalf("importDrop(%s) = %s, %s, %v; want uid %s, id %s", name, gotUID, id, err, uid, name[:IDLen])
			}
			tt.crash(t, s, id)
			before := spoolFiles(t, s)

			var log logLines
			n, err := s.Pickup(log.logf)
			if err != nil || n != 0 {
				t.Errorf("Pickup = %d, %v; want 0 queued (log: %s)", n, err, log.String())
			}
			if ids, err := s.IDs(); err != nil || len(ids) != tt.entries {
				t.Errorf("IDs() = %q, %v after Pickup; want %d entries", ids, err, tt.entries)
			}
			if after := spoolFiles(t, s); !maps.Equal(after, before) {
				t.Errorf("Pickup changed the spool from %q to %q", before, after)
			}
			if names := dirNames(t, s.dropDir); len(names) != 0 {
				t.Errorf("maildrop/ holds %q after Pickup, want nothing", names)
			}
			want := "event=pickup drop=" + name + " uid=" + uid + " id=" + id + " status=already-queued"
			if !strings.Contains(log.String(), want) {
				t.Errorf("log = %q, want %q", log.String(), want)
			}
		})
	}
}

// TestPickupDropNamedAfterAnotherEntry: a drop named after an entry that
// is not its submitter's (by chance, or by a user who learnt the ID) is
// queued under a fresh ID and leaves that entry exactly as it was.
func TestPickupDropNamedAfterAnotherEntry(t *testing.T) {
	other := "4242"
	if strconv.Itoa(os.Geteuid()) == other {
		other = "4243"
	}
	for _, localUID := range []string{"", other} {
		t.Run("local-uid "+strconv.Quote(localUID), func(t *testing.T) {
			s := openSpool(t)
			env := newEnvelope("alice@example.org")
			env.LocalUID = localUID
			id, err := s.Enqueue(env, strings.NewReader("Subject: not yours\n\nsecret\n"))
			if err != nil {
				t.Fatal(err)
			}
			env.Hold = true // an updated entry: env/ID too
			if err := s.Update(env); err != nil {
				t.Fatal(err)
			}
			before := spoolFiles(t, s)
			name := dropName(id)
			writeDrop(t, s, name)

			var log logLines
			n, err := s.Pickup(log.logf)
			if err != nil || n != 1 {
				t.Fatalf("Pickup = %d, %v; want 1 (log: %s)", n, err, log.String())
			}
			after := spoolFiles(t, s)
			for p, data := range before {
				if after[p] != data {
					t.Errorf("%s = %q after Pickup, want it unchanged: %q", p, after[p], data)
				}
			}
			ids, err := s.IDs()
			if err != nil || len(ids) != 2 {
				t.Fatalf("IDs() = %q, %v; want the entry and the drop's", ids, err)
			}
			fresh := ids[0]
			if fresh == id {
				fresh = ids[1]
			}
			got, err := s.Load(fresh)
			if err != nil || got.From != "cron@host.example.org" || got.LocalUID != strconv.Itoa(os.Geteuid()) {
				t.Errorf("Load(%s) = %+v, %v; want the drop's envelope", fresh, got, err)
			}
			if names := dirNames(t, s.dropDir); len(names) != 0 {
				t.Errorf("maildrop/ holds %q after Pickup, want nothing", names)
			}
			if !strings.Contains(log.String(), "id="+fresh+" status=queued") || !strings.Contains(log.String(), id+" belongs to another") {
				t.Errorf("log = %q, want the drop queued as %s, saying %s was taken", log.String(), fresh, id)
			}
		})
	}
}

// TestPickupAfterFailureFinishesQueuedDrops: once a drop cannot be queued
// (here: the spool cannot read an envelope), Pickup queues no more drops,
// but still removes those that are queued already, before the runner's scan
// can deliver their entries.
func TestPickupAfterFailureFinishesQueuedDrops(t *testing.T) {
	s := openSpool(t)
	now := time.Now()
	var names [3]string
	for i := range names {
		id, err := newID(now.Add(time.Duration(i) * time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		names[i] = dropName(id)
		writeDrop(t, s, names[i])
	}
	failing, queued, fresh := names[0], names[1], names[2]
	// env/ID as a directory: reading it fails, as an I/O error would.
	if err := os.Mkdir(s.envPath(failing[:IDLen]), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.importDrop(queued, true); err != nil {
		t.Fatal(err)
	}

	var log logLines
	n, err := s.Pickup(log.logf)
	if n != 0 || !IsTemporary(err) {
		t.Errorf("Pickup = %d, %v; want 0 and the temporary failure (log: %s)", n, err, log.String())
	}
	if left := dirNames(t, s.dropDir); len(left) != 2 || left[0] != failing || left[1] != fresh {
		t.Errorf("maildrop/ holds %q, want the failed drop and the one not queued yet", left)
	}
	if ids, _ := s.IDs(); len(ids) != 1 || ids[0] != queued[:IDLen] {
		t.Errorf("IDs() = %q, want only [%s]", ids, queued[:IDLen])
	}
	for _, want := range []string{"drop=" + failing + " uid=", "status=deferred", "drop=" + queued + " uid=", "status=already-queued"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log = %q, want %q", log.String(), want)
		}
	}
	if strings.Contains(log.String(), fresh) {
		t.Errorf("log = %q mentions %s, which waits for the next Pickup", log.String(), fresh)
	}

	if err := os.Remove(s.envPath(failing[:IDLen])); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Pickup(log.logf); n != 2 || err != nil {
		t.Errorf("Pickup once the failure is gone = %d, %v; want 2 (log: %s)", n, err, log.String())
	}
	if ids, _ := s.IDs(); len(ids) != 3 {
		t.Errorf("IDs() = %q, want 3 entries", ids)
	}
}

// TestEnqueueAsNeverRenumbers: with its ID taken, by an entry or by the
// envelope a removal left, enqueueAs fails with fs.ErrExist, leaves
// nothing behind and changes nothing; the same code with renumbering (what
// Enqueue does) commits the entry under a fresh ID.
func TestEnqueueAsNeverRenumbers(t *testing.T) {
	for _, ghost := range []bool{false, true} {
		t.Run("ghost="+strconv.FormatBool(ghost), func(t *testing.T) {
			s := openSpool(t)
			first := enqueue(t, s, "first\n")
			taken := first.ID
			if ghost {
				// Only env/ID, as a Remove that crashed half way leaves it.
				first.Hold = true
				if err := s.Update(first); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(s.queuePath(taken)); err != nil {
					t.Fatal(err)
				}
			}
			before := spoolFiles(t, s)
			env := newEnvelope("mallory@example.org")
			id, err := s.enqueueAs(taken, env, strings.NewReader("replacement\n"))
			if !errors.Is(err, fs.ErrExist) || id != "" || IsTemporary(err) {
				t.Errorf("enqueueAs(%s) = %q, %v; want fs.ErrExist", taken, id, err)
			}
			if after := spoolFiles(t, s); !maps.Equal(after, before) {
				t.Errorf("enqueueAs(%s) changed the spool from %q to %q", taken, before, after)
			}

			id, err = s.enqueue(env, strings.NewReader("renumbered\n"), taken, time.Now().UTC(), true)
			if err != nil || id == taken || !ValidID(id) {
				t.Fatalf("enqueue(%s) with renumbering = %q, %v; want a fresh ID", taken, id, err)
			}
			if m := readMessage(t, s, id); m != "renumbered\n" {
				t.Errorf("message of %s = %q", id, m)
			}
			after := spoolFiles(t, s)
			for p, data := range before {
				if after[p] != data {
					t.Errorf("%s = %q after enqueue, want it unchanged: %q", p, after[p], data)
				}
			}
		})
	}
	s := openSpool(t)
	if _, err := s.enqueueAs("../env/x", newEnvelope("a@example.org"), strings.NewReader("x\n")); !errors.Is(err, ErrInvalid) {
		t.Errorf("enqueueAs(%q) = %v, want ErrInvalid", "../env/x", err)
	}
}
