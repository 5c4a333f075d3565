// Package queuestats keeps the queue runner's recent delivery outcomes on
// disk, so that `sendq stats`, a separate process, can tell how many
// deliveries and failures the last hour saw, across runner restarts.
//
// # Format
//
// The outcomes are in SPOOL/stats/ (mode 0700), one file per UTC hour
// named YYYYMMDDHH (mode 0600). The runner appends one line per recipient
// outcome, the one it logs:
//
//	1795327200 delivered example.org
//	1795327201 deferred far.example
//
// that is the Unix time in seconds, the status (delivered, deferred or
// bounced) and the recipient's domain in lower case, separated by single
// spaces. Each line is one write(2) on a file opened with O_APPEND, and is
// not fsynced: statistics are not worth a disk flush per delivery, and a
// crash at worst loses the last lines or leaves a torn one, which readers
// skip. When the runner moves on to the next hour's file it removes the
// files older than Keep. Nothing else writes there; deleting the directory
// only resets the counts.
package queuestats

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Keep is how long hour files are kept.
const Keep = 24 * time.Hour

// Statuses a Recorder counts: those of the runner's outcome log lines.
const (
	Delivered = "delivered"
	Deferred  = "deferred"
	Bounced   = "bounced"
)

// hourFormat names the file of an hour (UTC).
const hourFormat = "2006010215"

// Dir returns the statistics directory of the spool in spoolDir.
func Dir(spoolDir string) string { return filepath.Join(spoolDir, "stats") }

// Recorder appends outcomes to the hour files of one directory. It is safe
// for concurrent use; only one process (the queue runner, which holds the
// spool's runner lock) should record at a time.
type Recorder struct {
	dir string
	// Logf reports the first failure to record (later ones are
	// dropped until recording works again); nil logs nothing.
	Logf func(format string, args ...any)

	mu      sync.Mutex
	f       *os.File
	hour    string
	failing bool
}

// NewRecorder returns a Recorder writing into dir, which it creates when it
// first records.
func NewRecorder(dir string) *Recorder { return &Recorder{dir: dir} }

// Outcome records a recipient's outcome now; its signature is that of
// queue.Config's Outcome. Failures are logged through Logf, never returned:
// statistics must not stand in the way of delivery.
func (r *Recorder) Outcome(rcpt, status string) {
	err := r.Add(time.Now(), status, Domain(rcpt))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && !r.failing && r.Logf != nil {
		r.Logf("event=stats status=failed error=%q", err)
	}
	r.failing = err != nil
}

// Add records one outcome at time now.
func (r *Recorder) Add(now time.Time, status, domain string) error {
	line := record{now.Unix(), status, domain}.String()
	if line == "" {
		return fmt.Errorf("queuestats: status %q or domain %q cannot be recorded", status, domain)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	hour := now.UTC().Format(hourFormat)
	if r.f == nil || hour != r.hour {
		if err := r.open(now, hour); err != nil {
			return err
		}
	}
	if _, err := r.f.WriteString(line); err != nil {
		return fmt.Errorf("queuestats: %w", err)
	}
	return nil
}

// open switches to the file of hour, and removes the files older than
// Keep.
func (r *Recorder) open(now time.Time, hour string) error {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	if err := os.Mkdir(r.dir, 0o700); err == nil {
		giveToParentOwner(r.dir)
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("queuestats: %w", err)
	}
	p := filepath.Join(r.dir, hour)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("queuestats: %w", err)
	}
	giveToParentOwner(p)
	endLine(f)
	r.f, r.hour = f, hour
	r.prune(now)
	return nil
}

// endLine ends a line torn by a crash of the last writer of f, so that
// only that line is lost and not also the next one.
func endLine(f *os.File) {
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err == nil && last[0] != '\n' {
		f.WriteString("\n")
	}
}

// prune removes hour files older than Keep; a failure is retried at the
// next hour.
func (r *Recorder) prune(now time.Time) {
	oldest := now.Add(-Keep).UTC().Format(hourFormat)
	names, _ := hourFiles(r.dir)
	for _, name := range names {
		if name < oldest {
			os.Remove(filepath.Join(r.dir, name))
		}
	}
}

// Close closes the current hour file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// giveToParentOwner gives p to the owner of its directory when running as
// root, so that the spool's owner, who runs the queue runner, can go on
// writing after root ran it once (as the spool package does).
func giveToParentOwner(p string) {
	if os.Geteuid() != 0 {
		return
	}
	info, err := os.Stat(filepath.Dir(p))
	if err != nil {
		return
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		os.Lchown(p, int(st.Uid), int(st.Gid))
	}
}

// Domain returns the lower-cased domain of an address, "" if it has none.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// record is one line of an hour file.
type record struct {
	unix           int64
	status, domain string
}

// String is the record's line with its newline, or "" if it cannot be
// written (an unknown status, or a domain that would break the line).
func (rec record) String() string {
	switch rec.status {
	case Delivered, Deferred, Bounced:
	default:
		return ""
	}
	d := rec.domain
	if d == "" {
		d = "-"
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c <= ' ' || c >= 0x7f {
			return ""
		}
	}
	return strconv.FormatInt(rec.unix, 10) + " " + rec.status + " " + d + "\n"
}

// parseRecord reads one line (without its newline).
func parseRecord(line string) (record, bool) {
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return record{}, false
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	rec := record{n, f[1], f[2]}
	if err != nil || rec.String() != line+"\n" {
		return record{}, false
	}
	return rec, true
}

// Tally is the number of outcomes of each status.
type Tally struct {
	Delivered, Deferred, Bounced int
}

func (t *Tally) add(status string) {
	switch status {
	case Delivered:
		t.Delivered++
	case Deferred:
		t.Deferred++
	case Bounced:
		t.Bounced++
	}
}

// Counts are the outcomes recorded in a span of time.
type Counts struct {
	Tally
	// ByDomain is the tally of each recipient domain ("-" for none).
	ByDomain map[string]*Tally
	// Skipped counts lines that could not be read (torn by a crash).
	Skipped int
}

// Since counts the outcomes in dir recorded at or after since. A missing
// directory counts nothing.
func Since(dir string, since time.Time) (Counts, error) {
	c := Counts{ByDomain: map[string]*Tally{}}
	names, err := hourFiles(dir)
	if err != nil {
		return c, err
	}
	first := since.UTC().Format(hourFormat)
	for _, name := range names {
		if name < first {
			continue
		}
		if err := c.read(filepath.Join(dir, name), since.Unix()); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Counts) read(p string, since int64) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // pruned since the listing
	}
	if err != nil {
		return fmt.Errorf("queuestats: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rec, ok := parseRecord(sc.Text())
		if !ok {
			c.Skipped++
			continue
		}
		if rec.unix < since {
			continue
		}
		c.add(rec.status)
		t := c.ByDomain[rec.domain]
		if t == nil {
			t = &Tally{}
			c.ByDomain[rec.domain] = t
		}
		t.add(rec.status)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("queuestats: %s: %w", p, err)
	}
	return nil
}

// hourFiles lists the hour files of dir in time order.
func hourFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("queuestats: %w", err)
	}
	var names []string
	for _, e := range entries {
		if _, err := time.Parse(hourFormat, e.Name()); err == nil && len(e.Name()) == len(hourFormat) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
