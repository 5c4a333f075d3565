package spool

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"time"
)

// IDLen is the length of every queue ID.
const IDLen = 16

// idEncoding is base32hex (RFC 4648 section 7) without padding: its alphabet
// 0-9A-V is in ASCII order, so IDs sort the way the bytes they encode do.
var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// newID returns a queue ID for a message arriving at t: 48 bits of
// milliseconds since 1970 then 32 random bits, 80 bits in 16 characters.
// IDs therefore sort by arrival time (to the millisecond), are safe as file
// names and in log lines, and two enqueuers in the same millisecond collide
// with probability 2^-32; Enqueue's rename that never replaces catches even
// that (and renumbers).
func newID(t time.Time) (string, error) {
	var b [10]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	if _, err := rand.Read(b[6:]); err != nil {
		return "", fmt.Errorf("spool: random queue id: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// ValidID reports whether id has the form of a queue ID. Every function that
// takes an ID from outside (a command line, a file name) checks it first, so an
// ID can never name a path outside the spool.
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'V') {
			return false
		}
	}
	return true
}

// IDTime returns the arrival time, to the millisecond, encoded in a valid ID.
func IDTime(id string) (time.Time, error) {
	if !ValidID(id) {
		return time.Time{}, fmt.Errorf("spool: %q is not a queue id", id)
	}
	b, err := idEncoding.DecodeString(id)
	if err != nil {
		return time.Time{}, fmt.Errorf("spool: %q is not a queue id: %w", id, err)
	}
	ms := uint64(binary.BigEndian.Uint16(b[0:2]))<<32 | uint64(binary.BigEndian.Uint32(b[2:6]))
	return time.UnixMilli(int64(ms)).UTC(), nil
}
