package spool

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/safefile"
)

// MaildropDir is the name of the maildrop directory inside the spool.
const MaildropDir = "maildrop"

// Limits of a drop. MaxDropMessage is the largest message Drop writes and
// Pickup accepts; the envelope before it may take maxDropEnvelope more
// bytes, one line of it at most maxDropLine.
const (
	MaxDropMessage  = 64 << 20
	maxDropEnvelope = 1 << 20
	maxDropLine     = 64 << 10
	maxDropSize     = MaxDropMessage + maxDropEnvelope
)

// ErrTooBig is wrapped by the errors of Drop and Submit for a message of
// more than MaxDropMessage bytes, and is why Pickup refuses a larger drop.
var ErrTooBig = errors.New("spool: message too big for the maildrop")

// Outcomes of importDrop that are not a new entry: errRefused is wrapped
// by the errors for drops Pickup refuses for good; errGone means the drop
// was taken back by its writer; errAlreadyQueued means an earlier Pickup
// queued it and did not remove it; errPostponed means the drop is not
// queued yet and Pickup, after a temporary failure, imports no new drops.
var (
	errRefused       = errors.New("refused")
	errGone          = errors.New("spool: the drop is gone")
	errAlreadyQueued = errors.New("spool: the drop is queued already")
	errPostponed     = errors.New("spool: the drop waits for the next pickup")
)

// dropRandLen is how many random bytes a drop name carries: 128 bits, so
// that a drop file, which every user may read (see Drop), cannot be found
// by guessing its name in a directory that only its owner can list.
const dropRandLen = 16

// dropNameLen is the length of every drop name: a queue ID, '.', and the
// random part in base32hex, lower case.
var dropNameLen = IDLen + 1 + idEncoding.EncodedLen(dropRandLen)

// newDropName returns a fresh drop name for time t: a queue ID, so that
// names sort by the time of the drop, then 128 random bits.
func newDropName(t time.Time) (string, error) {
	id, err := newID(t)
	if err != nil {
		return "", err
	}
	var b [dropRandLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("spool: random drop name: %w", err)
	}
	return id + "." + strings.ToLower(idEncoding.EncodeToString(b[:])), nil
}

// validDropName reports whether name has the form of a drop name.
func validDropName(name string) bool {
	id, rest, ok := strings.Cut(name, ".")
	if !ok || len(name) != dropNameLen || !ValidID(id) {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'v') {
			return false
		}
	}
	return true
}

// Submit hands a message to the queue the way a local program may: sendmail
// run by any user, or deliver forwarding mail for an alias. A process that
// owns the spool directory, or runs as root, enqueues directly (Enqueue,
// whose files root gives to the spool's owner); any other user's process
// cannot write into the spool and drops the message into maildrop/ (Drop),
// from where the queue runner imports it. Either way the entry records the
// submitting user (Envelope.LocalUID). Submit returns the queue ID, or the
// drop's name for a drop.
func Submit(dir string, env *Envelope, msg io.Reader) (string, error) {
	euid := os.Geteuid()
	info, err := os.Stat(dir)
	direct := errors.Is(err, fs.ErrNotExist) // Open creates it, for this user
	if err == nil {
		st, ok := info.Sys().(*syscall.Stat_t)
		direct = euid == 0 || !ok || int(st.Uid) == euid
	} else if !direct {
		return "", storageErr(err, "submit")
	}
	if !direct {
		return Drop(dir, env, msg)
	}
	s, err := Open(dir)
	if err != nil {
		return "", err
	}
	e := *env
	e.LocalUID = strconv.Itoa(euid)
	id, err := s.Enqueue(&e, msg)
	if err != nil {
		return "", err
	}
	env.ID, env.Arrival, env.NextAttempt, env.LocalUID = e.ID, e.Arrival, e.NextAttempt, e.LocalUID
	return id, nil
}

// dropFields returns the part of env a submitter may choose: the sender,
// the recipients with their DSN parameters, and the message's transport
// properties. Everything else is the queue's business.
func dropFields(env *Envelope) Envelope {
	e := Envelope{
		From: env.From, Ret: env.Ret, EnvID: env.EnvID,
		RequireTLS: env.RequireTLS, SMTPUTF8: env.SMTPUTF8, Body: env.Body,
		ID: env.ID, Arrival: env.Arrival, NextAttempt: env.NextAttempt,
	}
	for _, r := range env.Recipients {
		e.Recipients = append(e.Recipients, Recipient{Address: r.Address, ORCPT: r.ORCPT, Notify: r.Notify})
	}
	return e
}

// Drop writes a message for the queue into maildrop/ under the spool
// directory dir, for a process that cannot write into the spool itself.
// Only the fields a submitter may choose are taken from env (see the
// package documentation). The drop is written under a temporary name,
// fsynced, made readable for the queue runner (mode 0644), and renamed to
// its final name; the rename, made durable, is the commit point, so the
// runner never sees a partial drop. It returns the drop's name. A message
// of more than MaxDropMessage bytes fails with ErrTooBig, and nothing is
// left behind.
func Drop(dir string, env *Envelope, msg io.Reader) (string, error) {
	md := filepath.Join(dir, MaildropDir)
	now := time.Now().UTC().Round(0)
	e := dropFields(env)
	e.Arrival, e.NextAttempt = now, now
	name, err := newDropName(now)
	if err != nil {
		return "", err
	}
	e.ID = name[:IDLen]
	head, err := MarshalEnvelope(&e)
	if err != nil {
		return "", err
	}
	f, err := safefile.CreateTemp(md, 0o600)
	if err != nil {
		return "", storageErr(err, "maildrop")
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(f.Name())
		}
		f.Close()
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	w.Write(head)
	w.WriteByte('\n')
	r := &trackingReader{r: io.LimitReader(msg, MaxDropMessage+1)}
	n, err := io.Copy(w, r)
	if err != nil {
		if r.err != nil {
			return "", fmt.Errorf("spool: reading message: %w", r.err)
		}
		return "", storageErr(err, "maildrop: write %s", name)
	}
	if n > MaxDropMessage {
		return "", fmt.Errorf("%w (more than %d bytes)", ErrTooBig, MaxDropMessage)
	}
	if err := w.Flush(); err != nil {
		return "", storageErr(err, "maildrop: write %s", name)
	}
	if err := f.Sync(); err != nil {
		return "", storageErr(err, "maildrop: fsync %s", name)
	}
	// Readable by the runner, which runs as another user: only now that
	// the file is complete, under a name nobody else can list.
	if err := f.Chmod(0o644); err != nil {
		return "", storageErr(err, "maildrop: chmod %s", name)
	}
	if err := os.Rename(f.Name(), filepath.Join(md, name)); err != nil {
		return "", storageErr(err, "maildrop: %s", name)
	}
	committed = true
	if err := syncDrop(md, f); err != nil {
		// The drop may be picked up already: it cannot be taken back.
		// Reporting a temporary failure could have it sent twice, which
		// is the lesser harm than losing it.
		return "", storageErr(err, "maildrop: sync %s", name)
	}
	return name, nil
}

// syncDrop makes the rename of a drop into md durable. A user other than
// maildrop/'s owner cannot open the directory (it has no read permission
// for others) to fsync it, so then the file system the drop is on is
// synced as a whole (syncfs(2)).
func syncDrop(md string, f *os.File) error {
	err := safefile.SyncDir(md)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return unix.Syncfs(int(f.Fd()))
}

// Pickup imports the drops in maildrop/ into the queue, oldest first: the
// queue runner calls it whenever it scans, before it lists the queue. For
// each drop it checks what it can of a file any local user may have
// written (see the package documentation), enqueues the message with the
// envelope it carries, the drop file's owner recorded as
// Envelope.LocalUID, and removes the drop. A drop it refuses is removed
// too, and logged. Files whose names start with '.' are drops being
// written; Clean removes old ones. A temporary failure (the spool's file
// system) leaves the drop for the next Pickup; Pickup then imports no
// new drops but still finishes those that are queued already (below), and
// returns the first such error. logf gets one line per drop. Pickup
// returns how many drops it queued.
//
// A crash between queuing a drop and removing it does not queue it twice:
// the entry takes the queue ID the drop's name starts with, and a drop
// whose ID is that of an entry (or of the envelope a crashed Remove left)
// submitted by the drop file's owner was queued by a runner that died
// before removing it. Pickup logs it (status=already-queued) and removes
// it without queuing it again or touching the entry. A drop whose ID
// belongs to another submitter's entry is queued under a fresh ID instead,
// and a crash before its removal may queue it twice. So may a drop that
// cannot be removed (an I/O error): this Spool does not look at it again,
// but the next runner imports it again once its entry is gone.
func (s *Spool) Pickup(logf func(format string, args ...any)) (int, error) {
	info, err := os.Stat(s.dropDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, storageErr(err, "pickup")
	}
	// maildrop/ is sticky: only its owner (and root) may remove the drops
	// other users put there. A runner that could not would queue the same
	// drops again at every scan.
	if euid := os.Geteuid(); euid != 0 && fileUID(info) != strconv.Itoa(euid) {
		return 0, storageErr(fmt.Errorf("owned by uid %s, not by the queue runner's uid %d (run postkit-setup)", fileUID(info), euid), "pickup: %s", s.dropDir)
	}
	names, err := readDirNames(s.dropDir)
	if err != nil {
		return 0, storageErr(err, "pickup")
	}
	s.pickupMu.Lock()
	defer s.pickupMu.Unlock()
	n := 0
	removed := false
	defer func() {
		if removed {
			safefile.SyncDir(s.dropDir)
		}
	}()
	// After a temporary failure (typically a full file system) Pickup
	// queues nothing more, but it still goes through the drops to remove
	// those that are queued already, which takes no space: the runner
	// scans the queue after Pickup whatever it returns, and a drop that
	// outlived the delivery and removal of its entry would be queued again.
	var failed error
	for _, name := range names {
		if strings.HasPrefix(name, ".") || s.dropsLeft[name] {
			continue
		}
		uid, id, err := s.importDrop(name, failed == nil)
		switch {
		case errors.Is(err, errGone), errors.Is(err, errPostponed):
			continue
		case errors.Is(err, errRefused):
			logf("event=pickup drop=%s uid=%s status=refused error=%q", quoteName(name), uid, err)
		case errors.Is(err, errAlreadyQueued):
			logf("event=pickup drop=%s uid=%s id=%s status=already-queued", name, uid, id)
		case err != nil:
			logf("event=pickup drop=%s uid=%s status=deferred error=%q", quoteName(name), uid, err)
			if failed == nil {
				failed = err
			}
			continue
		case id != name[:IDLen]:
			logf("event=pickup drop=%s uid=%s id=%s status=queued note=%q", name, uid, id,
				"queue id "+name[:IDLen]+" belongs to another submitter's entry")
			n++
		default:
			logf("event=pickup drop=%s uid=%s id=%s status=queued", name, uid, id)
			n++
		}
		if err := s.removeDrop(name); err != nil {
			// Never look at it again in this process, or it would be
			// queued again at every scan.
			if s.dropsLeft == nil {
				s.dropsLeft = map[string]bool{}
			}
			s.dropsLeft[name] = true
			logf("event=pickup drop=%s status=left error=%q", quoteName(name), err)
			continue
		}
		removed = true
	}
	return n, failed
}

// quoteName quotes a file name for a log line when it is not plain.
func quoteName(name string) string {
	if validDropName(name) {
		return name
	}
	return strconv.Quote(name)
}

// removeDrop removes a drop that was queued or refused. A directory that is
// not empty (a user's mischief) cannot be removed: it is renamed to a name
// starting with ".tmp.", which Pickup skips and Clean removes once it is
// empty, so that it is not reported again at every scan.
func (s *Spool) removeDrop(name string) error {
	p := filepath.Join(s.dropDir, name)
	err := os.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err2 := os.Rename(p, filepath.Join(s.dropDir, safefile.TempPrefix+"refused."+name)); err2 == nil {
		return nil
	}
	return err
}

// refuse returns the error for a drop Pickup will not queue.
func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
}

// importDrop enqueues the drop name and returns its owner's uid and the
// queue ID of its entry: the drop's own ID, or a fresh one if another
// submitter's entry has it. Without queueNew it queues nothing and only
// recognises a drop that is queued already. Errors wrap errRefused for a
// bad drop, errGone for one that is gone, errAlreadyQueued (with the ID)
// for one queued before, errPostponed for one left for later; others are
// temporary.
func (s *Spool) importDrop(name string, queueNew bool) (uid, id string, err error) {
	uid = "-"
	if !validDropName(name) {
		if info, err := os.Lstat(filepath.Join(s.dropDir, name)); err == nil {
			uid = fileUID(info)
		}
		return uid, "", refuse("%.80q is not a drop name", name)
	}
	// O_NOFOLLOW: a symbolic link is refused, never followed; O_NONBLOCK:
	// opening a FIFO does not wait for a writer.
	f, err := os.OpenFile(filepath.Join(s.dropDir, name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if info, err := os.Lstat(filepath.Join(s.dropDir, name)); err == nil {
			uid = fileUID(info)
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return uid, "", errGone
	case errors.Is(err, syscall.ELOOP):
		return uid, "", refuse("a symbolic link")
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.EPERM):
		return uid, "", refuse("cannot open it: %v", err)
	case err != nil:
		return uid, "", storageErr(err, "pickup %s", name)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return uid, "", storageErr(err, "pickup %s", name)
	}
	uid = fileUID(info)
	st, _ := info.Sys().(*syscall.Stat_t)
	switch {
	case !info.Mode().IsRegular():
		return uid, "", refuse("not a regular file (%v)", info.Mode().Type())
	case st != nil && st.Nlink != 1:
		// A second name for the file could be another user's file.
		return uid, "", refuse("the file has %d links", st.Nlink)
	case info.Size() > maxDropSize:
		return uid, "", refuse("%w: %d bytes", ErrTooBig, info.Size())
	}
	// The file's writer may still hold it open and change it: read what
	// is there now, and never more than a drop may hold.
	br := bufio.NewReaderSize(io.LimitReader(f, maxDropSize+1), 64<<10)
	env, err := readDropEnvelope(br)
	if err != nil {
		return uid, "", err
	}
	env.LocalUID = uid
	body := &cappedReader{r: br, left: MaxDropMessage}

	// The entry takes the drop's ID, so that the next Pickup recognises a
	// drop whose runner died after queuing it and before removing it, and
	// does not queue it again. That ID comes from a name the drop's writer
	// chose, and any local user may name a drop after any ID; it cannot
	// harm anybody else:
	//   - Nobody's entry is removed or changed. validDropName checked the
	//     ID, so it names a file in queue/ and env/ and nowhere else; an
	//     existing entry is only read (its queue file never changes after
	//     its commit); enqueueAs commits with a rename that never replaces
	//     queue/ID, never writes env/ID, and when the ID is taken removes
	//     only its own temporary.
	//   - Only the drop's own submitter's message can go unqueued. The drop
	//     counts as queued only if the entry records the drop file's owner
	//     as its submitter: local-uid, which Pickup sets from the owner of
	//     a file with one link, and which nobody but root can give a file
	//     of theirs (and no submitter can write into an envelope: ParseDrop
	//     refuses local-uid). So the entry is the user's own: this drop's
	//     import or, if they named two drops alike (or Drop drew the same
	//     32 random bits twice in one millisecond), another of their own
	//     messages. A drop named after anybody else's entry (smtpd's have
	//     no local-uid) is queued under a fresh ID, as Enqueue would, and
	//     the user learns nothing about that entry.
	// The found entry is committed: Pickup runs only in the queue runner
	// (one at a time, runner.lock) under pickupMu, and a runner killed
	// after the rename cannot undo it. queue/ is fsynced before the drop
	// is removed, since that runner may have died before its fsync.
	id = name[:IDLen]
	submitter, taken, err := s.submitter(id)
	switch {
	case err != nil:
		return uid, "", err
	case taken && submitter == uid:
		if err := safefile.SyncDir(s.queueDir); err != nil {
			return uid, id, storageErr(err, "pickup %s: fsync queue", name)
		}
		return uid, id, errAlreadyQueued
	case !queueNew:
		return uid, "", errPostponed
	case taken:
		id, err = s.Enqueue(env, body)
	default:
		// errIDTaken here means an entry got the ID since submitter looked
		// (only by chance): the drop waits for the next Pickup.
		id, err = s.enqueueAs(id, env, body)
	}
	switch {
	case errors.Is(err, ErrTooBig), errors.Is(err, ErrInvalid):
		return uid, "", refuse("%v", err)
	case err != nil:
		return uid, "", err
	}
	return uid, id, nil
}

// readDropEnvelope reads the envelope of a drop for importDrop. A bad envelope
// is refused (errRefused: the drop is removed); a failed read is the disk's
// fault, not the drop writer's, and stays a temporary error, which leaves
// the drop for the next Pickup.
func readDropEnvelope(br *bufio.Reader) (*Envelope, error) {
	env, err := readDrop(br)
	if err != nil && !IsTemporary(err) {
		return nil, refuse("%v", err)
	}
	return env, err
}

// submitter reports whether entry id exists (queue/ID, or env/ID that a
// removal left), and the local-uid it records: "" for an entry no local user
// submitted, and for a damaged one. Only an error reading it is returned.
func (s *Spool) submitter(id string) (uid string, taken bool, err error) {
	var env *Envelope
	data, err := os.ReadFile(s.envPath(id))
	switch {
	case err == nil:
		env, err = parseEntryEnvelope(data, id)
	case errors.Is(err, fs.ErrNotExist):
		f, err2 := s.openEntry(id, "read entry")
		if errors.Is(err2, ErrNotFound) {
			return "", false, nil
		}
		if err2 != nil {
			return "", true, err2
		}
		defer f.Close()
		env, err = readHead(f, id)
	default:
		return "", true, storageErr(err, "read envelope %s", id)
	}
	switch {
	case IsTemporary(err):
		return "", true, err
	case err != nil:
		return "", true, nil
	}
	return env.LocalUID, true, nil
}

func fileUID(info fs.FileInfo) string {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(uint64(st.Uid), 10)
	}
	return "-"
}

// cappedReader reads at most left bytes and fails with ErrTooBig if there
// is more. Errors reading the drop file are storage errors (temporary).
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, fmt.Errorf("%w (more than %d bytes)", ErrTooBig, MaxDropMessage)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("%w (more than %d bytes)", ErrTooBig, MaxDropMessage)
	}
	if err != nil && err != io.EOF {
		err = storageErr(err, "read drop")
	}
	return n, err
}

// readDrop reads a drop's envelope from r, up to the empty line that ends
// it, and checks it as input from an untrusted user; r is left at the
// first byte of the message. See ParseDrop.
func readDrop(r *bufio.Reader) (*Envelope, error) {
	head, err := readEnvelope(r, maxDropLine, maxDropEnvelope)
	switch {
	case errors.Is(err, ErrInvalid):
		return nil, err
	case err != nil:
		return nil, storageErr(err, "read drop")
	}
	return ParseDrop(head)
}

// ParseDrop parses and checks the envelope of a drop (without the empty
// line after it). A drop's envelope must be exactly what MarshalEnvelope
// writes for an envelope that has only the fields Drop takes from a
// submitter: no hold, no delivery state, no auth-user, client-addr, helo,
// junk or local-uid, nothing a future version adds; the sender (if any) and
// every recipient must be valid addresses. Errors wrap ErrInvalid.
func ParseDrop(head []byte) (*Envelope, error) {
	env, err := ParseEnvelope(head)
	if err != nil {
		return nil, err
	}
	clean := dropFields(env)
	canonical, err := MarshalEnvelope(&clean)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, head) {
		return nil, fmt.Errorf("%w: a drop's envelope has only the sender, the recipients and their DSN parameters, body, smtputf8 and requiretls, as Drop writes them", ErrInvalid)
	}
	if clean.From != "" {
		if _, err := address.Parse(clean.From); err != nil {
			return nil, fmt.Errorf("%w: sender %.80q: %v", ErrInvalid, clean.From, err)
		}
	}
	for _, r := range clean.Recipients {
		if _, err := address.Parse(r.Address); err != nil {
			return nil, fmt.Errorf("%w: recipient %.80q: %v", ErrInvalid, r.Address, err)
		}
	}
	return &clean, nil
}
