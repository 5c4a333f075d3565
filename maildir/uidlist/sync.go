package uidlist

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/safefile"
)

// ErrUIDsExhausted is returned when a folder has used up all 2^32-2 UIDs;
// only a new UIDVALIDITY (recreating the folder) helps.
var ErrUIDsExhausted = errors.New("uidlist: no UIDs left")

// Options tune how a Mailbox waits for Dovecot's locks. The zero value
// gives the defaults.
type Options struct {
	// LockTimeout is how long to wait for another holder of a dotlock
	// (DefaultLockTimeout if zero).
	LockTimeout time.Duration
	// StaleTimeout is how long a dovecot-uidlist.lock of a process that
	// is not known to be alive may stay unchanged before it is overridden
	// (DefaultStaleTimeout if zero, as in Dovecot).
	StaleTimeout time.Duration
	// Root is the Maildir++ root whose dovecot-uidvalidity file gives new
	// folders their UIDVALIDITY. If empty it is the Maildir itself, or
	// its parent if the Maildir has a maildirfolder file.
	Root string
}

// An Entry is one message of a synced folder.
type Entry struct {
	UID uint32
	// Base is the file name up to the info separator ':', as the UID list
	// records it (",S=" and ",W=" included). It never changes while the
	// message exists.
	Base string
	// Filename is the current file, relative to the Maildir:
	// "new/BASE" or "cur/BASE:2,FLAGS".
	Filename string
	// Size and VSize are the file's size and its size with CRLF line
	// endings (IMAP RFC822.SIZE), from the name's ,S= and ,W= or the
	// record's S and W fields; -1 when unknown.
	Size, VSize int64
	// GUID is the message GUID as Dovecot reports it: the record's G
	// field if it has one, else Base.
	GUID string
	// Ext holds the record's extension fields (see Record.Ext), shared
	// with the list: do not modify.
	Ext []Field
}

// Name returns the file's name within new/ or cur/.
func (e Entry) Name() string { return path.Base(e.Filename) }

// InNew reports whether the file is in new/.
func (e Entry) InNew() bool { return strings.HasPrefix(e.Filename, "new/") }

// A State is a folder as a Sync found it. It is shared between the callers
// of a Mailbox's Sync and must not be modified.
type State struct {
	UIDValidity uint32
	NextUID     uint32
	GUID        string  // mailbox GUID, 32 lower-case hex digits
	Entries     []Entry // in increasing UID order
}

// A Mailbox is one Maildir folder whose UIDs Sync keeps in its
// dovecot-uidlist. It remembers the last Sync, so that syncing a folder in
// which nothing changed costs three stat calls. It is safe for concurrent
// use; other Mailboxes and processes (Dovecot among them) may sync the same
// folder at the same time.
type Mailbox struct {
	dir string
	opt Options

	mu    sync.Mutex
	cache *syncCache
}

type syncCache struct {
	list           fileKey
	newDir, curDir fileKey
	state          *State
}

// fileKey identifies a version of a file or directory: any change to a
// uidlist changes its inode (rename) or size (append); any change to a
// directory's entries changes its mtime.
type fileKey struct {
	exists bool
	id     fileID
	size   int64
	mtime  int64 // nanoseconds
}

func keyOf(info fs.FileInfo) fileKey {
	return fileKey{true, idOf(info), info.Size(), info.ModTime().UnixNano()}
}

func statKey(p string) (fileKey, error) {
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fileKey{}, nil
	}
	if err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	return keyOf(info), nil
}

// Open returns the Mailbox of the Maildir dir (a Maildir++ root or folder
// directory). opt may be nil.
func Open(dir string, opt *Options) *Mailbox {
	m := &Mailbox{dir: dir}
	if opt != nil {
		m.opt = *opt
	}
	if m.opt.LockTimeout == 0 {
		m.opt.LockTimeout = DefaultLockTimeout
	}
	if m.opt.StaleTimeout == 0 {
		m.opt.StaleTimeout = DefaultStaleTimeout
	}
	return m
}

// Sync is Open(dir, nil).Sync().
func Sync(dir string) (*State, error) {
	return Open(dir, nil).Sync()
}

// Dir returns the Maildir's path.
func (m *Mailbox) Dir() string { return m.dir }

func (m *Mailbox) listPath() string { return filepath.Join(m.dir, FileName) }

func (m *Mailbox) root() string {
	if m.opt.Root != "" {
		return m.opt.Root
	}
	if _, err := os.Stat(filepath.Join(m.dir, maildir.FolderMarker)); err == nil {
		return filepath.Dir(m.dir)
	}
	return m.dir
}

func (m *Mailbox) uidlistLock() (*dotlock, error) {
	return lockDotlock(m.listPath(), dotlockOptions{
		writePID: true,
		timeout:  m.opt.LockTimeout,
		stale:    m.opt.StaleTimeout,
	})
}

// Sync brings the folder's dovecot-uidlist up to date with the files in
// new/ and cur/ and returns the folder's messages. Files not yet listed get
// the next UIDs, in Dovecot's order (CompareNames); files that are gone are
// left out, and dropped from the file once a quarter of its records are
// gone (Dovecot's rule), or whenever it is rewritten. A folder without
// dovecot-uidlist gets a new UIDVALIDITY (NextUIDValidity); so does one
// whose dovecot-uidlist is corrupt, greater than the old one, with its
// messages numbered anew, since their old UIDs can no longer be known.
func (m *Mailbox) Sync() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.cached(); s != nil {
		return s, nil
	}
	if _, err := os.Stat(m.dir); err != nil {
		return nil, fmt.Errorf("uidlist: %w", err)
	}
	lf, err := m.readList()
	if err != nil {
		return nil, err
	}
	sc, err := m.scan(lf.list)
	if err != nil {
		return nil, err
	}
	if !needsUpdate(lf, sc) {
		state := buildState(lf.list, sc)
		m.remember(lf.key, sc, state)
		return state, nil
	}

	lock, err := m.uidlistLock()
	if err != nil {
		return nil, err
	}
	// Read again under the lock: another process may have assigned the
	// UIDs meanwhile. The listing is not repeated while the lock is held:
	// other processes wait for it, and listing a busy folder can take
	// several tries with pauses. Files that came after the listing get
	// their UIDs at the next Sync; and unless the directories are still
	// as listed, the listing no longer proves any file gone, so no record
	// is dropped.
	lf, err = m.readList()
	if err == nil && !m.unchanged(sc) {
		sc.stable = false
	}
	var state *State
	var key fileKey
	if err == nil {
		state, key, err = m.update(lf, sc)
	}
	if rerr := lock.release(); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	m.remember(key, sc, state)
	return state, nil
}

// cached returns the last Sync's state if the uidlist, new/ and cur/ have
// not changed since.
func (m *Mailbox) cached() *State {
	c := m.cache
	if c == nil {
		return nil
	}
	list, err1 := statKey(m.listPath())
	newDir, err2 := statKey(filepath.Join(m.dir, "new"))
	curDir, err3 := statKey(filepath.Join(m.dir, "cur"))
	if err1 != nil || err2 != nil || err3 != nil || list != c.list || newDir != c.newDir || curDir != c.curDir {
		m.cache = nil
		return nil
	}
	return c.state
}

// unchanged reports whether a stable listing still holds.
func (m *Mailbox) unchanged(sc *scan) bool {
	newDir, err1 := statKey(filepath.Join(m.dir, "new"))
	curDir, err2 := statKey(filepath.Join(m.dir, "cur"))
	return sc.stable && err1 == nil && err2 == nil && newDir == sc.newDir && curDir == sc.curDir
}

// remember keeps state for cached if the scan was stable (so a later change
// of the directories will show in their mtimes).
func (m *Mailbox) remember(list fileKey, sc *scan, state *State) {
	m.cache = nil
	if sc.stable && list.exists {
		m.cache = &syncCache{list: list, newDir: sc.newDir, curDir: sc.curDir, state: state}
	}
}

// listFile is what readList found.
type listFile struct {
	list    *List // nil if the file is missing or corrupt
	torn    bool  // the file ends in an unterminated line
	corrupt error
	// oldValidity is the UIDVALIDITY of a corrupt file whose header could
	// still be read, 0 if not.
	oldValidity uint32
	key         fileKey
}

func (m *Mailbox) readList() (listFile, error) {
	var lf listFile
	f, err := os.Open(m.listPath())
	if errors.Is(err, fs.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return lf, fmt.Errorf("uidlist: %w", err)
	}
	defer f.Close()
	// The key comes from before the read, so a change during it can only
	// make the cache miss later, never hold stale data.
	info, err := f.Stat()
	if err != nil {
		return lf, fmt.Errorf("uidlist: %w", err)
	}
	lf.key = keyOf(info)
	data, err := io.ReadAll(f)
	if err != nil {
		return lf, fmt.Errorf("uidlist: read %s: %w", m.listPath(), err)
	}
	lf.list, lf.torn, lf.corrupt = parse(data)
	if lf.corrupt != nil {
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			if l, _, err := parseHeader(strings.TrimRight(line, "\r")); err == nil {
				lf.oldValidity = l.UIDValidity
			}
		}
	}
	return lf, nil
}

// scan is a listing of new/ and cur/.
type scan struct {
	files          map[string]string // base name -> "new/NAME" or "cur/NAME"
	newDir, curDir fileKey
	// stable reports that no file was renamed, added or removed during the
	// listing: the directories' mtimes did not change, and were at least
	// settle older than its start.
	stable bool
}

const (
	// maxScans bounds the listings of a folder whose directories keep
	// changing.
	maxScans = 4
	// settle is how old a directory's mtime must be for a listing to count
	// as stable. File times come from a clock that ticks every few
	// milliseconds, so a change made during the listing could carry the
	// same mtime as one made just before it; it cannot if that one is
	// older than a couple of ticks.
	settle = 25 * time.Millisecond
)

// scan lists new/ and then cur/, so that a file moving from new/ to cur/
// meanwhile is seen at least once. A file whose flags another process
// changes during the listing of cur/ could be missed, so when a file of l
// was not found the listing is repeated, after a pause, until it is stable.
func (m *Mailbox) scan(l *List) (*scan, error) {
	newPath, curPath := filepath.Join(m.dir, "new"), filepath.Join(m.dir, "cur")
	for i := 0; ; i++ {
		hint := 0
		if l != nil {
			hint = len(l.Records)
		}
		sc := &scan{files: make(map[string]string, hint)}
		limit := time.Now().Add(-settle).UnixNano()
		var err error
		if sc.newDir, err = statKey(newPath); err != nil {
			return nil, err
		}
		if sc.curDir, err = statKey(curPath); err != nil {
			return nil, err
		}
		if err := listNames(newPath, "new/", sc.files); err != nil {
			return nil, err
		}
		if err := listNames(curPath, "cur/", sc.files); err != nil {
			return nil, err
		}
		newAfter, err := statKey(newPath)
		if err != nil {
			return nil, err
		}
		curAfter, err := statKey(curPath)
		if err != nil {
			return nil, err
		}
		sc.stable = newAfter == sc.newDir && curAfter == sc.curDir &&
			sc.newDir.mtime <= limit && sc.curDir.mtime <= limit
		if sc.stable || i == maxScans-1 || !missing(l, sc.files) {
			return sc, nil
		}
		time.Sleep(settle)
	}
}

// missing reports whether a file of l was not found.
func missing(l *List, files map[string]string) bool {
	if l == nil {
		return false
	}
	for _, r := range l.Records {
		if _, ok := files[r.Name]; !ok {
			return true
		}
	}
	return false
}

// listNames adds the message files of dir to files. Like Dovecot it skips
// names starting with '.' and names with CR or LF (which a uidlist line
// cannot hold). A missing directory lists as empty.
func listNames(dir, prefix string, files map[string]string) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("uidlist: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("uidlist: list %s: %w", dir, err)
	}
	for _, name := range names {
		if name == "" || name[0] == '.' || strings.ContainsAny(name, "\r\n") {
			continue
		}
		// A file in both new/ and cur/ (a crash between link and unlink)
		// is one message; cur/, listed last, wins.
		files[BaseName(name)] = prefix + name
	}
	return nil
}

// needsUpdate reports whether the uidlist must be written: it is missing,
// broken or without a mailbox GUID, a file has no UID yet, or enough
// records are gone to be worth dropping.
func needsUpdate(lf listFile, sc *scan) bool {
	if lf.list == nil || lf.torn || lf.list.GUID == "" {
		return true
	}
	listed := make(map[string]bool, len(lf.list.Records))
	kept := 0
	for _, r := range lf.list.Records {
		listed[r.Name] = true
		if _, ok := sc.files[r.Name]; ok {
			kept++
		}
	}
	for base := range sc.files {
		if !listed[base] {
			return true
		}
	}
	return sc.stable && wantCompress(len(lf.list.Records), kept, 0)
}

// wantCompress is Dovecot's rule for rewriting a uidlist without the
// records of gone files: when at least a quarter of them are gone
// (UIDLIST_COMPRESS_PERCENTAGE).
func wantCompress(records, kept, added int) bool {
	return kept < records && (records+added)*75/100 >= kept+added
}

// update writes the uidlist for the scanned files; the uidlist lock is held.
func (m *Mailbox) update(lf listFile, sc *scan) (*State, fileKey, error) {
	l := lf.list
	recreate := l == nil || lf.torn || l.GUID == ""
	switch {
	case lf.corrupt != nil:
		// The old UIDs cannot be trusted: number the messages anew under
		// a greater UIDVALIDITY (RFC 3501 §2.3.1.1).
		l = &List{UIDValidity: max(NextUIDValidity(m.root()), lf.oldValidity+1), NextUID: 1}
	case l == nil:
		l = &List{UIDValidity: NextUIDValidity(m.root()), NextUID: 1}
	}
	if l.GUID == "" {
		l.GUID = newGUID()
	}

	listed := make(map[string]bool, len(l.Records))
	kept := make([]Record, 0, len(l.Records))
	for _, r := range l.Records {
		listed[r.Name] = true
		// A record is dropped only if a stable listing proved its file
		// gone; a file missed while being renamed keeps its UID.
		if _, ok := sc.files[r.Name]; ok || !sc.stable {
			kept = append(kept, r)
		}
	}
	var fresh []string
	for base := range sc.files {
		if !listed[base] {
			fresh = append(fresh, base)
		}
	}
	sortNames(fresh)
	if uint64(l.NextUID)+uint64(len(fresh)) > maxUID {
		return nil, fileKey{}, fmt.Errorf("%w in %s", ErrUIDsExhausted, m.dir)
	}
	added := make([]Record, len(fresh))
	for i, base := range fresh {
		added[i] = Record{UID: l.NextUID, Name: base}
		l.NextUID++
	}
	if wantCompress(len(l.Records), len(kept), len(added)) {
		recreate = true
	}

	var key fileKey
	var err error
	switch {
	case recreate:
		l.Records = append(kept, added...)
		key, err = m.writeList(l)
	case len(added) > 0:
		key, err = m.appendRecords(lf.key, added)
		l.Records = append(l.Records, added...)
	default:
		key = lf.key
	}
	if err != nil {
		return nil, fileKey{}, err
	}
	return buildState(l, sc), key, nil
}

// writeList replaces the uidlist as Dovecot does: the list is written to
// dovecot-uidlist.tmp (a fixed name: only the lock holder writes it),
// fsynced and renamed over dovecot-uidlist.
func (m *Mailbox) writeList(l *List) (fileKey, error) {
	tmp := m.listPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	_, err = f.Write(l.Marshal())
	if err == nil {
		err = f.Sync()
	}
	var info fs.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, m.listPath())
	}
	if err != nil {
		os.Remove(tmp)
		return fileKey{}, fmt.Errorf("uidlist: write %s: %w", m.listPath(), err)
	}
	if err := safefile.SyncDir(m.dir); err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	return keyOf(info), nil
}

// appendRecords appends records to the uidlist, as Dovecot does when it
// only adds messages: one write, then fdatasync. The header's N field is
// left behind; readers take the last record's UID into account.
func (m *Mailbox) appendRecords(read fileKey, records []Record) (fileKey, error) {
	f, err := os.OpenFile(m.listPath(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	if idOf(info) != read.id || info.Size() != read.size {
		// Someone wrote it without holding the lock, or overrode ours.
		return fileKey{}, fmt.Errorf("uidlist: %s changed while locked", m.listPath())
	}
	var b strings.Builder
	for _, r := range records {
		b.WriteString(strconv.FormatUint(uint64(r.UID), 10))
		b.WriteString(" :")
		b.WriteString(r.Name)
		b.WriteByte('\n')
	}
	if _, err := f.WriteString(b.String()); err != nil {
		return fileKey{}, fmt.Errorf("uidlist: append to %s: %w", m.listPath(), err)
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fileKey{}, fmt.Errorf("uidlist: fdatasync %s: %w", m.listPath(), err)
	}
	if info, err = f.Stat(); err != nil {
		return fileKey{}, fmt.Errorf("uidlist: %w", err)
	}
	return keyOf(info), nil
}

// sortNames sorts base names in CompareNames order, ties byte-wise. The
// parts CompareNames looks at are parsed once per name, not once per
// comparison: a first sync of a large folder sorts every file.
func sortNames(names []string) {
	type key struct {
		name, rest string
		secs       int64
		usecs      int32
		hasUsecs   bool
	}
	keys := make([]key, len(names))
	for i, n := range names {
		rest, secs := leadingSeconds(n)
		usecs, ok := microseconds(rest)
		keys[i] = key{n, rest, secs, usecs, ok}
	}
	slices.SortFunc(keys, func(a, b key) int {
		// As CompareNames.
		ret := int32(a.secs - b.secs)
		if ret == 0 && a.hasUsecs && b.hasUsecs {
			ret = a.usecs - b.usecs
		}
		if ret == 0 {
			ret = compareBases(a.rest, b.rest)
		}
		if ret != 0 {
			return int(ret)
		}
		return strings.Compare(a.name, b.name)
	})
	for i := range keys {
		names[i] = keys[i].name
	}
}

// buildState pairs the list's records with the scanned files.
func buildState(l *List, sc *scan) *State {
	s := &State{UIDValidity: l.UIDValidity, NextUID: l.NextUID, GUID: l.GUID}
	s.Entries = make([]Entry, 0, min(len(l.Records), len(sc.files)))
	for _, r := range l.Records {
		file, ok := sc.files[r.Name]
		if !ok {
			continue
		}
		size, vsize := maildir.NameSizes(path.Base(file))
		e := Entry{UID: r.UID, Base: r.Name, Filename: file, Size: size, VSize: vsize, GUID: r.Name, Ext: r.Ext}
		if e.Size < 0 {
			e.Size = extSize(r, 'S')
		}
		if e.VSize < 0 {
			e.VSize = extSize(r, 'W')
		}
		if g, ok := r.Lookup('G'); ok && g != "" {
			e.GUID = g
		}
		s.Entries = append(s.Entries, e)
	}
	return s
}

func extSize(r Record, key byte) int64 {
	v, ok := r.Lookup(key)
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// newGUID returns a new mailbox GUID. Dovecot builds its GUIDs from the
// time, PID and host name; any unique 128-bit value serves.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
