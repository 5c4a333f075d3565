package uidlist

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UIDValidityFileName is the file in a Maildir++ root that remembers the
// last UIDVALIDITY given to a new mailbox of that root.
const UIDValidityFileName = "dovecot-uidvalidity"

// NextUIDValidity returns a UIDVALIDITY for a new mailbox (a folder whose
// dovecot-uidlist is created) under the Maildir++ root, the way Dovecot 2.3
// does (lib-storage/mailbox-uidvalidity.c), so that a mailbox deleted and
// created again, even within the same second, gets a greater UIDVALIDITY
// (RFC 3501 §2.3.1.1) whichever of Dovecot and postkit creates it.
//
// The root holds two files: dovecot-uidvalidity, whose first 8 bytes are
// the last value given out in lower-case hex, and an empty marker file
// dovecot-uidvalidity.<that value in 8 hex digits> (mode 0444). Taking a
// value renames the marker from the current value to the next one; the
// rename fails with ENOENT if another process took that value first, and
// then the next value is tried. The main file only caches the marker's
// value. Without either file the first value is the current time. Like
// Dovecot it never fails: on errors it falls back to the current time (or
// one more than the last value it returned, if that is not less).
func NextUIDValidity(root string) uint32 {
	path := filepath.Join(root, UIDValidityFileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return uidValidityRescan(path)
	}
	defer f.Close()
	buf := make([]byte, 8)
	if _, err := io.ReadFull(f, buf); err != nil {
		return uidValidityRescan(path)
	}
	cur, ok := parseHex32(string(buf))
	if !ok {
		return uidValidityRescan(path)
	}
	if !uidValidityRename(path, &cur) {
		return uidValidityRescan(path)
	}
	// The fast path worked; the main file caches the new value (a failure
	// to write it only makes the next call rescan, as in Dovecot).
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%08x", cur)), 0)
	return cur
}

// uidValidityRename moves the marker file from *cur to *cur+1, trying the
// following values when another process was faster.
func uidValidityRename(path string, cur *uint32) bool {
	for range 10 {
		src := fmt.Sprintf("%s.%08x", path, *cur)
		*cur++
		err := os.Rename(src, fmt.Sprintf("%s.%08x", path, *cur))
		if err == nil {
			return true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return false
}

// uidValidityRescan finds the marker file by listing the root, creating it
// if there is none.
func uidValidityRescan(path string) uint32 {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+"."
	entries, err := os.ReadDir(dir)
	if err != nil {
		return uidValidityFallback()
	}
	var minValue, maxValue uint32 = 1<<32 - 1, 0
	for _, e := range entries {
		hexValue, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if v, ok := parseHex32(hexValue); ok {
			minValue, maxValue = min(minValue, v), max(maxValue, v)
		}
	}
	if maxValue == 0 {
		// No marker yet: start from the current time.
		var cur uint32
		for range 10 {
			cur = uidValidityFallback()
			f, err := os.OpenFile(fmt.Sprintf("%s.%08x", path, cur), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o444)
			if err == nil {
				f.Close()
				writeUIDValidity(path, cur)
				return cur
			}
			if !errors.Is(err, fs.ErrExist) {
				return cur
			}
		}
		return cur
	}
	if minValue != maxValue {
		// Duplicate markers: the highest counts.
		os.Remove(fmt.Sprintf("%s.%08x", path, minValue))
	}
	cur := maxValue
	if !uidValidityRename(path, &cur) {
		return uidValidityFallback()
	}
	writeUIDValidity(path, cur)
	return cur
}

func writeUIDValidity(path string, v uint32) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%08x", v)), 0) // only a cache
	f.Close()
}

var fallback struct {
	sync.Mutex
	last uint32
}

// uidValidityFallback is the current time, or one more than the last
// fallback value if that is not less.
func uidValidityFallback() uint32 {
	fallback.Lock()
	defer fallback.Unlock()
	now := uint32(time.Now().Unix())
	if fallback.last < now {
		fallback.last = now
	} else {
		fallback.last++
	}
	return fallback.last
}

// parseHex32 parses a hex number of at most 32 bits, like Dovecot's
// str_to_uint32_hex.
func parseHex32(s string) (uint32, bool) {
	if s == "" || strings.Trim(s, "0123456789abcdefABCDEF") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil
}
