package maildir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Name is a Maildir file name taken apart: Base is the unique part with any
// ",S=" and ",W=" fields removed, Size and VSize their values (-1 when
// absent), Flags what follows ":2," (when HasInfo).
type Name struct {
	Base        string
	Size, VSize int64
	Flags       string
	HasInfo     bool
}

// ParseName takes a Maildir file name apart. It never fails: a name written
// by other software keeps whatever this package does not understand in Base,
// and a name with an info part other than ":2," (such as the experimental
// ":1,") is kept whole in Base, with no sizes.
func ParseName(filename string) Name {
	n := Name{Base: filename, Size: -1, VSize: -1}
	pre := filename
	if i := strings.IndexByte(filename, ':'); i >= 0 {
		info := filename[i+1:]
		if !strings.HasPrefix(info, "2,") {
			return n
		}
		pre = filename[:i]
		n.HasInfo = true
		n.Flags = info[2:]
	}
	fields := strings.Split(pre, ",")
	keep := fields[:1]
	for _, f := range fields[1:] {
		if v, ok := sizeField(f, "S="); ok {
			n.Size = v
		} else if v, ok := sizeField(f, "W="); ok {
			n.VSize = v
		} else {
			keep = append(keep, f)
		}
	}
	n.Base = strings.Join(keep, ",")
	return n
}

// NameSizes returns the Size and VSize that ParseName would give filename
// (-1 when absent) without ParseName's allocations, for readers that look
// at the sizes of every message of a folder, such as an IMAP FETCH or a
// uidlist sync.
func NameSizes(filename string) (size, vsize int64) {
	size, vsize = -1, -1
	if i := strings.IndexByte(filename, ':'); i >= 0 {
		if !strings.HasPrefix(filename[i+1:], "2,") {
			return size, vsize
		}
		filename = filename[:i]
	}
	first := true
	for f := range strings.SplitSeq(filename, ",") {
		if first {
			first = false
			continue
		}
		if v, ok := sizeField(f, "S="); ok {
			size = v
		} else if v, ok := sizeField(f, "W="); ok {
			vsize = v
		}
	}
	return size, vsize
}

// sizeField parses f as prefix and decimal digits.
func sizeField(f, prefix string) (int64, bool) {
	digits, ok := strings.CutPrefix(f, prefix)
	if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}

// String puts the name back together: Base, ",S=" and ",W=" when known, and
// ":2," and Flags when HasInfo. It is the inverse of ParseName for the names
// this package writes.
func (n Name) String() string {
	var b strings.Builder
	b.WriteString(n.Base)
	if n.Size >= 0 {
		b.WriteString(",S=")
		b.WriteString(strconv.FormatInt(n.Size, 10))
	}
	if n.VSize >= 0 {
		b.WriteString(",W=")
		b.WriteString(strconv.FormatInt(n.VSize, 10))
	}
	if n.HasInfo {
		b.WriteString(":2,")
		b.WriteString(n.Flags)
	}
	return b.String()
}

// HasFlag reports whether the name carries flag, such as 'S' (seen).
func (n Name) HasFlag(flag byte) bool {
	return n.HasInfo && strings.IndexByte(n.Flags, flag) >= 0
}

// The flags of the Maildir specification, kept in cur/ after ":2,".
const (
	FlagDraft   = 'D'
	FlagFlagged = 'F'
	FlagPassed  = 'P' // forwarded, resent or bounced
	FlagReplied = 'R'
	FlagSeen    = 'S'
	FlagTrashed = 'T' // \Deleted
)

// ErrInvalidFlags is wrapped by the errors for flag strings with characters
// other than ASCII letters.
var ErrInvalidFlags = errors.New("maildir: invalid flags")

// SortFlags checks flags (ASCII letters: the specification's upper-case
// flags and Dovecot's keyword letters a-z) and returns them in ASCII order
// without duplicates, as the Maildir specification requires.
func SortFlags(flags string) (string, error) {
	b := []byte(flags)
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "", fmt.Errorf("%w %q", ErrInvalidFlags, flags)
		}
	}
	slices.Sort(b)
	return string(slices.Compact(b)), nil
}

// SetFlags renames the file curName in cur/ so that it carries exactly flags
// (sorted and deduplicated), keeping everything before the info as it is,
// and returns the new name. The rename is atomic but not fsynced: a crash
// may lose a flag change, never the message. A file that another process
// renamed meanwhile gives an error wrapping fs.ErrNotExist.
func (d Dir) SetFlags(curName string, flags string) (newName string, err error) {
	if err := checkFileName(curName); err != nil {
		return "", err
	}
	flags, err = SortFlags(flags)
	if err != nil {
		return "", err
	}
	newName = withInfo(curName, flags)
	if newName == curName {
		return curName, nil
	}
	if err := rename(filepath.Join(d.Cur(), curName), filepath.Join(d.Cur(), newName)); err != nil {
		return "", fmt.Errorf("maildir: set flags: %w", err)
	}
	return newName, nil
}

// MoveToCur moves the file newName from new/ to cur/, adding the info ":2,"
// (no flags), as a reader does once it has seen a new message, and returns
// its name in cur/. Like SetFlags it does not fsync.
func (d Dir) MoveToCur(newName string) (curName string, err error) {
	if err := checkFileName(newName); err != nil {
		return "", err
	}
	curName = newName
	if !ParseName(newName).HasInfo {
		curName = withInfo(newName, "")
	}
	if err := rename(filepath.Join(d.New(), newName), filepath.Join(d.Cur(), curName)); err != nil {
		return "", fmt.Errorf("maildir: move to cur: %w", err)
	}
	return curName, nil
}

// rename is rename(2) alone. os.Rename first lstats the new name to refuse
// renaming over a directory, which rename(2) refuses anyway (EISDIR): one
// system call per message saved where readers move thousands of new
// messages to cur/ at login.
func rename(oldpath, newpath string) error {
	if err := unix.Rename(oldpath, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// withInfo replaces the info of a file name (from its first ':') by ":2,"
// and flags.
func withInfo(name, flags string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	return name + ":2," + flags
}

// checkFileName refuses names that are not one plain directory entry.
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("maildir: invalid file name %q", name)
	}
	return nil
}

var (
	deliveries atomic.Uint64
	hostname   = sync.OnceValue(func() string {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return "localhost"
		}
		return h
	})
)

// uniqueBase returns a new unique name for a delivery, without sizes or info:
// SECONDS.M<usec>P<pid>Q<n>R<random>.HOST, as Dovecot writes them. The
// random part keeps names unique even across hosts sharing a Maildir
// whose clocks or process ids collide.
func uniqueBase(now time.Time, host string) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("maildir: random name: %w", err)
	}
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(),
		deliveries.Add(1), hex.EncodeToString(r[:]), escapeHost(host)), nil
}

// escapeHost makes a host name safe inside a file name: the Maildir
// specification turns '/' into \057 and ':' into \072; we also escape ','
// (which starts the S= and W= fields), '\' and anything not printable ASCII,
// so that the name can be taken apart again without ambiguity.
func escapeHost(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == ',' || c == '\\' {
			fmt.Fprintf(&b, `\%03o`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// MovedName returns a new unique name, in cur/ form with flags, for the
// message file name that moves to another folder; its sizes are kept. A
// moved message must not keep its name: the UID list of a folder it left
// and comes back to still maps that name to its old UID, which is below
// UIDNEXT by then, and IMAP never reuses a UID (RFC 9051 §2.3.1.1). Dovecot
// renames moved files the same way. An empty host means this machine's
// name, as for Deliver.
func MovedName(name, host, flags string) (string, error) {
	flags, err := SortFlags(flags)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = hostname()
	}
	base, err := uniqueBase(time.Now(), host)
	if err != nil {
		return "", err
	}
	old := ParseName(name)
	return Name{Base: base, Size: old.Size, VSize: old.VSize, HasInfo: true, Flags: flags}.String(), nil
}
