// Package aliases reads and writes etc/aliases, which maps addresses of
// local domains to other addresses.
//
// One alias per line, a key, ':' and a comma-separated list of targets:
//
//	sales@example.org: alice@example.org, bob@example.org
//	@example.org: alice@example.org
//
// The key is local@domain, or @domain for a catch-all that takes mail for
// every address of the domain that is neither a user nor another alias.
// Targets are full addresses and may be remote (mail to them is forwarded).
// Keys and targets compare case-insensitively; a key may appear once. Lines
// starting with '#' and blank lines are comments. When the file is rewritten
// comments and unchanged lines are kept byte for byte; changed and new aliases
// are written as "key: target, target".
//
// Writers go through Update, which holds an flock on PATH.lock while it
// reads, changes and atomically replaces the file, so concurrent writers never
// lose each other's changes and readers never see a partial file.
package aliases

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/postkit/postkit/safefile"
)

// ErrNotFound is wrapped by errors for an alias or target that is not there.
var ErrNotFound = errors.New("not found")

// ErrMalformed is wrapped by errors for lines that cannot be parsed; the
// error names file:line.
var ErrMalformed = errors.New("malformed line")

// Alias is one line of the table.
type Alias struct {
	Key     string   // local@domain, or @domain for a catch-all
	Targets []string // where mail to Key goes
}

type line struct {
	raw string // as read; empty for new and changed aliases, which are rebuilt
	a   *Alias // nil for comments and blank lines
}

// Table is the contents of etc/aliases.
type Table struct {
	lines []line
	index map[string]int // lower-cased key -> position in lines
}

// Load reads the aliases file at path. A missing file is an empty table.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Parse(nil, path)
	}
	if err != nil {
		return nil, fmt.Errorf("aliases: %w", err)
	}
	return Parse(data, path)
}

// Parse parses the contents of an aliases file; name is used in errors.
func Parse(data []byte, name string) (*Table, error) {
	t := &Table{index: map[string]int{}}
	var raws []string
	if len(data) > 0 {
		raws = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	for n, raw := range raws {
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' {
			t.lines = append(t.lines, line{raw: raw})
			continue
		}
		a, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("aliases: %s:%d: %w: %w", name, n+1, ErrMalformed, err)
		}
		key := strings.ToLower(a.Key)
		if prev, dup := t.index[key]; dup {
			// While parsing, lines and file lines correspond one to one.
			return nil, fmt.Errorf("aliases: %s:%d: %w: %s is already on line %d; merge the two", name, n+1, ErrMalformed, a.Key, prev+1)
		}
		t.index[key] = len(t.lines)
		t.lines = append(t.lines, line{raw: raw, a: a})
	}
	return t, nil
}

func parseLine(text string) (*Alias, error) {
	i := strings.IndexByte(text, ':')
	if i < 0 {
		return nil, errors.New("want key: target, target; found no ':'")
	}
	a := &Alias{Key: strings.TrimSpace(text[:i])}
	if err := CheckKey(a.Key); err != nil {
		return nil, err
	}
	for t := range strings.SplitSeq(text[i+1:], ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue // tolerate "a, , b" and a trailing comma
		}
		if err := CheckTarget(t); err != nil {
			return nil, err
		}
		a.Targets = append(a.Targets, t)
	}
	if len(a.Targets) == 0 {
		return nil, fmt.Errorf("alias %s has no targets", a.Key)
	}
	return a, nil
}

// CheckKey checks an alias key's form: local@domain or @domain, with no
// white space, ',', ':' or control characters. Whether the domain is local
// and the local part valid is the caller's business.
func CheckKey(key string) error {
	at := strings.LastIndexByte(key, '@')
	if at < 0 || at == len(key)-1 {
		return fmt.Errorf("alias %q is not local@domain or @domain", key)
	}
	if key[0] == '#' {
		return fmt.Errorf("alias %q starts with '#', which makes its line a comment", key)
	}
	return checkChars(key)
}

// CheckTarget checks a target's form: local@domain with both parts present.
func CheckTarget(target string) error {
	at := strings.LastIndexByte(target, '@')
	if at <= 0 || at == len(target)-1 {
		return fmt.Errorf("target %q is not local@domain", target)
	}
	return checkChars(target)
}

func checkChars(s string) error {
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == ',' || r == ':' {
			return fmt.Errorf("%q contains white space, ',', ':' or a control character", s)
		}
	}
	return nil
}

// Lookup returns the targets of key (local@domain or @domain), compared
// case-insensitively. It does not fall back to the catch-all: callers look
// up "@domain" themselves after the exact address.
func (t *Table) Lookup(key string) ([]string, bool) {
	i, ok := t.index[strings.ToLower(key)]
	if !ok {
		return nil, false
	}
	return append([]string(nil), t.lines[i].a.Targets...), true
}

// All returns every alias, sorted by lower-cased key.
func (t *Table) All() []Alias {
	var all []Alias
	for _, l := range t.lines {
		if l.a != nil {
			all = append(all, Alias{Key: l.a.Key, Targets: append([]string(nil), l.a.Targets...)})
		}
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Key) < strings.ToLower(all[j].Key) })
	return all
}

// Domains returns the lower-cased domains of all alias keys, sorted, each once.
func (t *Table) Domains() []string {
	seen := map[string]bool{}
	var ds []string
	for _, l := range t.lines {
		if l.a == nil {
			continue
		}
		d := strings.ToLower(l.a.Key[strings.LastIndexByte(l.a.Key, '@')+1:])
		if !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	sort.Strings(ds)
	return ds
}

// Add adds targets to the alias key, creating it if needed. Targets it
// already has (in any case) are not added twice.
func (t *Table) Add(key string, targets ...string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("aliases: %w", err)
	}
	if len(targets) == 0 {
		return fmt.Errorf("aliases: alias %s needs at least one target", key)
	}
	for _, tg := range targets {
		if err := CheckTarget(tg); err != nil {
			return fmt.Errorf("aliases: %w", err)
		}
	}
	i, ok := t.index[strings.ToLower(key)]
	if !ok {
		i = len(t.lines)
		t.index[strings.ToLower(key)] = i
		t.lines = append(t.lines, line{a: &Alias{Key: key}})
	}
	a := t.lines[i].a
	for _, tg := range targets {
		if indexFold(a.Targets, tg) < 0 {
			a.Targets = append(a.Targets, tg)
			t.lines[i].raw = ""
		}
	}
	return nil
}

// Remove removes targets from the alias key; with no targets, or when none
// is left, the whole alias goes. A target the alias does not have is an
// error wrapping ErrNotFound, and then nothing is removed.
func (t *Table) Remove(key string, targets ...string) error {
	i, ok := t.index[strings.ToLower(key)]
	if !ok {
		return fmt.Errorf("aliases: alias %s: %w", key, ErrNotFound)
	}
	a := t.lines[i].a
	kept := append([]string(nil), a.Targets...)
	for _, tg := range targets {
		j := indexFold(kept, tg)
		if j < 0 {
			return fmt.Errorf("aliases: alias %s has no target %s: %w", key, tg, ErrNotFound)
		}
		kept = append(kept[:j], kept[j+1:]...)
	}
	if len(targets) > 0 && len(kept) > 0 {
		a.Targets = kept
		t.lines[i].raw = ""
		return nil
	}
	t.lines = append(t.lines[:i], t.lines[i+1:]...)
	delete(t.index, strings.ToLower(key))
	for k, j := range t.index {
		if j > i {
			t.index[k] = j - 1
		}
	}
	return nil
}

func indexFold(list []string, s string) int {
	for i, x := range list {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

// Marshal returns the file contents, each line ending in '\n'.
func (t *Table) Marshal() []byte {
	var b strings.Builder
	for _, l := range t.lines {
		if l.a == nil || l.raw != "" {
			b.WriteString(l.raw)
		} else {
			b.WriteString(l.a.Key + ": " + strings.Join(l.a.Targets, ", "))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// LockTimeout is how long Update waits for another writer's lock before
// failing with an error that wraps safefile.ErrLockTimeout.
var LockTimeout = 10 * time.Second

// fileMode is the mode of a new aliases file.
const fileMode = 0o640

// Update changes the file at path under its lock: it takes an flock on
// path+".lock" (waiting up to LockTimeout), reads the file afresh, calls fn,
// and if fn returns nil atomically replaces the file with the result. An
// error from fn is returned unchanged and nothing is written. A rewritten
// file keeps the old one's mode and, where allowed, owner and group.
func Update(path string, fn func(t *Table) error) error {
	var fnErr error
	err := safefile.Update(path, fileMode, LockTimeout, func(old []byte) ([]byte, error) {
		t, err := Parse(old, path)
		if err != nil {
			fnErr = err
			return nil, err
		}
		if err := fn(t); err != nil {
			fnErr = err
			return nil, err
		}
		return t.Marshal(), nil
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("aliases: %w", err)
	}
	return err
}
