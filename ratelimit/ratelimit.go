// Package ratelimit counts events, such as the connections of one client
// address or the messages of one user, against a rate that every process
// using the same directory shares. smtpd run by inetd, tcpserver or
// systemd's Accept=yes is one process per connection, so the counts live
// on disk, not in memory.
//
// # The rate
//
// A Limiter allows Limit events per Window for each key, as the generic
// cell rate algorithm (GCRA, a token bucket kept as one time stamp): a key
// that has been quiet for a Window may have Limit events at once; after
// that one more every Window/Limit. A refused event is not counted, so a
// client that keeps trying is let in again as soon as the rate allows.
//
// # On disk
//
// Each Limiter has a directory of its own (smtpd uses
// ROOT/spool/ratelimit/connections and ROOT/spool/ratelimit/messages):
//
//	DIR/.lock    flock(2)ed by the process reading or writing any entry
//	DIR/.swept   when expired entries were last removed and how many entries
//	             there are: two decimal numbers (Unix nanoseconds, count)
//	DIR/KEY      one entry: the key's theoretical arrival time (TAT) in
//	             Unix nanoseconds, in decimal, and a newline
//
// The file name of an entry is the key itself when it is at most 200
// octets of letters, digits and "@._+:-" not starting with '.', else "="
// and 40 hexadecimal digits of the key's SHA-256 (see EntryName). Entries
// are written in place and never fsynced: a counter lost to a crash, or
// garbled by one (it then reads as absent), only lets a few more events
// through.
//
// An entry whose TAT has passed means the same as no entry. Whichever
// process first finds the last sweep a Window old (when adding a new key)
// removes the expired entries, so the directory holds only keys active in
// the last two Windows or so, and at most
// MaxEntries of them: a new key while the table is full is allowed without
// being counted (Take returns ErrFull), until the next sweep makes room.
//
// Every failure (a directory that cannot be written, a lock held too long)
// allows the event and returns the error for the caller to log: a broken
// counter must not stop mail.
package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/postkit/postkit/safefile"
)

// Defaults of the Limiter fields left zero.
const (
	DefaultMaxEntries  = 10000
	DefaultLockTimeout = 5 * time.Second
)

// ErrFull is returned, with an allowing Decision, for a new key when the
// table already holds MaxEntries live entries.
var ErrFull = errors.New("ratelimit: table full")

// Limiter is one rate over one directory. The zero Limit (or less) allows
// everything and touches no file.
type Limiter struct {
	Dir    string
	Limit  int
	Window time.Duration
	// MaxEntries bounds the entries in Dir; 0 means DefaultMaxEntries.
	MaxEntries int
	// LockTimeout bounds the wait for Dir/.lock; 0 means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Decision is the answer for one event.
type Decision struct {
	Allowed bool
	// RetryAfter is, for a refused event, how long until one more event
	// of the key would be allowed.
	RetryAfter time.Duration
}

var allow = Decision{Allowed: true}

// Take counts an event of key if the rate allows it, and says whether it
// does.
func (l *Limiter) Take(key string) (Decision, error) {
	return l.decide(key, true)
}

// Peek says whether an event of key would be allowed now, counting
// nothing.
func (l *Limiter) Peek(key string) (Decision, error) {
	return l.decide(key, false)
}

func (l *Limiter) decide(key string, take bool) (Decision, error) {
	if l.Limit < 1 {
		return allow, nil
	}
	if l.Window <= 0 {
		return allow, fmt.Errorf("ratelimit: %s: window %v is not positive", l.Dir, l.Window)
	}
	if key == "" {
		return allow, fmt.Errorf("ratelimit: %s: empty key", l.Dir)
	}
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return allow, fmt.Errorf("ratelimit: %w", err)
	}
	lock, err := safefile.LockFile(filepath.Join(l.Dir, ".lock"), orDefault(l.LockTimeout, DefaultLockTimeout))
	if err != nil {
		return allow, fmt.Errorf("ratelimit: %w", err)
	}
	defer lock.Unlock()

	path := filepath.Join(l.Dir, EntryName(key))
	data, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return allow, fmt.Errorf("ratelimit: %w", err)
	}
	tat, ok := ParseEntry(data)
	if !ok {
		tat = 0 // absent or garbled: a quiet key
	}
	d, next := gcra(now.UnixNano(), tat, l.Window.Nanoseconds(), int64(l.Limit))
	if !take || !d.Allowed {
		return d, nil
	}
	if !exists {
		full, err := l.sweep(now)
		if err != nil {
			return allow, err
		}
		if full {
			return allow, fmt.Errorf("%w: %s holds %d entries", ErrFull, l.Dir, l.maxEntries())
		}
	}
	if err := os.WriteFile(path, FormatEntry(next), 0o600); err != nil {
		return allow, fmt.Errorf("ratelimit: %w", err)
	}
	return d, nil
}

// gcra decides an event at now for a key whose theoretical arrival time is
// tat, with limit events per window (all in nanoseconds), and returns the
// new TAT to store if it is allowed. Each event moves the TAT on by the
// emission interval window/limit; an event is allowed while the TAT is at
// most window minus one interval ahead of now (the burst tolerance).
func gcra(now, tat, window, limit int64) (Decision, int64) {
	interval := max(window/limit, 1)
	tolerance := window - interval
	tat = max(tat, now)
	if ahead := tat - now; ahead > tolerance {
		return Decision{RetryAfter: time.Duration(ahead - tolerance)}, tat
	}
	return allow, tat + interval
}

func (l *Limiter) maxEntries() int { return orDefault(l.MaxEntries, DefaultMaxEntries) }

// sweep removes the expired entries when the last sweep is a Window old,
// and reports whether the table is full (for a new key). It runs under
// the lock. Entries are counted only when sweeping; in between, .swept
// keeps the count, one more for each new entry.
func (l *Limiter) sweep(now time.Time) (full bool, err error) {
	marker := filepath.Join(l.Dir, ".swept")
	data, err := os.ReadFile(marker)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("ratelimit: %w", err)
	}
	swept, count, ok := ParseSwept(data)
	if !ok || now.UnixNano()-swept >= l.Window.Nanoseconds() || now.UnixNano() < swept {
		if count, err = l.removeExpired(now); err != nil {
			return false, err
		}
		swept = now.UnixNano()
	}
	if count >= l.maxEntries() {
		// Recorded, so that the next new key does not sweep again.
		return true, writeSwept(marker, swept, count)
	}
	// The new entry is counted now; its write follows.
	return false, writeSwept(marker, swept, count+1)
}

func writeSwept(path string, swept int64, count int) error {
	if err := os.WriteFile(path, FormatSwept(swept, count), 0o600); err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}

// removeExpired removes the entries whose TAT has passed (and any file
// that is no entry) and returns how many are left.
func (l *Limiter) removeExpired(now time.Time) (int, error) {
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %w", err)
	}
	left := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(l.Dir, e.Name())
		if e.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if tat, ok := ParseEntry(data); err == nil && ok && tat > now.UnixNano() {
				left++
				continue
			}
		}
		if err := os.RemoveAll(path); err != nil {
			return 0, fmt.Errorf("ratelimit: %w", err)
		}
	}
	return left, nil
}

// ParseSwept reads .swept: the Unix time in nanoseconds of the last sweep
// and the number of entries, in decimal, separated by a space and ended by
// a newline.
func ParseSwept(data []byte) (swept int64, count int, ok bool) {
	a, b, found := strings.Cut(string(data), " ")
	if !found {
		return 0, 0, false
	}
	swept, ok = ParseEntry([]byte(a + "\n"))
	if !ok {
		return 0, 0, false
	}
	n, ok := ParseEntry([]byte(b))
	if !ok || n > 1<<31 {
		return 0, 0, false
	}
	return swept, int(n), true
}

// FormatSwept is the contents of .swept.
func FormatSwept(swept int64, count int) []byte {
	return []byte(fmt.Sprintf("%d %d\n", max(swept, 0), max(count, 0)))
}

// ParseEntry reads an entry file: a decimal Unix time in nanoseconds and a
// newline. ok is false for anything else (a missing or garbled entry).
func ParseEntry(data []byte) (tat int64, ok bool) {
	s, found := strings.CutSuffix(string(data), "\n")
	if !found || s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// FormatEntry is the contents of an entry file for tat.
func FormatEntry(tat int64) []byte {
	return []byte(strconv.FormatInt(max(tat, 0), 10) + "\n")
}

// maxNameKey is the longest key used as a file name as it is.
const maxNameKey = 200

// EntryName returns the file name of key's entry: key itself when it is
// made of letters, digits and "@._+:-", at most 200 octets and not
// starting with '.'; else "=" and 40 hex digits of its SHA-256. The name is
// always one safe path element.
func EntryName(key string) string {
	if plainKey(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "=" + hex.EncodeToString(sum[:20])
}

func plainKey(key string) bool {
	if key == "" || len(key) > maxNameKey || key[0] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("@._+:-", c) >= 0) {
			return false
		}
	}
	return true
}

// ClientKey is the key of a client address: an IPv4 address as it is, an
// IPv6 address as its /64 network ("2001:db8:1:2::"), since one host
// usually has a whole /64 to choose its addresses from.
func ClientKey(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.Addr().String()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
