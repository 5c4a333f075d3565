package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/safefile"
)

// DeliverOptions tune Deliver. The zero value delivers an unseen message to
// new/.
type DeliverOptions struct {
	// Hostname goes into the unique name (default: os.Hostname). Characters
	// that would break the name are escaped as \ooo (octal).
	Hostname string
	// Flags (such as "S" or "FS", and keyword letters a-z) put the file in
	// cur/ with ":2," and the flags sorted, as for IMAP APPEND.
	Flags string
	// ToCur puts the file in cur/ even with no flags (":2,").
	ToCur bool
	// ModTime, if not zero, becomes the file's mtime, which IMAP servers
	// report as INTERNALDATE (IMAP APPEND's date-time argument).
	ModTime time.Time
	// MaxSize, if positive, refuses (with ErrTooBig, storing nothing) a
	// message of more than MaxSize input bytes.
	MaxSize int64
	// BeforeLink, if set, is called with the message's final path
	// (new/NAME, or cur/NAME:2,FLAGS) once the file is written and
	// fsynced, just before it is linked there. If it returns an error,
	// Deliver removes the tmp file and returns that error (wrapped):
	// nothing is stored. It lets a caller record where the message is
	// about to appear, so that after a crash (of the caller, killed
	// between the link and its own record of the delivery) it can tell
	// whether the delivery happened: by whether that file exists, or, as
	// a mail client may move it from new/ to cur/ meanwhile, a cur/ file
	// with the same name before its info part.
	BeforeLink func(path string) error
}

// Delivered describes a stored message: its file name and path, its size on
// disk (S=) and its size as NewCRLFReader serves it (W=).
type Delivered struct {
	Name, Path  string
	Size, VSize int64
}

// ErrTooBig is wrapped by the error of Deliver for a message larger than
// DeliverOptions.MaxSize.
var ErrTooBig = errors.New("maildir: message too big")

// Deliver stores msg durably in the Maildir d, the one way postkit puts a
// message into a Maildir:
//
//  1. create tmp/UNIQUE exclusively (safefile.CreateNew), mode 0600, and,
//     when running as root, give it the owner and group of tmp/ (see
//     "Owners" in the package documentation);
//  2. write the message, turning every CRLF into LF (a bare CR is kept) and
//     counting the sizes for S= and W=;
//  3. set the mtime (ModTime), fsync and close the file;
//  4. call BeforeLink with the final path, if set;
//  5. rename it into new/ (or cur/) under its final name, never replacing
//     a file there (safefile.RenameNoReplace);
//  6. fsync new/ (or cur/).
//
// Once Deliver returns without error the message survives a crash. On any
// error nothing is visible in new/ or cur/ and the tmp file is removed.
// Errors wrap the error of the failing system call or of msg, so callers can
// tell a full disk (see IsTemporary) from, say, a permission problem.
func (d Dir) Deliver(msg io.Reader, opt DeliverOptions) (Delivered, error) {
	flags, err := SortFlags(opt.Flags)
	if err != nil {
		return Delivered{}, err
	}
	target := d.New()
	if flags != "" || opt.ToCur {
		target = d.Cur()
	}
	host := opt.Hostname
	if host == "" {
		host = hostname()
	}
	base, err := uniqueBase(time.Now(), host)
	if err != nil {
		return Delivered{}, err
	}
	tmpPath := filepath.Join(d.Tmp(), base)
	f, err := safefile.CreateNew(tmpPath, 0o600)
	if err != nil {
		return Delivered{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if err := sameOwner(f, d.Tmp()); err != nil {
		f.Close()
		os.Remove(tmpPath)
		return Delivered{}, err
	}
	sizes, err := fill(f, tmpPath, msg, opt)
	if err != nil {
		os.Remove(tmpPath)
		return Delivered{}, err
	}
	n := Name{Base: base, Size: sizes.size, VSize: sizes.vsize}
	if target == d.Cur() {
		n.HasInfo, n.Flags = true, flags
	}
	name := n.String()
	final := filepath.Join(target, name)
	if opt.BeforeLink != nil {
		if err := opt.BeforeLink(final); err != nil {
			os.Remove(tmpPath)
			return Delivered{}, fmt.Errorf("maildir: deliver: before link: %w", err)
		}
	}
	if err := safefile.RenameNoReplace(tmpPath, final); err != nil {
		os.Remove(tmpPath)
		return Delivered{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if err := safefile.SyncDir(target); err != nil {
		// Without the fsync the message may vanish in a crash, and the
		// caller is about to report failure (and have it sent again):
		// take it back.
		os.Remove(final)
		return Delivered{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	return Delivered{Name: name, Path: final, Size: sizes.size, VSize: sizes.vsize}, nil
}

// deliveryBufs holds the buffers fill reads messages into. A queue runner
// delivers message after message: when each delivery made its own buffers
// (a bufio.Writer, a conversion buffer and an io.CopyBuffer buffer, 64 KiB
// each, some 200 KiB for a 4 KiB message), garbage collection took 18-30% of
// sendq's CPU. A pooled buffer is made once and reused, and returned on every
// path, errors included. Pointers to arrays go in, so that Put stores no
// slice header on the heap.
var deliveryBufs = sync.Pool{New: func() any { return new([bufSize]byte) }}

// fill writes msg to the new tmp file f with LF line endings, sets its
// mtime, fsyncs and closes it.
func fill(f *os.File, path string, msg io.Reader, opt DeliverOptions) (sizer, error) {
	defer f.Close()
	buf := deliveryBufs.Get().(*[bufSize]byte)
	// The lfWriter, the only user of buf, is gone when fill returns.
	defer deliveryBufs.Put(buf)
	lw := newLFWriter(f)
	lw.buf = buf[:]
	src := msg
	if opt.MaxSize > 0 {
		src = io.LimitReader(msg, opt.MaxSize+1)
	}
	// fillFrom reads into buf and converts there, so this one buffer does
	// the work of the read buffer, the conversion buffer and a bufio.Writer
	// (one write(2) per full buffer however small msg's reads are).
	in, err := lw.fillFrom(src)
	if err != nil {
		return sizer{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if opt.MaxSize > 0 && in > opt.MaxSize {
		return sizer{}, fmt.Errorf("%w: more than %d bytes", ErrTooBig, opt.MaxSize)
	}
	if err := lw.Close(); err != nil {
		return sizer{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if !opt.ModTime.IsZero() {
		if err := os.Chtimes(path, time.Time{}, opt.ModTime); err != nil {
			return sizer{}, fmt.Errorf("maildir: deliver: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return sizer{}, fmt.Errorf("maildir: deliver: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return sizer{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	return lw.sizer, nil
}

// IsTemporary reports whether err (from Deliver, Create or the like) comes
// from a condition that may go away by itself or by an operator's action
// without changing the message or the mailbox: a full disk or quota, an I/O
// error, a read-only file system, too many open files, no memory, an
// interrupted or timed-out call. An MTA defers (4xx, exit 75) on these.
func IsTemporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EAGAIN,
		syscall.EINTR, syscall.ENFILE, syscall.EMFILE, syscall.ENOMEM, syscall.ETIMEDOUT, syscall.EBUSY} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
