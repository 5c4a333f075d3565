package imapcache

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/imapmsg"
)

// sampleEntries parses imapmsg's test messages into full entries.
func sampleEntries(t testing.TB) map[string]Entry {
	t.Helper()
	files, err := filepath.Glob("../imapmsg/testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	out := map[string]Entry{}
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := imapmsg.New(bytes.NewReader(data), int64(len(data)), -1)
		bs, err := m.BodyStructure()
		if err != nil {
			t.Fatal(err)
		}
		env, _ := m.Envelope()
		v, _ := m.VSize()
		key := fmt.Sprintf("17953%05d.M1P1Q%dR00.host,S=%d", i, i, len(data))
		out[key] = Entry{Size: int64(len(data)), VSize: v, InternalDate: time.Unix(1795336972, 123456789),
			Envelope: env, BodyStructure: bs}
	}
	return out
}

// encodeEntry is a canonical byte form of an entry, to compare entries.
func encodeEntry(e Entry) string {
	b := fmt.Appendf(nil, "%d %d %d|", e.Size, e.VSize, e.InternalDate.UnixNano())
	b = appendEnvelope(b, e.Envelope)
	if e.Envelope != nil {
		b = fmt.Appendf(b, "|%d", e.Envelope.Date.Unix())
	}
	b = append(b, '|')
	return string(appendBodyStructure(b, e.BodyStructure))
}

const all = FieldSize | FieldVSize | FieldInternalDate | FieldEnvelope | FieldBodyStructure

func TestCodecRoundTrip(t *testing.T) {
	for key, e := range sampleEntries(t) {
		env, err := decodeEnvelope(string(appendEnvelope(nil, e.Envelope)))
		if err != nil {
			t.Fatalf("%s: decodeEnvelope: %v", key, err)
		}
		bs, err := decodeBodyStructure(string(appendBodyStructure(nil, e.BodyStructure)))
		if err != nil {
			t.Fatalf("%s: decodeBodyStructure: %v", key, err)
		}
		got := e
		got.Envelope, got.BodyStructure = env, bs
		if encodeEntry(got) != encodeEntry(e) {
			t.Errorf("%s: entry changed in the round trip", key)
		}
		if !env.Date.Equal(e.Envelope.Date) {
			t.Errorf("%s: date %v, want %v", key, env.Date, e.Envelope.Date)
		}
		if _, off := env.Date.Zone(); !e.Envelope.Date.IsZero() && off != zoneOffset(e.Envelope.Date) {
			t.Errorf("%s: zone offset %d, want %d", key, off, zoneOffset(e.Envelope.Date))
		}
		// Every part keeps its extension data, which go-imap's writer
		// dereferences for BODYSTRUCTURE.
		bs.Walk(func(path []int, part imap.BodyStructure) bool {
			switch part := part.(type) {
			case *imap.BodyStructureSinglePart:
				if part.Extended == nil {
					t.Errorf("%s: part %v without extension data", key, path)
				}
			case *imap.BodyStructureMultiPart:
				if part.Extended == nil || len(part.Children) == 0 {
					t.Errorf("%s: multipart %v without extension data or parts", key, path)
				}
			}
			return true
		})
	}
}

func zoneOffset(t time.Time) int {
	_, off := t.Zone()
	return off
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	entries := sampleEntries(t)
	c := Open(dir)
	for key, e := range entries {
		c.Put(key, e, all)
	}
	// Pending entries are visible before Save.
	for key, e := range entries {
		got, have := c.Lookup(key, all)
		if have != all || encodeEntry(got) != encodeEntry(e) {
			t.Fatalf("pending Lookup(%s) = fields %b", key, have)
		}
	}
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d after Save", c.Pending())
	}
	fresh := Open(dir)
	for key, e := range entries {
		got, have := fresh.Lookup(key, all)
		if have != all {
			t.Errorf("Lookup(%s) fields %b, want %b", key, have, all)
		}
		if encodeEntry(got) != encodeEntry(e) {
			t.Errorf("Lookup(%s) differs from what was saved", key)
		}
	}
	for key := range entries {
		e, have := fresh.Lookup(key, FieldVSize|FieldEnvelope)
		if have != FieldVSize|FieldEnvelope || e.BodyStructure != nil || !e.InternalDate.IsZero() {
			t.Errorf("Lookup(%s, vsize|envelope) = fields %b, decoded more than asked", key, have)
		}
		break
	}
	if _, have := fresh.Lookup("absent", all); have != 0 {
		t.Errorf("Lookup(absent) fields %b", have)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Error(err)
	}
}

func TestFieldsMerge(t *testing.T) {
	dir := t.TempDir()
	a := Open(dir)
	a.Put("m1", Entry{Size: 10, VSize: 12}, FieldSize|FieldVSize)
	if err := a.Save(nil); err != nil {
		t.Fatal(err)
	}
	b := Open(dir)
	b.Put("m1", Entry{Envelope: &imap.Envelope{Subject: "hi"}}, FieldEnvelope)
	b.Put("m1", Entry{VSize: 13}, FieldVSize)
	if err := b.Save(nil); err != nil {
		t.Fatal(err)
	}
	e, have := Open(dir).Lookup("m1", all)
	if have != FieldSize|FieldVSize|FieldEnvelope || e.Size != 10 || e.VSize != 13 || e.Envelope.Subject != "hi" {
		t.Errorf("merged entry = %+v, fields %b", e, have)
	}
}

func writeMessage(t testing.TB, dir, name, msg string) string {
	t.Helper()
	p := filepath.Join(dir, "cur", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFill(t *testing.T) {
	dir := t.TempDir()
	msg := "Subject: filled\nFrom: a@example.org\nContent-Type: text/plain\n\nline\n"
	base := fmt.Sprintf("1795336972.M1P1Q1R0.host,S=%d,W=%d", len(msg), len(msg)+5)
	p := writeMessage(t, dir, base+":2,S", msg)
	mtime := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	c := Open(dir)
	e, err := c.Fill(base, p, FieldEnvelope)
	if err != nil {
		t.Fatal(err)
	}
	if e.Envelope.Subject != "filled" {
		t.Errorf("Envelope.Subject = %q", e.Envelope.Subject)
	}
	if _, have := c.Lookup(base, all); have != FieldSize|FieldEnvelope {
		t.Errorf("after Fill(envelope): fields %b, want size and envelope only", have)
	}
	e, err = c.Fill(base, p, FieldBodyStructure|FieldInternalDate)
	if err != nil {
		t.Fatal(err)
	}
	if e.VSize != int64(len(msg)+5) || !e.InternalDate.Equal(mtime) || e.BodyStructure.MediaType() != "text/plain" {
		t.Errorf("Fill = vsize %d, date %v, type %s", e.VSize, e.InternalDate, e.BodyStructure.MediaType())
	}
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	// Served from the cache: the file is not needed any more.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	e, err = Open(dir).Fill(base, p, all)
	if err != nil || e.Envelope.Subject != "filled" || e.Size != int64(len(msg)) {
		t.Errorf("Fill from the cache = %+v, %v", e, err)
	}
	if _, err := Open(dir).Fill("other", p, FieldEnvelope); err == nil {
		t.Error("Fill of a missing file without entry: no error")
	}
}

// TestStaleEntry: an entry whose sizes contradict its key is not served,
// and recomputing it replaces every field.
func TestStaleEntry(t *testing.T) {
	dir := t.TempDir()
	msg := "Subject: new\n\nbody\n"
	base := fmt.Sprintf("1.M1P1Q1R0.host,S=%d", len(msg))
	p := writeMessage(t, dir, base, msg)
	c := Open(dir)
	c.Put(base, Entry{Size: 999, VSize: 1001, Envelope: &imap.Envelope{Subject: "old"}}, FieldSize|FieldVSize|FieldEnvelope)
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	c = Open(dir)
	if _, have := c.Lookup(base, all); have != 0 {
		t.Errorf("stale entry served: fields %b", have)
	}
	e, err := c.Fill(base, p, FieldEnvelope)
	if err != nil || e.Envelope.Subject != "new" {
		t.Fatalf("Fill = %+v, %v", e, err)
	}
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	e, have := Open(dir).Lookup(base, all)
	if have&FieldVSize != 0 || e.Envelope.Subject != "new" || e.Size != int64(len(msg)) {
		t.Errorf("after recomputing: %+v, fields %b (the old vsize must be gone)", e, have)
	}
	// A key with W= is checked too.
	c.Put("2.M1.host,W=50", Entry{VSize: 49}, FieldVSize)
	if _, have := c.Lookup("2.M1.host,W=50", all); have != 0 {
		t.Errorf("entry with vsize 49 served for W=50")
	}
}

func TestDamagedFile(t *testing.T) {
	entries := sampleEntries(t)
	dir := t.TempDir()
	c := Open(dir)
	for key, e := range entries {
		c.Put(key, e, all)
	}
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	otherVersion := slices.Clone(good)
	otherVersion[7] = 2
	for name, data := range map[string][]byte{
		"flipped byte": flipped, "truncated": good[:len(good)-10], "empty": nil,
		"other version": otherVersion, "garbage": []byte("not a cache file at all"),
	} {
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := Open(dir)
		for key := range entries {
			if _, have := c.Lookup(key, all); have != 0 {
				t.Errorf("%s: Lookup(%s) served fields %b from a bad file", name, key, have)
			}
		}
		// The next Save rebuilds a valid file.
		c.Put("rebuilt", Entry{VSize: 7}, FieldVSize)
		if err := c.Save(nil); err != nil {
			t.Fatal(err)
		}
		if e, have := Open(dir).Lookup("rebuilt", all); have != FieldVSize || e.VSize != 7 {
			t.Errorf("%s: rebuilt file lacks the new entry", name)
		}
	}
}

func TestSavePrunes(t *testing.T) {
	dir := t.TempDir()
	c := Open(dir)
	for i := range 10 {
		c.Put(fmt.Sprint("m", i), Entry{VSize: int64(i)}, FieldVSize)
	}
	if err := c.Save(nil); err != nil {
		t.Fatal(err)
	}
	keep := func(base string) bool { return base != "m3" && base != "m7" }
	if err := Open(dir).Save(keep); err != nil {
		t.Fatal(err)
	}
	fresh := Open(dir)
	for i := range 10 {
		key := fmt.Sprint("m", i)
		_, have := fresh.Lookup(key, all)
		if want := keep(key); (have != 0) != want {
			t.Errorf("after pruning, %s present = %v, want %v", key, have != 0, want)
		}
	}
}

func TestRefresh(t *testing.T) {
	dir := t.TempDir()
	a, b := Open(dir), Open(dir)
	if _, have := a.Lookup("x", all); have != 0 {
		t.Fatal("entry in an empty cache")
	}
	b.Put("x", Entry{VSize: 3}, FieldVSize)
	if err := b.Save(nil); err != nil {
		t.Fatal(err)
	}
	a.Refresh()
	if e, have := a.Lookup("x", all); have != FieldVSize || e.VSize != 3 {
		t.Errorf("after Refresh: %+v, fields %b", e, have)
	}
}

// TestConcurrentWriters: Caches of the same folder saving at the same
// time lose no entry.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	const writers, rounds, per = 4, 5, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Open(dir)
			for r := range rounds {
				for i := range per {
					c.Put(fmt.Sprintf("w%d-r%d-%d", w, r, i), Entry{VSize: int64(i)}, FieldVSize)
				}
				if err := c.Save(nil); err != nil {
					t.Error(err)
				}
				// A reader in between never sees a partial file.
				if _, have := Open(dir).Lookup(fmt.Sprintf("w%d-r%d-0", w, r), all); have == 0 {
					t.Errorf("writer %d round %d: own entry missing right after Save", w, r)
				}
			}
		}()
	}
	wg.Wait()
	c := Open(dir)
	for w := range writers {
		for r := range rounds {
			for i := range per {
				if e, have := c.Lookup(fmt.Sprintf("w%d-r%d-%d", w, r, i), all); have != FieldVSize || e.VSize != int64(i) {
					t.Fatalf("entry w%d-r%d-%d lost", w, r, i)
				}
			}
		}
	}
}

// TestTwoProcesses runs this test binary twice at once as writers of the
// same folder (TestWriterProcess) and checks that no entry is lost.
func TestTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for p := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriterProcess$")
		cmd.Env = append(os.Environ(), "IMAPCACHE_WRITER_DIR="+dir, "IMAPCACHE_WRITER_ID="+strconv.Itoa(p))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("writer %d output:\n%s", p, out.String())
			}
		})
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	c := Open(dir)
	for p := range 2 {
		for r := range 20 {
			for i := range 10 {
				if _, have := c.Lookup(fmt.Sprintf("p%d-%d-%d", p, r, i), all); have == 0 {
					t.Fatalf("entry p%d-%d-%d lost", p, r, i)
				}
			}
		}
	}
}

// TestWriterProcess is TestTwoProcesses's child; it does nothing when run
// on its own.
func TestWriterProcess(t *testing.T) {
	dir := os.Getenv("IMAPCACHE_WRITER_DIR")
	if dir == "" {
		return
	}
	id := os.Getenv("IMAPCACHE_WRITER_ID")
	c := Open(dir)
	for r := range 20 {
		for i := range 10 {
			c.Put(fmt.Sprintf("p%s-%d-%d", id, r, i), Entry{VSize: int64(i), Envelope: &imap.Envelope{Subject: strings.Repeat("s", r)}}, FieldVSize|FieldEnvelope)
		}
		if err := c.Save(nil); err != nil {
			t.Fatal(err)
		}
	}
}
