package queuestats

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAddAndSince(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stats")
	r := NewRecorder(dir)
	defer r.Close()
	base := time.Date(2026, 11, 22, 9, 50, 0, 0, time.UTC)
	adds := []struct {
		at             time.Duration
		status, domain string
	}{
		{0, Delivered, "example.org"},
		{time.Minute, Deferred, "far.example"},
		{15 * time.Minute, Delivered, "example.org"}, // 10:05, the next hour's file
		{20 * time.Minute, Bounced, "far.example"},
		{21 * time.Minute, Delivered, ""},
	}
	for _, a := range adds {
		if err := r.Add(base.Add(a.at), a.status, a.domain); err != nil {
			t.Fatalf("Add(%s, %s): %v", a.status, a.domain, err)
		}
	}
	names, err := hourFiles(dir)
	if err != nil || !slices.Equal(names, []string{"2026112209", "2026112210"}) {
		t.Fatalf("hour files %v, %v; want 2026112209 and 2026112210", names, err)
	}
	tests := []struct {
		name  string
		since time.Time
		want  Tally
		far   Tally
	}{
		{"all", base, Tally{Delivered: 3, Deferred: 1, Bounced: 1}, Tally{Deferred: 1, Bounced: 1}},
		{"from the second outcome", base.Add(time.Minute), Tally{Delivered: 2, Deferred: 1, Bounced: 1}, Tally{Deferred: 1, Bounced: 1}},
		{"next hour only", base.Add(15 * time.Minute), Tally{Delivered: 2, Bounced: 1}, Tally{Bounced: 1}},
		{"after everything", base.Add(time.Hour), Tally{}, Tally{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Since(dir, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			if c.Tally != tt.want || c.Skipped != 0 {
				t.Errorf("Since(%v) = %+v, skipped %d; want %+v", tt.since, c.Tally, c.Skipped, tt.want)
			}
			var far Tally
			if p := c.ByDomain["far.example"]; p != nil {
				far = *p
			}
			if far != tt.far {
				t.Errorf("Since(%v) far.example = %+v, want %+v", tt.since, far, tt.far)
			}
		})
	}
	c, _ := Since(dir, base)
	if p := c.ByDomain["-"]; p == nil || p.Delivered != 1 {
		t.Errorf("outcome without a domain counted as %+v under \"-\", want 1 delivered", p)
	}
}

func TestSinceReadsWhatAnotherRecorderWrote(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i := range 3 {
		r := NewRecorder(dir)
		if err := r.Add(now, Delivered, fmt.Sprintf("d%d.example", i)); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	c, err := Since(dir, now.Add(-time.Hour))
	if err != nil || c.Delivered != 3 || len(c.ByDomain) != 3 {
		t.Errorf("Since = %+v, %v; want 3 delivered to 3 domains, appended by 3 recorders", c, err)
	}
}

func TestTornAndForeignLinesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	content := fmt.Sprintf("%d delivered example.org\n%d bou", now.Unix(), now.Unix())
	if err := os.WriteFile(filepath.Join(dir, "2026112209"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not an hour file: ignored.
	os.WriteFile(filepath.Join(dir, "notes"), []byte("x\n"), 0o600)
	r := NewRecorder(dir)
	defer r.Close()
	if err := r.Add(now, Deferred, "far.example"); err != nil {
		t.Fatal(err)
	}
	c, err := Since(dir, now.Add(-time.Hour))
	// The torn line is skipped; the one appended after it counts.
	if err != nil || c.Tally != (Tally{Delivered: 1, Deferred: 1}) || c.Skipped != 1 {
		t.Errorf("Since = %+v, %v; want 1 delivered, 1 deferred and the torn line skipped", c, err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	old := now.Add(-Keep - time.Hour).Format(hourFormat)
	kept := now.Add(-Keep + time.Hour).Format(hourFormat)
	for _, name := range []string{old, kept} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	r := NewRecorder(dir)
	defer r.Close()
	if err := r.Add(now, Delivered, "example.org"); err != nil {
		t.Fatal(err)
	}
	names, _ := hourFiles(dir)
	if !slices.Equal(names, []string{kept, "2026112209"}) {
		t.Errorf("after the hour's first outcome, files %v; want %s removed, %s kept", names, old, kept)
	}
}

func TestAddRefuses(t *testing.T) {
	r := NewRecorder(t.TempDir())
	defer r.Close()
	for _, tt := range []struct{ status, domain string }{
		{"sent", "example.org"},
		{Delivered, "exa mple.org"},
		{Delivered, "example.org\n1 bounced x"},
	} {
		if err := r.Add(time.Now(), tt.status, tt.domain); err == nil {
			t.Errorf("Add(%q, %q) = nil, want an error", tt.status, tt.domain)
		}
	}
}

func TestOutcomeLogsFailureOnce(t *testing.T) {
	parent := t.TempDir()
	// A file where the directory should be: every Add fails.
	dir := filepath.Join(parent, "stats")
	os.WriteFile(dir, nil, 0o600)
	r := NewRecorder(dir)
	var logged []string
	r.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	r.Outcome("bob@far.example", Delivered)
	r.Outcome("bob@far.example", Delivered)
	if len(logged) != 1 || !strings.HasPrefix(logged[0], "event=stats status=failed error=") {
		t.Errorf("logged %q; want one event=stats line", logged)
	}
}

func TestDomain(t *testing.T) {
	for in, want := range map[string]string{
		"bob@Far.Example": "far.example",
		`"a@b"@x.example`: "x.example",
		"postmaster":      "",
	} {
		if got := Domain(in); got != want {
			t.Errorf("Domain(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseRecord: what parseRecord accepts is exactly what String writes.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"1795327200 delivered example.org", "1 bounced -", "x deferred a", "1 sent a", "1  a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		rec, ok := parseRecord(line)
		if ok && rec.String() != line+"\n" {
			t.Errorf("parseRecord(%q) = %+v, which writes %q", line, rec, rec.String())
		}
	})
}
