package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// The stress test's load: how long it runs and how much it may do.
const (
	stressDuration      = 60 * time.Second
	stressShortDuration = 10 * time.Second // with -short
	stressProcesses     = 4                // imapd processes
	stressSessions      = 2                // IMAP sessions per process
	stressMaxDeliveries = 1500
	stressMaxErrors     = 30 // failures reported before the rest are only counted
)

// stressKeywords are the keywords STORE sets, besides system flags.
var stressKeywords = []imap.Flag{"Stress1", "Stress2"}

// TestIMAPdStress runs four imapd processes, deliver (one process per
// message) and pop3d on one Maildir at once for a minute: IMAP sessions
// SELECT, IDLE, NOOP, STORE flags, COPY to Archive, MOVE to Trash and
// EXPUNGE; POP3 sessions RETR (which sets \Seen) and sometimes DELE and
// QUIT. Then it checks what the sessions saw and what is on disk: UIDs
// strictly increasing in every listing and never naming two messages,
// every delivered message present exactly once in INBOX or Trash unless
// the test deleted it, in Archive exactly once if copied, the flags that
// a STORE set last still there, and every server still running without a
// panic.
func TestIMAPdStress(t *testing.T) {
	duration := stressDuration
	if testing.Short() {
		duration = stressShortDuration
	}
	root := t.TempDir()
	mkuser := exec.Command(Bin(t, "mkuser"), "--root", root, "add", imapUser)
	mkuser.Stdin = strings.NewReader(imapPassword + "\n")
	if out, err := mkuser.CombinedOutput(); err != nil {
		t.Fatalf("mkuser add: %v\n%s", err, out)
	}
	deliverBin := Bin(t, "deliver")
	var procs []*daemon
	for range stressProcesses {
		procs = append(procs, startIMAPd(t, root, "--allow-plaintext-loopback"))
	}
	pop := startPOP3d(t, root, "--allow-plaintext-loopback")

	st := newStressState(t)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.deliverLoop(deliverBin, root, deadline)
	}()
	for i := range stressProcesses * stressSessions {
		w, err := newStressIMAP(st, i, procs[i%stressProcesses].addr)
		if err != nil {
			t.Fatalf("IMAP session %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.c.Close()
			w.run(deadline)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		st.pop3Loop(pop.addr, deadline)
	}()
	wg.Wait()

	for i, p := range procs {
		if !stressAlive(p.cmd, p.done) {
			t.Errorf("imapd process %d is no longer running", i+1)
		}
	}
	if !stressAlive(pop.cmd, pop.done) {
		t.Error("pop3d is no longer running")
	}
	logs := [][]string{pop.lines()}
	for _, p := range procs {
		logs = append(logs, p.lines())
	}
	for _, lines := range logs {
		for _, l := range lines {
			if strings.Contains(l, "panic") || strings.Contains(l, "fatal error") || strings.Contains(l, " error ") {
				t.Errorf("server log: %s", l)
			}
		}
	}
	st.check(root, procs[0].addr)
}

// stressAlive reports whether a server is still running: its stderr is
// open and the process exists.
func stressAlive(cmd *exec.Cmd, done chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
	}
	return cmd.Process.Signal(syscall.Signal(0)) == nil
}

// stressEvent is something a session did that may change a message's
// flags, with when it was asked for and when it was answered (by the
// test's monotonic clock).
type stressEvent struct {
	kind       string // "store", "delete", "retr", "move", "failed"
	flags      []imap.Flag
	start, end time.Time
}

// stressState is what the test's clients did and saw.
type stressState struct {
	t *testing.T

	mu          sync.Mutex
	errors      int
	delivered   map[string]bool
	mayBeGone   map[string]bool // DELE or \Deleted+EXPUNGE was issued
	copyClaimed map[string]bool // COPY to Archive was issued (once per token)
	copied      map[string]bool // COPY answered with COPYUID for the token
	moveClaimed map[string]bool
	moved       map[string]bool                // MOVE answered with COPYUID
	uids        map[string]map[imap.UID]string // folder -> UID -> token
	tokenUID    map[string]map[string]imap.UID // folder -> token -> UID
	validity    uint32
	events      map[string][]*stressEvent
	counts      map[string]int           // operations done, for the log
	spent       map[string]time.Duration // and the time they took
}

func newStressState(t *testing.T) *stressState {
	st := &stressState{t: t, delivered: map[string]bool{}, mayBeGone: map[string]bool{},
		copyClaimed: map[string]bool{}, copied: map[string]bool{}, moveClaimed: map[string]bool{},
		moved: map[string]bool{}, uids: map[string]map[imap.UID]string{}, tokenUID: map[string]map[string]imap.UID{},
		events: map[string][]*stressEvent{}, counts: map[string]int{}, spent: map[string]time.Duration{}}
	for _, f := range []string{"INBOX", "Archive", "Trash"} {
		st.uids[f] = map[imap.UID]string{}
		st.tokenUID[f] = map[string]imap.UID{}
	}
	return st
}

// fail reports a failure from any goroutine; after stressMaxErrors only
// the count grows.
func (st *stressState) fail(format string, args ...any) {
	st.mu.Lock()
	st.errors++
	n := st.errors
	st.mu.Unlock()
	if n <= stressMaxErrors {
		st.t.Errorf(format, args...)
	}
}

// count records an operation begun at start.
func (st *stressState) count(op string, start time.Time) {
	st.mu.Lock()
	st.counts[op]++
	st.spent[op] += time.Since(start)
	st.mu.Unlock()
}

// observe records that uid names the message token in folder, as a
// session saw it, and fails if a UID named another message or the
// message had another UID.
func (st *stressState) observe(who, folder string, uid imap.UID, token string) {
	st.mu.Lock()
	var problem string
	if old, ok := st.uids[folder][uid]; ok && old != token {
		problem = fmt.Sprintf("%s: %s UID %d is %s, earlier seen as %s", who, folder, uid, token, old)
	} else if old, ok := st.tokenUID[folder][token]; ok && old != uid {
		problem = fmt.Sprintf("%s: %s %s has UID %d, earlier seen with UID %d", who, folder, token, uid, old)
	} else {
		st.uids[folder][uid] = token
		st.tokenUID[folder][token] = uid
	}
	st.mu.Unlock()
	if problem != "" {
		st.fail("%s", problem)
	}
}

// claim marks token in set and reports whether it was not marked yet.
func (st *stressState) claim(set map[string]bool, token string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if set[token] {
		return false
	}
	set[token] = true
	return true
}

func (st *stressState) mark(set map[string]bool, token string) {
	st.mu.Lock()
	set[token] = true
	st.mu.Unlock()
}

func (st *stressState) event(token string, e *stressEvent) {
	st.mu.Lock()
	st.events[token] = append(st.events[token], e)
	st.mu.Unlock()
}

func stressToken(i int) string { return fmt.Sprintf("stress-t%06d", i) }

// deliverLoop runs deliver for one message after another, spread evenly
// over the time until the deadline, at most stressMaxDeliveries.
func (st *stressState) deliverLoop(deliverBin, root string, deadline time.Time) {
	begin := time.Now()
	interval := time.Until(deadline) / stressMaxDeliveries
	for i := 1; i <= stressMaxDeliveries && time.Now().Before(deadline); i++ {
		// Spread the deliveries over the whole run.
		time.Sleep(time.Until(begin.Add(time.Duration(i-1) * interval)))
		token := stressToken(i)
		msg := fmt.Sprintf("From: stress@example.net\nTo: %s\nSubject: %s\nMessage-ID: <%s@example.net>\n\nThis is message %s.\n",
			imapUser, token, token, token)
		start := time.Now()
		cmd := exec.Command(deliverBin, "--root", root, imapUser)
		cmd.Stdin = strings.NewReader(msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			st.fail("deliver %s: %v\n%s", token, err, out)
			continue
		}
		st.mark(st.delivered, token)
		st.count("deliver", start)
	}
}

// stressIMAP is one IMAP session of the test.
type stressIMAP struct {
	st     *stressState
	name   string
	c      *imapclient.Client
	rng    *rand.Rand
	known  map[imap.UID]string // INBOX UID -> token
	view   []imap.UID          // INBOX UIDs at the last listing
	exists chan struct{}
}

func newStressIMAP(st *stressState, i int, addr string) (*stressIMAP, error) {
	w := &stressIMAP{st: st, name: fmt.Sprintf("session %d", i), rng: rand.New(rand.NewPCG(uint64(i), 42)),
		known: map[imap.UID]string{}, exists: make(chan struct{}, 1)}
	var err error
	w.c, err = imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case w.exists <- struct{}{}:
				default:
				}
			}
		},
	}})
	if err != nil {
		return nil, err
	}
	if err := w.c.Login(imapUser, imapPassword).Wait(); err != nil {
		w.c.Close()
		return nil, err
	}
	if i%2 == 1 {
		// Half the sessions speak IMAP4rev2, half IMAP4rev1.
		if _, err := w.c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
			w.c.Close()
			return nil, err
		}
	}
	return w, nil
}

// expungeIssued reports whether err is the NO [EXPUNGEISSUED] that
// commands on messages another session removed may end with.
func expungeIssued(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && ie.Code == "EXPUNGEISSUED"
}

func (w *stressIMAP) run(deadline time.Time) {
	if !w.selectInbox() {
		return
	}
	for n := 0; time.Now().Before(deadline); n++ {
		var ok bool
		switch r := w.rng.IntN(100); {
		case n%8 == 0 || len(w.view) == 0:
			ok = w.refresh()
		case r < 35:
			ok = w.store()
		case r < 50:
			ok = w.noop()
		case r < 60:
			ok = w.idle()
		case r < 72:
			ok = w.copyToArchive()
		case r < 80:
			ok = w.moveToTrash()
		case r < 88:
			ok = w.expunge()
		case r < 93:
			ok = w.selectInbox()
		default:
			ok = w.refresh()
		}
		if !ok {
			return
		}
	}
	if err := w.c.Logout().Wait(); err != nil {
		w.st.fail("%s: LOGOUT: %v", w.name, err)
	}
}

func (w *stressIMAP) selectInbox() bool {
	start := time.Now()
	data, err := w.c.Select("INBOX", nil).Wait()
	if err != nil {
		w.st.fail("%s: SELECT: %v", w.name, err)
		return false
	}
	w.st.mu.Lock()
	if w.st.validity == 0 {
		w.st.validity = data.UIDValidity
	}
	validity := w.st.validity
	w.st.mu.Unlock()
	if data.UIDValidity != validity {
		w.st.fail("%s: SELECT UIDVALIDITY %d, earlier %d", w.name, data.UIDValidity, validity)
		return false
	}
	w.st.count("select", start)
	return w.refresh()
}

// refresh lists the UIDs of INBOX, checks that they increase with the
// sequence numbers, and learns the tokens of new ones from their
// envelopes.
func (w *stressIMAP) refresh() bool {
	start := time.Now()
	msgs, err := w.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil && !expungeIssued(err) {
		w.st.fail("%s: UID FETCH 1:* (UID): %v", w.name, err)
		return false
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.SeqNum) - int(b.SeqNum) })
	w.view = w.view[:0]
	var unknown imap.UIDSet
	for i, m := range msgs {
		if i > 0 && (m.SeqNum == msgs[i-1].SeqNum || m.UID <= msgs[i-1].UID) {
			w.st.fail("%s: message %d has UID %d after message %d with UID %d", w.name, m.SeqNum, m.UID, msgs[i-1].SeqNum, msgs[i-1].UID)
			return false
		}
		w.view = append(w.view, m.UID)
		if _, ok := w.known[m.UID]; !ok {
			unknown.AddNum(m.UID)
		}
	}
	if len(unknown) > 0 {
		msgs, err := w.c.Fetch(unknown, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
		if err != nil && !expungeIssued(err) {
			w.st.fail("%s: UID FETCH %v (ENVELOPE): %v", w.name, unknown, err)
			return false
		}
		for _, m := range msgs {
			if m.Envelope == nil || !strings.HasPrefix(m.Envelope.Subject, "stress-t") {
				w.st.fail("%s: UID %d has envelope %+v", w.name, m.UID, m.Envelope)
				continue
			}
			w.known[m.UID] = m.Envelope.Subject
			w.st.observe(w.name, "INBOX", m.UID, m.Envelope.Subject)
		}
	}
	w.st.count("fetch", start)
	return true
}

// pick returns a message of the last listing whose token is known.
func (w *stressIMAP) pick() (imap.UID, string, bool) {
	for range 5 {
		if len(w.view) == 0 {
			return 0, "", false
		}
		uid := w.view[w.rng.IntN(len(w.view))]
		if token, ok := w.known[uid]; ok {
			return uid, token, true
		}
	}
	return 0, "", false
}

// store replaces the flags of one message by a random set.
func (w *stressIMAP) store() bool {
	start := time.Now()
	uid, token, ok := w.pick()
	if !ok {
		return true
	}
	var flags []imap.Flag
	for _, f := range append([]imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered, imap.FlagDraft}, stressKeywords...) {
		if w.rng.IntN(2) == 0 {
			flags = append(flags, f)
		}
	}
	e := &stressEvent{kind: "store", flags: flags, start: time.Now()}
	err := w.c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: flags}, nil).Close()
	e.end = time.Now()
	if err != nil {
		e.kind = "failed"
	}
	w.st.event(token, e)
	if err != nil && !expungeIssued(err) {
		w.st.fail("%s: UID STORE %d FLAGS %v: %v", w.name, uid, flags, err)
		return false
	}
	w.st.count("store", start)
	return true
}

func (w *stressIMAP) noop() bool {
	start := time.Now()
	if err := w.c.Noop().Wait(); err != nil {
		w.st.fail("%s: NOOP: %v", w.name, err)
		return false
	}
	w.st.count("noop", start)
	return true
}

// idle waits in IDLE for a new message, at most a fraction of a second.
func (w *stressIMAP) idle() bool {
	start := time.Now()
	select {
	case <-w.exists:
	default:
	}
	cmd, err := w.c.Idle()
	if err != nil {
		w.st.fail("%s: IDLE: %v", w.name, err)
		return false
	}
	timer := time.NewTimer(time.Duration(100+w.rng.IntN(400)) * time.Millisecond)
	select {
	case <-w.exists:
	case <-timer.C:
	}
	timer.Stop()
	if err := cmd.Close(); err != nil {
		w.st.fail("%s: DONE: %v", w.name, err)
		return false
	}
	if err := cmd.Wait(); err != nil {
		w.st.fail("%s: IDLE: %v", w.name, err)
		return false
	}
	w.st.count("idle", start)
	return true
}

// copyToArchive copies a message to Archive, each message at most once.
func (w *stressIMAP) copyToArchive() bool {
	start := time.Now()
	uid, token, ok := w.pick()
	if !ok || !w.st.claim(w.st.copyClaimed, token) {
		return true
	}
	data, err := w.c.Copy(imap.UIDSetNum(uid), "Archive").Wait()
	if err != nil && !expungeIssued(err) {
		w.st.fail("%s: UID COPY %d Archive: %v", w.name, uid, err)
		return false
	}
	if err == nil && data != nil && stressContains(data.SourceUIDs, uid) {
		dest, ok := stressPair(data.SourceUIDs, data.DestUIDs, uid)
		if !ok {
			w.st.fail("%s: UID COPY %d: COPYUID %v %v", w.name, uid, data.SourceUIDs, data.DestUIDs)
			return false
		}
		w.st.mark(w.st.copied, token)
		w.st.observe(w.name, "Archive", dest, token)
	}
	w.st.count("copy", start)
	return true
}

// moveToTrash moves a message to Trash, each message at most once.
func (w *stressIMAP) moveToTrash() bool {
	start := time.Now()
	uid, token, ok := w.pick()
	if !ok || !w.st.claim(w.st.moveClaimed, token) {
		return true
	}
	e := &stressEvent{kind: "move", start: time.Now()}
	data, err := w.c.Move(imap.UIDSetNum(uid), "Trash").Wait()
	e.end = time.Now()
	w.st.event(token, e)
	if err != nil && !expungeIssued(err) {
		w.st.fail("%s: UID MOVE %d Trash: %v", w.name, uid, err)
		return false
	}
	if err == nil && data != nil && stressContains(data.SourceUIDs, uid) {
		dest, ok := stressPair(data.SourceUIDs, data.DestUIDs, uid)
		if !ok {
			w.st.fail("%s: UID MOVE %d: COPYUID %v %v", w.name, uid, data.SourceUIDs, data.DestUIDs)
			return false
		}
		w.st.mark(w.st.moved, token)
		w.st.observe(w.name, "Trash", dest, token)
	}
	w.st.count("move", start)
	return true
}

// expunge flags a message \Deleted and expunges the folder (which removes
// whatever other sessions flagged too).
func (w *stressIMAP) expunge() bool {
	start := time.Now()
	uid, token, ok := w.pick()
	if !ok {
		return true
	}
	w.st.mark(w.st.mayBeGone, token)
	e := &stressEvent{kind: "delete", start: time.Now()}
	err := w.c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	e.end = time.Now()
	w.st.event(token, e)
	if err != nil && !expungeIssued(err) {
		w.st.fail("%s: UID STORE %d +FLAGS \\Deleted: %v", w.name, uid, err)
		return false
	}
	if _, err := w.c.Expunge().Collect(); err != nil {
		w.st.fail("%s: EXPUNGE: %v", w.name, err)
		return false
	}
	w.st.count("expunge", start)
	return true
}

// stressPair returns the UID that COPYUID's destination set gives the
// source UID uid.
func stressPair(src, dest imap.NumSet, uid imap.UID) (imap.UID, bool) {
	srcSet, ok1 := src.(imap.UIDSet)
	destSet, ok2 := dest.(imap.UIDSet)
	if !ok1 || !ok2 {
		return 0, false
	}
	s, ok1 := srcSet.Nums()
	d, ok2 := destSet.Nums()
	if !ok1 || !ok2 || len(s) != len(d) {
		return 0, false
	}
	for i := range s {
		if s[i] == uid {
			return d[i], true
		}
	}
	return 0, false
}

func stressContains(set imap.NumSet, uid imap.UID) bool {
	s, ok := set.(imap.UIDSet)
	return ok && s.Contains(uid)
}

// pop3Loop runs POP3 sessions one after another until the deadline: each
// RETRs a few messages and sometimes DELEs some of them before QUIT.
func (st *stressState) pop3Loop(addr string, deadline time.Time) {
	rng := rand.New(rand.NewPCG(7, 7))
	for time.Now().Before(deadline) {
		if !st.pop3Session(addr, rng) {
			return
		}
	}
}

// stressPOP3 is a minimal POP3 client that reports failures instead of
// stopping the test.
type stressPOP3 struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *stressPOP3) command(line string) (string, error) {
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", line); err != nil {
		return "", err
	}
	reply, err := c.r.ReadString('\n')
	return strings.TrimRight(reply, "\r\n"), err
}

// lines reads a multi-line response's lines, un-stuffed.
func (c *stressPOP3) lines() ([]string, error) {
	var out []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "." {
			return out, nil
		}
		out = append(out, strings.TrimPrefix(l, "."))
	}
}

func (st *stressState) pop3Session(addr string, rng *rand.Rand) bool {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		st.fail("pop3: %v", err)
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &stressPOP3{conn: conn, r: bufio.NewReader(conn)}
	if greeting, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "+OK") {
		st.fail("pop3: greeting %q, %v", greeting, err)
		return false
	}
	expect := func(line string) (string, bool) {
		reply, err := c.command(line)
		if err != nil || !strings.HasPrefix(reply, "+OK") {
			st.fail("pop3: %s: %q, %v", strings.Fields(line)[0], reply, err)
			return reply, false
		}
		return reply, true
	}
	if _, ok := expect("USER " + imapUser); !ok {
		return false
	}
	reply, err := c.command("PASS " + imapPassword)
	if err == nil && strings.Contains(reply, "[IN-USE]") {
		// The last session's lock is released just after its QUIT
		// was answered.
		time.Sleep(10 * time.Millisecond)
		return true
	}
	if err != nil || !strings.HasPrefix(reply, "+OK") {
		st.fail("pop3: PASS: %q, %v", reply, err)
		return false
	}
	if _, ok := expect("UIDL"); !ok {
		return false
	}
	uidls, err := c.lines()
	if err != nil {
		st.fail("pop3: UIDL: %v", err)
		return false
	}
	var retrieved []*stressEvent
	deleted := map[string]bool{}
	for range min(len(uidls), 1+rng.IntN(4)) {
		f := strings.Fields(uidls[rng.IntN(len(uidls))])
		if len(f) != 2 || len(f[1]) != 16 {
			st.fail("pop3: UIDL line %q", f)
			return false
		}
		if deleted[f[0]] {
			continue
		}
		uid, err := strconv.ParseUint(f[1][:8], 16, 32)
		if err != nil {
			st.fail("pop3: UIDL %q: %v", f[1], err)
			return false
		}
		e := &stressEvent{kind: "retr", start: time.Now()}
		reply, err := c.command("RETR " + f[0])
		if err != nil {
			st.fail("pop3: RETR: %v", err)
			return false
		}
		if !strings.HasPrefix(reply, "+OK") {
			continue // moved or expunged through IMAP meanwhile
		}
		msg, err := c.lines()
		if err != nil {
			st.fail("pop3: RETR: %v", err)
			return false
		}
		token := ""
		for _, l := range msg {
			if s, ok := strings.CutPrefix(l, "Subject: "); ok {
				token = s
				break
			}
		}
		if !strings.HasPrefix(token, "stress-t") {
			st.fail("pop3: RETR %s: no token in %q", f[0], msg)
			return false
		}
		st.observe("pop3", "INBOX", imap.UID(uid), token)
		st.event(token, e)
		retrieved = append(retrieved, e)
		st.count("retr", e.start)
		if rng.IntN(4) == 0 {
			st.mark(st.mayBeGone, token)
			start := time.Now()
			if _, ok := expect("DELE " + f[0]); !ok {
				return false
			}
			deleted[f[0]] = true
			st.count("dele", start)
		}
	}
	_, ok := expect("QUIT")
	// RETR marks the message seen after sending it: only the next reply
	// proves it was done.
	end := time.Now()
	for _, e := range retrieved {
		st.mu.Lock()
		e.end = end
		st.mu.Unlock()
	}
	return ok
}

// stressFile is a message file found on disk at the end.
type stressFile struct {
	name  string
	flags []imap.Flag
}

// check compares what the sessions did and saw with the Maildir.
func (st *stressState) check(root, addr string) {
	t := st.t
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	for op, n := range st.counts {
		t.Logf("%s: %d, %v each", op, n, st.spent[op]/time.Duration(n))
	}
	if st.counts["deliver"] == 0 || st.counts["store"] == 0 || st.counts["retr"] == 0 {
		t.Fatalf("too little was done to check anything: %v", st.counts)
	}
	box := imapMaildir(root)
	folders := map[string]string{"INBOX": box, "Archive": filepath.Join(box, ".Archive"), "Trash": filepath.Join(box, ".Trash")}
	found := map[string]map[string][]stressFile{} // folder -> token -> files
	for folder, dir := range folders {
		// Bring the UID list up to date with files no session listed
		// after they came, then check it.
		if _, err := uidlist.Sync(dir); err != nil {
			t.Fatalf("uidlist.Sync(%s): %v", dir, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, uidlist.FileName))
		if err != nil {
			t.Fatal(err)
		}
		list, err := uidlist.Parse(data)
		if err != nil {
			t.Fatalf("%s's dovecot-uidlist: %v", folder, err)
		}
		uidOf := map[string]imap.UID{}
		for i, r := range list.Records {
			if i > 0 && r.UID <= list.Records[i-1].UID {
				t.Errorf("%s's dovecot-uidlist: UID %d after %d", folder, r.UID, list.Records[i-1].UID)
			}
			uidOf[r.Name] = imap.UID(r.UID)
		}
		kw, err := uidlist.ReadKeywords(dir)
		if err != nil {
			t.Fatal(err)
		}
		found[folder] = map[string][]stressFile{}
		for _, sub := range []string{"new", "cur"} {
			entries, err := os.ReadDir(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				token := stressFileToken(t, filepath.Join(dir, sub, e.Name()))
				uid, ok := uidOf[uidlist.BaseName(e.Name())]
				if !ok {
					t.Errorf("%s/%s/%s has no UID", folder, sub, e.Name())
				} else if seen, ok := st.tokenUID[folder][token]; ok && seen != uid {
					t.Errorf("%s %s has UID %d in dovecot-uidlist, sessions saw UID %d", folder, token, uid, seen)
				}
				found[folder][token] = append(found[folder][token], stressFile{name: sub + "/" + e.Name(), flags: stressFlags(e.Name(), kw)})
			}
		}
	}
	for folder, tokens := range found {
		for token := range tokens {
			if !st.delivered[token] {
				t.Errorf("%s has %s, which was never delivered", folder, token)
			}
		}
	}

	checked := 0
	for token := range st.delivered {
		inbox, trash, archive := found["INBOX"][token], found["Trash"][token], found["Archive"][token]
		switch {
		case len(inbox)+len(trash) > 1:
			t.Errorf("%s is in INBOX %d times and in Trash %d times", token, len(inbox), len(trash))
		case len(inbox)+len(trash) == 0 && !st.mayBeGone[token]:
			t.Errorf("%s is gone, but no DELE or EXPUNGE was issued for it", token)
		case st.moved[token] && len(inbox) > 0:
			t.Errorf("%s is still in INBOX after MOVE", token)
		case !st.moveClaimed[token] && len(trash) > 0:
			t.Errorf("%s is in Trash without MOVE", token)
		}
		switch {
		case st.copied[token] && len(archive) != 1:
			t.Errorf("%s is in Archive %d times after one COPY", token, len(archive))
		case !st.copied[token] && len(archive) > 1, !st.copyClaimed[token] && len(archive) > 0:
			t.Errorf("%s is in Archive %d times, copied at most once", token, len(archive))
		}
		files := append(inbox, trash...)
		if len(files) != 1 {
			continue
		}
		if want, ok := stressLastStore(st.events[token], len(trash) == 1); ok {
			checked++
			got := files[0].flags
			if !slices.Equal(stressSorted(got), stressSorted(want)) {
				t.Errorf("%s (%s) has flags %v, the last STORE set %v; its events: %s", token, files[0].name, got, want, stressEvents(st.events[token]))
			}
		}
	}
	t.Logf("%d messages delivered, %d in INBOX, %d in Trash, %d in Archive; flags checked on %d",
		len(st.delivered), len(found["INBOX"]), len(found["Trash"]), len(found["Archive"]), checked)
	if checked == 0 {
		t.Error("no message's flags could be checked")
	}

	// A new session lists INBOX as dovecot-uidlist has it.
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(found["INBOX"]) {
		t.Errorf("a new session lists %d messages in INBOX, the disk has %d", len(msgs), len(found["INBOX"]))
	}
	for _, m := range msgs {
		if uid, ok := st.tokenUID["INBOX"][m.Envelope.Subject]; ok && uid != m.UID {
			t.Errorf("a new session lists %s with UID %d, earlier sessions with %d", m.Envelope.Subject, m.UID, uid)
		}
	}
}

// stressLastStore returns the flags that the last STORE of a message set
// if it ended before anything else that changes flags began. For a
// message moved to Trash, the MOVE took the flags along and ended the
// message in INBOX: what sessions asked of it there afterwards does not
// count.
func stressLastStore(events []*stressEvent, moved bool) ([]imap.Flag, bool) {
	for _, m := range events {
		if !moved || m.kind != "move" {
			continue
		}
		var before []*stressEvent
		for _, e := range events {
			switch {
			case e == m:
			case e.end.IsZero() || !e.end.Before(m.start) && !e.start.After(m.end):
				return nil, false // at the same time as the MOVE
			case e.end.Before(m.start):
				before = append(before, e)
			}
		}
		events = before
		break
	}
	var last *stressEvent
	for _, e := range events {
		if e.kind == "store" && (last == nil || e.start.After(last.start)) {
			last = e
		}
	}
	if last == nil {
		return nil, false
	}
	for _, e := range events {
		if e != last && (e.end.IsZero() || e.end.After(last.start)) {
			return nil, false
		}
	}
	return last.flags, true
}

func stressEvents(events []*stressEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "[%s %v %s..%s] ", e.kind, e.flags, e.start.Format("15:04:05.000"), e.end.Format("15:04:05.000"))
	}
	return b.String()
}

func stressSorted(flags []imap.Flag) []imap.Flag {
	s := slices.Clone(flags)
	slices.Sort(s)
	return s
}

// stressFlags returns the IMAP flags of a file name's Maildir letters.
func stressFlags(name string, kw *uidlist.Keywords) []imap.Flag {
	system := map[byte]imap.Flag{'D': imap.FlagDraft, 'F': imap.FlagFlagged, 'R': imap.FlagAnswered, 'S': imap.FlagSeen, 'T': imap.FlagDeleted}
	flags := []imap.Flag{}
	for _, c := range []byte(maildir.ParseName(name).Flags) {
		if f, ok := system[c]; ok {
			flags = append(flags, f)
		} else if n, ok := kw.Name(c); ok {
			flags = append(flags, imap.Flag(n))
		}
	}
	return flags
}

// stressFileToken returns the Subject of a message file.
func stressFileToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
	}
	t.Errorf("%s has no Subject", path)
	return ""
}
