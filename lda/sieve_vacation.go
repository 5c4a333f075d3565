package lda

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sieve"
)

// The vacation store remembers which senders got which vacation reply, so
// that a sender gets one per :handle per :days (RFC 5230 §4.2). It lives
// beside the user's scripts, so it moves with the Maildir:
//
//	HOME/sieve/.vacation        the replies
//	HOME/sieve/.vacation.lock   flock(2)ed while a delivery uses it
//
// (HOME being the user's Maildir; package sieve lists only NAME.sieve
// files, so neither is taken for a script.) .vacation is text, one line per
// reply, oldest first:
//
//	1795336972 3f1e0c5a9b7d2e4f6a8c0b1d3e5f7a9c
//
// the time of the reply in seconds since 1970, a space, and the first 16
// bytes of SHA-256 over the sender (lower case), a NUL byte and the handle,
// in lower-case hex: the file tells whether a sender got a reply without
// listing the user's correspondents. Lines that do not parse are dropped.
// A reply is forgotten after sieve.MaxVacationDays, the longest period a
// script may ask for, and the file keeps at most maxVacationEntries lines
// (the oldest go first).
//
// A delivery that runs a vacation action takes the lock when the script
// first asks whether a reply was sent, and keeps it until the reply is
// recorded (after it was queued) or the delivery ends: two deliveries to the
// same user at the same time cannot both answer one sender. The file is
// replaced atomically (safefile.WriteFile) under the lock.
const (
	vacationFile       = ".vacation"
	maxVacationEntries = 10000
	vacationLockWait   = 10 * time.Second
)

func vacationPath(home string) string {
	return filepath.Join(home, sieve.ScriptsDir, vacationFile)
}

// vacationKey is the store's key for a reply with handle to sender.
func vacationKey(sender, handle string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(sender) + "\x00" + handle))
	return hex.EncodeToString(sum[:16])
}

// parseVacation reads a store file: key to the time of the last reply.
func parseVacation(data []byte) map[string]int64 {
	entries := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), 4096)
	for sc.Scan() {
		secs, key, ok := strings.Cut(sc.Text(), " ")
		if !ok || len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
			continue
		}
		t, err := strconv.ParseInt(secs, 10, 64)
		if err != nil || t < 0 {
			continue
		}
		entries[key] = max(entries[key], t)
	}
	return entries
}

// marshalVacation writes the entries replied to after expired, oldest
// first, at most maxVacationEntries of them.
func marshalVacation(entries map[string]int64, expired int64) []byte {
	type entry struct {
		key string
		t   int64
	}
	var list []entry
	for k, t := range entries {
		if t > expired {
			list = append(list, entry{k, t})
		}
	}
	slices.SortFunc(list, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.key, b.key))
	})
	if len(list) > maxVacationEntries {
		list = list[len(list)-maxVacationEntries:]
	}
	var b bytes.Buffer
	for _, e := range list {
		fmt.Fprintf(&b, "%d %s\n", e.t, e.key)
	}
	return b.Bytes()
}

// vacationStore is one user's store, locked for one delivery.
type vacationStore struct {
	home    string
	path    string
	lock    *safefile.Lock
	entries map[string]int64
}

// openVacation locks and reads the store in home.
func openVacation(home string) (*vacationStore, error) {
	path := vacationPath(home)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lda: vacation store: %w", err)
	}
	lock, err := safefile.LockFile(path+".lock", vacationLockWait)
	if err != nil {
		return nil, fmt.Errorf("lda: vacation store: %w", err)
	}
	ownLikeHome(home, filepath.Dir(path), path+".lock")
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Unlock()
		return nil, fmt.Errorf("lda: vacation store: %w", err)
	}
	return &vacationStore{home: home, path: path, lock: lock, entries: parseVacation(data)}, nil
}

// replied reports whether sender got the reply handle less than days days
// before now.
func (v *vacationStore) replied(sender, handle string, days int, now time.Time) bool {
	t, ok := v.entries[vacationKey(sender, handle)]
	return ok && now.Sub(time.Unix(t, 0)) < time.Duration(days)*24*time.Hour
}

// record notes a reply sent at now and writes the store, dropping what
// expired.
func (v *vacationStore) record(sender, handle string, now time.Time) error {
	v.entries[vacationKey(sender, handle)] = now.Unix()
	expired := now.Add(-sieve.MaxVacationDays * 24 * time.Hour).Unix()
	if err := safefile.WriteFile(v.path, marshalVacation(v.entries, expired), 0o600); err != nil {
		return fmt.Errorf("lda: vacation store: %w", err)
	}
	ownLikeHome(v.home, v.path)
	return nil
}

// ownLikeHome gives paths (not following links) the owner and group of
// the Maildir home when deliver runs as root, so that the deliveries that
// run as the Maildir's owner can use them too. Failures are ignored: the
// next delivery as root tries again, and one as the owner fails and logs.
func ownLikeHome(home string, paths ...string) {
	if os.Geteuid() != 0 {
		return
	}
	info, err := os.Stat(home)
	if err != nil {
		return
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		for _, p := range paths {
			os.Lchown(p, int(st.Uid), int(st.Gid))
		}
	}
}

func (v *vacationStore) close() {
	if v != nil {
		v.lock.Unlock()
	}
}
