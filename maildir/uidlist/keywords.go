package uidlist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// KeywordsFileName is the name of the file that gives the keyword letters
// of a Maildir folder their names.
const KeywordsFileName = "dovecot-keywords"

// MaxKeywords is how many keywords a folder can have: one per letter a-z.
const MaxKeywords = 26

// ErrTooManyKeywords is returned when a folder already has MaxKeywords
// keywords and another is to be added.
var ErrTooManyKeywords = errors.New("uidlist: no keyword letters left")

// ErrInvalidKeyword is wrapped by the errors for keyword names that cannot
// be stored.
var ErrInvalidKeyword = errors.New("uidlist: invalid keyword")

// Keywords is a folder's dovecot-keywords table: Names[i] is the keyword
// that the flag letter 'a'+i stands for in file names, "" if none.
type Keywords struct {
	Names [MaxKeywords]string
}

// ParseKeywords parses a dovecot-keywords file as Dovecot does: each line
// is an index 0-25, one space, and the keyword name (the rest of the line).
// Lines that do not fit are skipped, as is an unterminated last line; a
// later line for the same index wins. It never fails.
func ParseKeywords(data []byte) *Keywords {
	k := &Keywords{}
	lines, _ := splitLines(data)
	for _, line := range lines {
		idx, name, ok := strings.Cut(line, " ")
		if !ok || name == "" {
			continue
		}
		i, err := parseUint32(idx)
		if err != nil || i >= MaxKeywords {
			continue
		}
		k.Names[i] = name
	}
	return k
}

// Marshal returns the table in the dovecot-keywords format, one line
// "<index> <name>" per keyword in index order.
func (k *Keywords) Marshal() []byte {
	var b strings.Builder
	for i, name := range k.Names {
		if name != "" {
			b.WriteString(strconv.Itoa(i) + " " + name + "\n")
		}
	}
	return []byte(b.String())
}

// Letter returns the flag letter of the keyword name. Like Dovecot it
// matches names without regard to ASCII case (IMAP flag names are
// case-insensitive, RFC 3501 §2.3.2).
func (k *Keywords) Letter(name string) (byte, bool) {
	for i, n := range k.Names {
		if n != "" && strings.EqualFold(n, name) {
			return byte('a' + i), true
		}
	}
	return 0, false
}

// Name returns the keyword the flag letter stands for.
func (k *Keywords) Name(letter byte) (string, bool) {
	if letter < 'a' || letter > 'z' || k.Names[letter-'a'] == "" {
		return "", false
	}
	return k.Names[letter-'a'], true
}

// ReadKeywords reads the dovecot-keywords file of the Maildir dir; a
// missing file is an empty table.
func ReadKeywords(dir string) (*Keywords, error) {
	k, _, err := readKeywords(dir)
	return k, err
}

func readKeywords(dir string) (*Keywords, fs.FileInfo, error) {
	p := filepath.Join(dir, KeywordsFileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Keywords{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("uidlist: %w", err)
	}
	info, err := os.Stat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("uidlist: %w", err)
	}
	return ParseKeywords(data), info, nil
}

// Keywords reads the folder's keyword table.
func (m *Mailbox) Keywords() (*Keywords, error) {
	return ReadKeywords(m.dir)
}

// AddKeywords gives each of names a flag letter, unless it has one, and
// returns the updated table. New keywords take the lowest free letters.
//
// It writes as Dovecot does (maildir-keywords.c): while holding the
// dovecot-uidlist lock, which all writers of dovecot-keywords hold, it
// removes any dovecot-keywords.lock (a leftover, since no one else can be
// writing), creates it with O_EXCL, writes the whole table into it, fsyncs
// it and renames it over dovecot-keywords. Dovecot re-reads the table only
// when its mtime (in seconds) changes, so the new file's mtime is set past
// the old one's if the clock has not moved on.
func (m *Mailbox) AddKeywords(names ...string) (*Keywords, error) {
	for _, name := range names {
		if err := checkKeyword(name); err != nil {
			return nil, err
		}
	}
	k, err := m.Keywords()
	if err != nil || k.hasAll(names) {
		return k, err
	}
	lock, err := m.uidlistLock()
	if err != nil {
		return nil, err
	}
	k, err = m.addKeywords(names)
	if rerr := lock.release(); err == nil && rerr != nil {
		err = rerr
	}
	return k, err
}

func (k *Keywords) hasAll(names []string) bool {
	for _, name := range names {
		if _, ok := k.Letter(name); !ok {
			return false
		}
	}
	return true
}

// addKeywords is AddKeywords under the uidlist lock.
func (m *Mailbox) addKeywords(names []string) (*Keywords, error) {
	k, old, err := readKeywords(m.dir)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, name := range names {
		if _, ok := k.Letter(name); ok {
			continue
		}
		i := 0
		for i < MaxKeywords && k.Names[i] != "" {
			i++
		}
		if i == MaxKeywords {
			return nil, fmt.Errorf("%w in %s for %q", ErrTooManyKeywords, m.dir, name)
		}
		k.Names[i] = name
		changed = true
	}
	if !changed {
		return k, nil
	}
	p := filepath.Join(m.dir, KeywordsFileName)
	if err := os.Remove(p + ".lock"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("uidlist: %w", err)
	}
	lock, err := lockDotlock(p, dotlockOptions{timeout: 0, stale: m.opt.StaleTimeout})
	if err != nil {
		return nil, err
	}
	var minMtime time.Time
	if old != nil {
		if sec := old.ModTime().Unix(); time.Now().Unix() <= sec {
			minMtime = time.Unix(sec+1, 0)
		}
	}
	if err := lock.replace(k.Marshal(), minMtime); err != nil {
		return nil, err
	}
	return k, nil
}

// checkKeyword refuses names a dovecot-keywords line cannot hold or that
// are no IMAP flag keyword (an atom, RFC 3501 §9: no space, no control
// characters).
func checkKeyword(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidKeyword)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w %q", ErrInvalidKeyword, name)
		}
	}
	return nil
}
