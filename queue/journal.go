package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/remote"
	"github.com/postkit/postkit/spool"
)

// The delivery journal closes most of the window between a delivery and
// its record. Recording an outcome means an envelope update (an fsync) or
// the entry's removal, and several deliveries are under way at once: a
// runner killed with SIGKILL used to leave several recipients who had the
// message still pending, and the next runner delivered to them again.
//
// So the moment a delivery has succeeded (lda returned success, or a
// remote server answered 250 for the recipient), before its outcome is
// recorded, the runner appends one line per delivered recipient to its
// journal, ROOT/spool/journal/NAME, with one write(2) on a file opened
// O_APPEND. It does not fsync: a completed write(2) is in the page cache,
// and a process killed with SIGKILL cannot lose it; only a crash of the
// machine can, and what that loses is the tail of the journal, the
// deliveries of the last moments, whose outcomes were in flight: the
// duplicates a crash may always cause. An fsync per delivery would cost
// what the journal saves.
//
// A starting runner reads every journal that earlier runners left. When
// it attempts an entry, a pending recipient that an earlier runner
// journaled as delivered is not delivered again: it gets the outcome
// Delivered (relay and DSN flag as journaled) through the usual record
// path, logged with event=journal. A journal file is removed once none of
// the entries it mentions is in the spool, never earlier: until the new
// runner has recorded those outcomes, a runner after it must still find
// them. The runner's own file is rotated at journalRotate bytes and its
// rotated files are removed by the same rule, as is its last file when it
// stops.
//
// A local delivery is not over when it returns: maildir.Dir.Deliver links
// the file into new/ and then waits for the fsync of new/, which
// concurrent deliveries share, so a kill during that wait used to leave
// several messages visible that were never journaled, and the next runner
// delivered them again. So a local delivery also journals an intent, with
// the path the file is about to get, after the file is written and before
// it is linked there (lda's Options.BeforeStore, maildir's BeforeLink). A
// pending recipient that an earlier runner did not journal as delivered,
// but for whom it journaled intents, counts as delivered if one of those
// files exists now: at its path, or in cur/ under the same name with any
// flags (a mail client may have moved it from new/ meanwhile). It is then
// recorded as the journaled deliveries are; else it is delivered again.
// The message is visible only after its intent was written, so a kill
// cannot leave one visible that the next runner does not find. (Only a
// message the user deleted before the next runner started is delivered
// again.) A Sieve delivery that stores several copies (fileinto and keep)
// counts as delivered once one of them is there: a kill between two of
// its links leaves the later copies unstored rather than storing the
// earlier ones twice. A delivery whose intent cannot be written is not
// made: it fails temporarily and is retried.
//
// A file's name is the runner's start time, its process ID and a sequence
// number (20261122T070213.123456789Z.P4242.0); each line is one of
//
//	ID SP ADDRESS SP RELAY SP DSN LF
//	ID SP ADDRESS SP "intent" SP PATH LF
//
// ID the queue ID, ADDRESS the recipient exactly as in the envelope, RELAY
// the outcome's relay (local, or the remote host) and DSN yes when the
// remote server took over success notifications, else no. ADDRESS and RELAY
// are written as envelope values are: a plain word, or a Go double-quoted
// string. The first form says the delivery succeeded; the second, an
// intent, that a local delivery is about to store the file PATH (absolute,
// always a Go double-quoted string, so that it never reads as a DSN field).
// A line that does not parse is skipped, as is a last line without its LF
// (a machine crash can leave one). Runners older than intents skip intent
// lines as lines that do not parse.

// journalRotate is the size after which a runner starts a new journal file.
const journalRotate = 1 << 20

// maxJournalLine is the longest journal line read; longer ones are skipped.
const maxJournalLine = 64 << 10

// journalIntent is the third field of an intent line.
const journalIntent = "intent"

// journalEntry is one line of a journal: recipient addr of entry id was
// delivered (by relay, dsn), or, when intent is set, a local delivery to
// addr is about to store the file intent.
type journalEntry struct {
	id, addr, relay string
	dsn             bool
	intent          string
}

// appendJournalLine appends e's line to b.
func appendJournalLine(b []byte, e journalEntry) []byte {
	b = append(b, e.id...)
	b = append(b, ' ')
	b = append(b, spool.QuoteValue(e.addr)...)
	b = append(b, ' ')
	if e.intent != "" {
		b = append(b, journalIntent+" "...)
		b = strconv.AppendQuote(b, e.intent)
		return append(b, '\n')
	}
	b = append(b, spool.QuoteValue(e.relay)...)
	if e.dsn {
		return append(b, " yes\n"...)
	}
	return append(b, " no\n"...)
}

// parseJournalLine parses one line, without its LF.
func parseJournalLine(l string) (journalEntry, error) {
	var e journalEntry
	id, rest, ok := strings.Cut(l, " ")
	if !ok || !spool.ValidID(id) {
		return e, fmt.Errorf("queue: journal line %.60q: no queue id", l)
	}
	e.id = id
	var err error
	if e.addr, rest, err = journalField(rest); err != nil {
		return e, fmt.Errorf("queue: journal line %.60q: address: %w", l, err)
	}
	if e.addr == "" {
		return e, fmt.Errorf("queue: journal line %.60q: empty address", l)
	}
	// An intent's path is always quoted: the word intent followed by a
	// plain word is a delivered line's relay and DSN.
	if q, ok := strings.CutPrefix(rest, journalIntent+" "); ok && strings.HasPrefix(q, `"`) {
		if e.intent, err = strconv.Unquote(q); err != nil {
			return e, fmt.Errorf("queue: journal line %.60q: intent: bad quoted path", l)
		}
		if !filepath.IsAbs(e.intent) || strings.ContainsRune(e.intent, 0) {
			return e, fmt.Errorf("queue: journal line %.60q: intent: not an absolute path", l)
		}
		return e, nil
	}
	if e.relay, rest, err = journalField(rest); err != nil {
		return e, fmt.Errorf("queue: journal line %.60q: relay: %w", l, err)
	}
	switch rest {
	case "yes":
		e.dsn = true
	case "no":
	default:
		return e, fmt.Errorf("queue: journal line %.60q: dsn is neither yes nor no", l)
	}
	return e, nil
}

// journalField takes a value and the space after it off the start of s.
func journalField(s string) (value, rest string, err error) {
	raw, _, _ := strings.Cut(s, " ")
	if strings.HasPrefix(s, `"`) {
		if raw, err = strconv.QuotedPrefix(s); err != nil {
			return "", "", errors.New("bad quoted string")
		}
	}
	if value, err = spool.UnquoteValue(raw); err != nil {
		return "", "", err
	}
	rest, ok := strings.CutPrefix(s[len(raw):], " ")
	if !ok {
		return "", "", errors.New("missing field")
	}
	return value, rest, nil
}

// readJournal calls add for every line of r that parses, and returns how
// many did not; a last line without its LF (torn by a machine crash) does
// not count.
func readJournal(r io.Reader, add func(journalEntry)) (bad int, err error) {
	br := bufio.NewReaderSize(r, maxJournalLine)
	skipping := false // the rest of an overlong line
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				bad++
			}
			skipping = true
			continue
		case errors.Is(err, io.EOF):
			return bad, nil
		case err != nil:
			return bad, err
		}
		if skipping {
			skipping = false
			continue
		}
		e, perr := parseJournalLine(string(line[:len(line)-1]))
		if perr != nil {
			bad++
			continue
		}
		add(e)
	}
}

// journaled is what earlier runners journaled about one recipient: a
// delivery (delivered, with relay and dsn, in file), or else only the
// intents of local deliveries, the paths they were about to store (the
// first of them in file).
type journaled struct {
	delivered bool
	relay     string
	dsn       bool
	file      string
	intents   []string
}

// journal is a runner's delivery journal: the file it appends to and what
// it knows of the files earlier runners (and its own rotations) left.
type journal struct {
	sp       *spool.Spool
	dir      string
	logf     func(string, ...any)
	prefix   string // the name of this runner's files, without the sequence number
	rotateAt int64

	mu   sync.Mutex
	f    *os.File // nil until the next write creates a file
	name string
	seq  int
	size int64
	ids  map[string]bool // the entries the current file mentions
	// failing: the last write or creation failed, and was logged.
	failing bool
	// retired holds, per file that is not the current one, the entries it
	// mentions that may still be in the spool; once none is, the file
	// goes.
	retired map[string]map[string]bool
	// earlier holds, by entry ID and address, the deliveries that earlier
	// runners journaled, for entries that may still be in the spool.
	earlier map[string]map[string]journaled
}

// openJournal reads the journals earlier runners left in the spool; live
// is the spool's entries (sorted), or nil if they could not be listed.
// Files that mention no live entry are removed at once. Trouble reading
// is logged: the runner goes on, as it would without a journal.
func openJournal(sp *spool.Spool, logf func(string, ...any), live []string, rotateAt int64) *journal {
	now := time.Now().UTC()
	j := &journal{
		sp:       sp,
		dir:      filepath.Join(sp.Dir(), spool.JournalDir),
		logf:     logf,
		prefix:   fmt.Sprintf("%s.P%d", now.Format("20060102T150405.000000000Z"), os.Getpid()),
		rotateAt: rotateAt,
		ids:      map[string]bool{},
		retired:  map[string]map[string]bool{},
		earlier:  map[string]map[string]journaled{},
	}
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logf("event=journal error=%q", err)
		}
		return j
	}
	files, lines, intents := 0, 0, 0
	for _, de := range entries {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !de.Type().IsRegular() {
			continue
		}
		files++
		ids := map[string]bool{}
		bad, err := j.readFile(name, func(e journalEntry) {
			if live != nil && !isLive(live, e.id) {
				return
			}
			if e.intent != "" {
				intents++
			} else {
				lines++
			}
			ids[e.id] = true
			byAddr := j.earlier[e.id]
			if byAddr == nil {
				byAddr = map[string]journaled{}
				j.earlier[e.id] = byAddr
			}
			d, ok := byAddr[e.addr]
			switch {
			case d.delivered:
			case e.intent != "":
				if !ok {
					d.file = name
				}
				d.intents = append(d.intents, e.intent)
			default:
				d = journaled{delivered: true, relay: e.relay, dsn: e.dsn, file: name}
			}
			byAddr[e.addr] = d
		})
		if bad > 0 {
			logf("event=journal file=%s bad_lines=%d", maillog.Quote(name), bad)
		}
		if err != nil {
			// What could be read is used; the file is left alone (not
			// retired, so never removed) for a runner that can read it.
			logf("event=journal file=%s error=%q", maillog.Quote(name), err)
			continue
		}
		j.retired[name] = ids
	}
	if files > 0 {
		logf("event=journal files=%d entries=%d deliveries=%d intents=%d", files, len(j.earlier), lines, intents)
	}
	if live != nil {
		j.prune(live)
	}
	return j
}

func (j *journal) readFile(name string, add func(journalEntry)) (bad int, err error) {
	f, err := os.OpenFile(filepath.Join(j.dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return readJournal(f, add)
}

// isLive reports whether id is in live, the spool's sorted entry IDs.
func isLive(live []string, id string) bool {
	_, ok := slices.BinarySearch(live, id)
	return ok
}

// delivered journals the deliveries es, all of entry id, with one write(2).
// A failure is logged: the deliveries are made, and the journal would
// only have saved a few of them from being made again after a kill.
func (j *journal) delivered(id string, es []journalEntry) {
	if j == nil || len(es) == 0 {
		return
	}
	var b []byte
	for _, e := range es {
		b = appendJournalLine(b, e)
	}
	j.write(id, b)
}

// intent journals that a local delivery to addr of entry id is about to
// store the file path, with one write(2), and returns the error if that
// failed. Without a journal (a runner not started by Run) it does nothing.
func (j *journal) intent(id, addr, path string) error {
	if j == nil {
		return nil
	}
	return j.write(id, appendJournalLine(nil, journalEntry{id: id, addr: addr, intent: path}))
}

// write appends b, lines of entry id, to the current file, creating it if
// needed.
func (j *journal) write(id string, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		f, err := j.create()
		if err != nil {
			j.fail(err)
			return fmt.Errorf("queue: journal: %w", err)
		}
		j.f, j.name, j.size = f, filepath.Base(f.Name()), 0
	}
	// The entry counts as mentioned even if the write fails: part of the
	// line may be in the file.
	j.ids[id] = true
	n, err := j.f.Write(b)
	j.size += int64(n)
	if err != nil {
		// A short write leaves a torn line, which the next line would
		// be glued to: go on in a new file.
		j.fail(err)
		j.retire()
		return fmt.Errorf("queue: journal: %w", err)
	}
	if j.failing {
		j.failing = false
		j.logf("event=journal file=%s status=writing", maillog.Quote(j.name))
	}
	if j.size >= j.rotateAt {
		j.retire()
	}
	return nil
}

// create creates the next file of this runner's journal.
func (j *journal) create() (*os.File, error) {
	for {
		f, err := j.sp.CreateJournal(fmt.Sprintf("%s.%d", j.prefix, j.seq))
		j.seq++
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}

// fail logs a journal failure, once until a write works again: on a full
// disk every delivery would log it. Deliveries whose success it would
// journal go on; local deliveries whose intent it would journal are
// deferred (see intent).
func (j *journal) fail(err error) {
	if !j.failing {
		j.logf("event=journal status=failing error=%q", err)
	}
	j.failing = true
}

// retire closes the current file, which the rule for earlier runners'
// files removes once none of its entries is left.
func (j *journal) retire() {
	if j.f == nil {
		return
	}
	j.f.Close()
	j.retired[j.name] = j.ids
	j.f, j.ids = nil, map[string]bool{}
}

// lookup returns the deliveries of entry id that earlier runners journaled,
// by address. The map is never changed once read.
func (j *journal) lookup(id string) map[string]journaled {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.earlier[id]
}

// prune forgets the entries that are not in live (the spool's entries,
// sorted), and removes the retired files that mention none that are.
// Entry IDs are never used again, so an entry not in live is gone for
// good. It costs a binary search per entry still remembered: cheap enough
// for every scan.
func (j *journal) prune(live []string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for id := range j.earlier {
		if !isLive(live, id) {
			delete(j.earlier, id)
		}
	}
	for name, ids := range j.retired {
		for id := range ids {
			if !isLive(live, id) {
				delete(ids, id)
			}
		}
		if len(ids) > 0 {
			continue
		}
		// No fsync of journal/: a removal undone by a crash is made
		// again by the next runner.
		err := os.Remove(filepath.Join(j.dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.logf("event=journal file=%s error=%q", maillog.Quote(name), err)
			continue
		}
		delete(j.retired, name)
	}
}

// close retires the current file when the runner stops, after every
// attempt has finished and recorded its outcomes, and removes the files
// that mention no entry left in the spool: the runner's own, too, unless
// an outcome it journaled could not be recorded (the entry is still
// there) and the next runner needs it.
func (j *journal) close() {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.retire()
	j.mu.Unlock()
	live, err := j.sp.IDs()
	if err != nil {
		j.logf("event=journal error=%q", err)
		return
	}
	j.prune(live)
}

// skipJournaled records as delivered the jobs whose recipients an earlier
// runner journaled as delivered to (it was stopped before it recorded
// them), and returns the others, to be delivered.
func (a *attempt) skipJournaled(ctx context.Context, jobs []job) []job {
	done := a.r.journal.lookup(a.env.ID)
	if len(done) == 0 {
		return jobs
	}
	var rest []job
	var b batch
	for _, jb := range jobs {
		addr := a.env.Recipients[jb.rcpt].Address
		d, ok := done[addr]
		if !ok {
			rest = append(rest, jb)
			continue
		}
		o := outcome{
			status: remote.Delivered, code: "2.0.0", relay: d.relay, dsn: d.dsn,
			reply: "delivered by an earlier queue runner, which stopped before recording it (journal " + d.file + ")",
		}
		if !d.delivered {
			found := storedIntent(d.intents)
			if found == "" {
				// Killed before the link (or the delivery failed and
				// took its file back): not delivered.
				a.r.cfg.Logf("id=%s rcpt=%s event=journal status=not-stored intents=%d file=%s",
					a.env.ID, maillog.Quote(addr), len(d.intents), maillog.Quote(d.file))
				rest = append(rest, jb)
				continue
			}
			o.relay = "local"
			o.reply = "delivered to " + found + " by an earlier queue runner, which stopped before recording it (intent in journal " + d.file + ")"
			a.r.cfg.Logf("id=%s rcpt=%s event=journal status=delivered-before relay=local file=%s path=%s",
				a.env.ID, maillog.Quote(addr), maillog.Quote(d.file), maillog.Quote(found))
		} else {
			a.r.cfg.Logf("id=%s rcpt=%s event=journal status=delivered-before relay=%s file=%s",
				a.env.ID, maillog.Quote(addr), relayName(d.relay), maillog.Quote(d.file))
		}
		b.jobs = append(b.jobs, jb)
		b.outcomes = append(b.outcomes, o)
	}
	if len(b.jobs) > 0 {
		a.record(ctx, b)
	}
	return rest
}

// storedIntent returns the path of the file that one of the journaled
// intents stored, where it is now, or "" if none is there: at the path
// itself, or wherever its Maildir holds the same message now (in cur/ with
// flags, where a mail client moves a message it has seen).
func storedIntent(intents []string) string {
	for _, p := range intents {
		if _, err := os.Lstat(p); err == nil {
			return p
		}
		d := maildir.Dir(filepath.Dir(filepath.Dir(p)))
		base, _, _ := strings.Cut(filepath.Base(p), ":")
		if rel, ok := d.Find(base); ok {
			return filepath.Join(string(d), rel)
		}
	}
	return ""
}

// journalDelivered journals the deliveries among a group's outcomes,
// before they are recorded.
func (a *attempt) journalDelivered(jobs []job, outs []outcome) {
	if a.r.journal == nil {
		return
	}
	var es []journalEntry
	a.mu.Lock()
	id := a.env.ID
	for i, jb := range jobs {
		if outs[i].status == remote.Delivered {
			es = append(es, journalEntry{id: id, addr: a.env.Recipients[jb.rcpt].Address, relay: outs[i].relay, dsn: outs[i].dsn})
		}
	}
	a.mu.Unlock()
	a.r.journal.delivered(id, es)
}
