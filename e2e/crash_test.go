package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// crashMessage is message i of sender s: its Message-ID and last line carry
// the token that identifies it in the Maildirs, and its size varies so that
// some kills land in the middle of a DATA transfer.
func crashMessage(token, rcpt string, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: %s\r\nMessage-ID: <%s@crash.test>\r\nSubject: %s\r\n\r\n", rcpt, token, token)
	for i := range lines {
		fmt.Fprintf(&b, "line %d of %s: the quick brown fox jumps over the lazy dog\r\n", i, token)
	}
	fmt.Fprintf(&b, "end of %s\r\n", token)
	return b.String()
}

var (
	crashToken = regexp.MustCompile(`(?m)^Message-ID: <(crash-\d+-\d+)@crash\.test>$`)
	// crashRID is the transaction ID in smtpd's Received field: one per
	// DATA that smtpd stored.
	crashRID = regexp.MustCompile(`(?m)^\tid ([^\s;]+)`)
	// crashFile takes the delivery time and the delivering process's ID
	// out of a Maildir file name (SECONDS.M<usec>P<pid>Q...).
	crashFile = regexp.MustCompile(`^(\d+)\.M(\d+)P(\d+)Q`)
)

// crashCopy is one copy of a message in a Maildir.
type crashCopy struct {
	rid  string // smtpd's transaction
	pid  int    // the sendq run that delivered it
	when string // sortable delivery time
	path string
}

// crashMaildirs returns the copies of every token in the users' Maildirs
// (new/ and cur/), each token's in delivery order, and the names of files
// that are not a whole message.
func crashMaildirs(t *testing.T, root string, users []string) (map[string][]crashCopy, []string) {
	t.Helper()
	copies := map[string][]crashCopy{}
	var partial []string
	for _, u := range users {
		local, domain, _ := strings.Cut(u, "@")
		for _, sub := range []string{"new", "cur"} {
			dir := filepath.Join(root, "mail", domain, local, sub)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				path := filepath.Join(u, sub, e.Name())
				data := readFile(t, filepath.Join(dir, e.Name()))
				tok, rid, name := crashToken.FindStringSubmatch(data), crashRID.FindStringSubmatch(data), crashFile.FindStringSubmatch(e.Name())
				if tok == nil || rid == nil || name == nil || !strings.HasSuffix(data, "\nend of "+tok[1]+"\n") {
					partial = append(partial, path)
					continue
				}
				pid, _ := strconv.Atoi(name[3])
				usec, _ := strconv.Atoi(name[2])
				when := fmt.Sprintf("%s.%06d", name[1], usec)
				copies[tok[1]] = append(copies[tok[1]], crashCopy{rid: rid[1], pid: pid, when: when, path: path})
			}
		}
	}
	for _, cs := range copies {
		sort.Slice(cs, func(i, j int) bool { return cs[i].when < cs[j].when })
	}
	return copies, partial
}

// crashSender sends its messages to the smtpd at addr(), reconnecting and
// sending a message again whenever it got no 250 for it (no reply at all
// when smtpd was killed, or a 4xx), as a real client would.
type crashSender struct {
	addr     func() string
	quit     <-chan struct{} // closed when the test ends
	c        *smtp.Client
	accepted atomic.Int64 // 250s
	retries  atomic.Int64 // messages sent again
	mu       sync.Mutex
	codes    map[int]int // non-250 replies; 0 is no reply
	// unacked counts, per token, the tries that sent the whole message
	// and got no reply: smtpd may have stored it before it was killed.
	unacked map[string]int
}

func (s *crashSender) note(code int) {
	s.mu.Lock()
	s.codes[code]++
	s.mu.Unlock()
}

// send sends one message until it gets a 250, or gives up at deadline.
func (s *crashSender) send(token, from, rcpt, msg string, deadline time.Time) error {
	for try := 0; ; try++ {
		select {
		case <-s.quit:
			return fmt.Errorf("the test ended after %d tries", try)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 250 after %d tries", try)
		}
		if try > 0 {
			s.retries.Add(1)
		}
		if s.c == nil {
			c, err := smtp.Dial(s.addr())
			if err != nil {
				// smtpd is being restarted (on another port).
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c.CommandTimeout = 30 * time.Second
			c.SubmissionTimeout = 30 * time.Second
			if err := c.Hello("sender.test"); err != nil {
				s.note(smtpCode(err))
				c.Close()
				continue
			}
			s.c = c
		}
		dataSent, err := s.transaction(from, rcpt, msg)
		if err == nil {
			s.accepted.Add(1)
			return nil
		}
		code := smtpCode(err)
		s.note(code)
		if dataSent && code == 0 {
			s.unacked[token]++
		}
		// After a failure the session's state is unknown: start afresh.
		s.c.Close()
		s.c = nil
	}
}

// transaction sends msg in the current session. dataSent reports that
// the message may have reached smtpd whole: after a 354, whatever
// happened next.
func (s *crashSender) transaction(from, rcpt, msg string) (dataSent bool, err error) {
	if err := s.c.Mail(from, nil); err != nil {
		return false, err
	}
	if err := s.c.Rcpt(rcpt, nil); err != nil {
		return false, err
	}
	w, err := s.c.Data()
	if err != nil {
		return false, err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		w.Close()
		return true, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return true, err
	}
	if !strings.HasPrefix(resp.StatusText, "2.0.0 OK queued as ") {
		return true, fmt.Errorf("250 reply %q names no queue ID", resp.StatusText)
	}
	return true, nil
}

// TestCrashKill9SMTPdAndSendq sends 2,000 messages from 10 concurrent
// clients through smtpd and `sendq run` into Maildirs while both are
// killed with SIGKILL at random moments (at least 20 kills) and restarted.
// Every message that got a 250 must be delivered, whole, and the spool must
// end empty once the runner has cleaned up the leftovers of the kills.
//
// A kill may cost duplicates, and each must have its cause: smtpd stored
// a message and was killed before its 250 went out, so the client sent it
// again (a message is stored by two transactions only if one of its tries
// went unanswered); or a runner delivered a message and was killed before
// it recorded that (a transaction delivered twice only if the earlier copy
// is by a killed runner, no more of them per runner than it delivers at
// once, never one that the killed runner had journaled as delivered, and
// never one whose file it had journaled as an intent). Since a local
// delivery journals its intent before its file appears, redeliveries after
// runner kills are at most the number of runner kills. Here one smtpd
// serves the 10 concurrent sessions: one kill of it can catch several that
// stored a message and had not sent the 250 yet (RFC 1047), so the
// duplicates of smtpd kills are logged, not bounded by the number of
// kills; TestCrashKill9PerConnectionSMTPdAndSendq bounds them.
func TestCrashKill9SMTPdAndSendq(t *testing.T) {
	crashTest(t, newStandaloneSMTPd, false)
}

// TestCrashKill9PerConnectionSMTPdAndSendq is TestCrashKill9SMTPdAndSendq
// with smtpd as inetd "nowait", tcpserver or systemd Accept=yes run it:
// one process per connection, a smtpd kill killing one session, which has
// at most one message whose 250 it may not have sent. So every kill costs
// at most one duplicate: the duplicates are at most the kills (issue 9),
// and the redeliveries at most the runner kills.
func TestCrashKill9PerConnectionSMTPdAndSendq(t *testing.T) {
	crashTest(t, newPerConnectionSMTPd, true)
}

// crashTest is the body of the crash tests: smtpd is run and killed by
// what newSMTPd returns; bounded asks for at most one duplicate per kill.
func crashTest(t *testing.T, newSMTPd func(*testing.T, string) crashSMTPd, bounded bool) {
	const (
		senders   = 10
		perSender = 200
		minKills  = 20
	)
	users := []string{"alice@example.org", "bob@example.org"}
	// The clients are relay clients, whose messages stream into the spool
	// as they arrive, so kills mid-DATA leave half-written message files.
	root := sqRoot(t, "", map[string]string{"relay-clients": "127.0.0.1\n"})
	srv := newSMTPd(t, root)
	runner := startSendq(t, root)
	// Every runner started, for their logs.
	runners := []*sqRunner{runner}

	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	var (
		wg      sync.WaitGroup
		done    = make(chan struct{})
		quit    = make(chan struct{})
		errs    = make(chan error, senders)
		clients []*crashSender
	)
	// A test that fails while the clients send stops them.
	t.Cleanup(func() { close(quit); wg.Wait() })
	for s := range senders {
		cs := &crashSender{addr: srv.addr, quit: quit, codes: map[int]int{}, unacked: map[string]int{}}
		clients = append(clients, cs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if cs.c != nil {
					cs.c.Quit()
					cs.c.Close()
				}
			}()
			for i := range perSender {
				token := fmt.Sprintf("crash-%d-%d", s, i)
				rcpt := users[(s+i)%len(users)]
				if err := cs.send(token, "sender@remote.test", rcpt, crashMessage(token, rcpt, 10+(i%7)*40), deadline); err != nil {
					errs <- fmt.Errorf("sender %d, message %s: %w", s, token, err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// Kill smtpd or the runner at random moments while the messages
	// flow: after a random number of 250s (so that the kills are spread
	// over the traffic however fast the machine is) and a random pause.
	// Should the traffic end before there were enough kills, the runner
	// is killed while it delivers the rest.
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	accepted := func() int64 {
		n := int64(0)
		for _, cs := range clients {
			n += cs.accepted.Load()
		}
		return n
	}
	smtpdKills, sendqKills := 0, 0
	// Each killed runner, by process ID: how many local deliveries it may
	// have had under way (per_destination in its start line), how many
	// of its copies were delivered again, and what it had journaled when
	// it was killed.
	runnerSlots, killedRunners := map[int]int{}, map[int]int{}
	runnerJournal := map[int]crashJournaled{}
	nextKill := int64(20 + rng.IntN(100))
	sendersDone := false
	for !sendersDone || smtpdKills+sendqKills < minKills {
		select {
		case <-done:
			sendersDone = true
		case <-time.After(5 * time.Millisecond):
		}
		switch {
		case sendersDone && smtpdKills+sendqKills >= minKills:
			continue
		case sendersDone:
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		case accepted() < nextKill:
			continue
		default:
			nextKill += int64(20 + rng.IntN(100))
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		if !sendersDone && rng.IntN(2) == 0 && srv.kill(rng) {
			smtpdKills++
		} else {
			pid := runner.cmd.Process.Pid
			killedRunners[pid] = 0
			runnerSlots[pid] = crashSlots(t, runner)
			runner.kill()
			// Before the next runner reads the journal and removes what
			// it no longer needs.
			runnerJournal[pid] = crashJournal(t, root, pid)
			sendqKills++
			runner = startSendq(t, root)
			runners = append(runners, runner)
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var retries int64
	codes := map[int]int{}
	for _, cs := range clients {
		retries += cs.retries.Load()
		for code, n := range cs.codes {
			codes[code] += n
		}
	}
	kills := smtpdKills + sendqKills
	t.Logf("%d messages got a 250 in %v, with %d kills (smtpd %d, sendq run %d); %d sent again; failed replies by code (0: none): %v",
		accepted(), time.Since(start).Round(time.Millisecond), kills, smtpdKills, sendqKills, retries, codes)
	for code := range codes {
		if code >= 500 {
			t.Errorf("a client got a %d: a kill or restart must never cause a permanent failure", code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	sqWait(t, "the runner to deliver every entry", 2*time.Minute, func() bool { return sqNoEntries(root) })
	t.Logf("after delivery: %s; sendq run %s", srv.usage(), procUsage(runner.cmd.Process.Pid))

	// What the kills left in the spool: message files whose envelope was
	// never committed (smtpd killed while receiving or storing) or whose
	// envelope was already removed (runner killed in between the two
	// unlinks), and envelope temporaries. The runner's Clean at start
	// removes them once they are an hour old: make them so, restart the
	// runner, and let it.
	runner.stop(t)
	var leftovers []string
	for _, d := range []string{"queue", "env"} {
		for _, name := range sqDir(root, d) {
			leftovers = append(leftovers, d+"/"+name)
			old := time.Now().Add(-2 * time.Hour)
			if err := os.Chtimes(filepath.Join(root, "spool", d, name), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("leftovers of the kills in the spool: %d %v", len(leftovers), leftovers)
	runner = startSendq(t, root)
	runners = append(runners, runner)
	if len(leftovers) > 0 {
		want := fmt.Sprintf("event=clean removed=%d", len(leftovers))
		sqWait(t, "the runner's clean at start", 30*time.Second, func() bool { return runner.count(want) == 1 })
	}
	if queue, env := sqDir(root, "queue"), sqDir(root, "env"); len(queue)+len(env) != 0 {
		t.Errorf("spool after the runner's clean: queue %v env %v", queue, env)
	}
	// The journals the killed runners left mention only entries that are
	// gone: the runner removes them as it starts.
	sqWait(t, "the runner to remove the killed runners' journals", 30*time.Second, func() bool { return len(sqDir(root, "journal")) == 0 })
	fromJournal := 0
	for _, r := range runners {
		fromJournal += r.count(`event=journal status=delivered-before`)
	}
	// The queue ID of each smtpd transaction, from smtpd's log (a smtpd
	// killed right after it stored a message did not log it), and of each
	// Maildir file whose delivery a runner recorded, from the runners'
	// logs.
	queueIDs, fileIDs := map[string]string{}, map[string]string{}
	for _, l := range srv.lines() {
		if m := crashAccepted.FindStringSubmatch(l); m != nil {
			queueIDs[m[2]] = m[1]
		}
	}
	for _, r := range runners {
		for _, l := range r.lines() {
			if m := crashDelivered.FindStringSubmatch(l); m != nil {
				fileIDs[filepath.Base(m[2])] = m[1]
			}
		}
	}
	// crashQueueID returns the queue ID of the copies same (of one
	// transaction), if a log tells it.
	crashQueueID := func(rid string, same []crashCopy) (string, bool) {
		if qid, ok := queueIDs[rid]; ok {
			return qid, true
		}
		for _, c := range same {
			if qid, ok := fileIDs[filepath.Base(c.path)]; ok {
				return qid, true
			}
		}
		return "", false
	}
	unchecked := 0

	tmp := 0
	for _, u := range users {
		local, domain, _ := strings.Cut(u, "@")
		entries, _ := os.ReadDir(filepath.Join(root, "mail", domain, local, "tmp"))
		tmp += len(entries)
	}
	// Deliveries cut short leave files in tmp/, which no reader looks at;
	// Maildir readers remove them after 36 hours.
	t.Logf("files left in the Maildirs' tmp/ by killed deliveries: %d", tmp)
	copies, partial := crashMaildirs(t, root, users)
	for _, p := range partial {
		t.Errorf("not a whole message in a Maildir: %s", p)
	}
	unacked := map[string]int{}
	for _, cs := range clients {
		for token, n := range cs.unacked {
			unacked[token] += n
		}
	}
	// Every copy beyond the first has a cause, and the causes are the
	// kills: smtpd stored a message and was killed before its 250 went
	// out, so the client sent it again (another transaction ID, and a try
	// that got no reply); or a runner delivered a message and was killed
	// before it recorded that (the same transaction ID, delivered again:
	// the earlier copy is by a killed runner).
	var lost []string
	resent, redelivered := 0, 0
	for s := range senders {
		for i := range perSender {
			token := fmt.Sprintf("crash-%d-%d", s, i)
			rcpt := users[(s+i)%len(users)]
			cs := copies[token]
			if len(cs) == 0 {
				lost = append(lost, token)
				continue
			}
			byRID := map[string][]crashCopy{}
			for _, c := range cs {
				byRID[c.rid] = append(byRID[c.rid], c)
			}
			if extra := len(byRID) - 1; extra > unacked[token] {
				t.Errorf("%s was stored by %d smtpd transactions, but only %d of its tries went unanswered: %v", token, len(byRID), unacked[token]+1, cs)
			} else {
				resent += extra
			}
			for rid, same := range byRID {
				for _, c := range same[:len(same)-1] {
					if _, killed := killedRunners[c.pid]; !killed {
						t.Errorf("%s (transaction %s) delivered %d times, and the runner that delivered %s was not killed: %v", token, rid, len(same), c.path, same)
						continue
					}
					killedRunners[c.pid]++
					redelivered++
					// Only a delivery whose file was not there yet when its
					// runner was killed may be made again: one that
					// returned was journaled, one that linked its file had
					// journaled the file as its intent, and the next
					// runner records them instead.
					if runnerJournal[c.pid].intents[filepath.Base(c.path)] {
						t.Errorf("%s delivered again although the killed runner %d had journaled the intent for %s: %v", token, c.pid, c.path, same)
					}
					if qid, ok := crashQueueID(rid, same); !ok {
						unchecked++
					} else if runnerJournal[c.pid].delivered[qid+" "+rcpt] {
						t.Errorf("%s (entry %s) delivered again although the killed runner %d had journaled its delivery: %v", token, qid, c.pid, same)
					}
				}
			}
		}
	}
	for pid, n := range killedRunners {
		if n > runnerSlots[pid] {
			t.Errorf("runner %d was killed with %d local deliveries unrecorded, but it runs at most %d at once", pid, n, runnerSlots[pid])
		}
	}
	journaled, intents := 0, 0
	for _, j := range runnerJournal {
		journaled += len(j.delivered)
		intents += len(j.intents)
	}
	dups := resent + redelivered
	t.Logf("Maildirs: %d distinct messages, %d duplicates (%d sent again after %d smtpd kills, %d delivered again after %d runner kills: per killed runner %v), %d lost; the killed runners' journals held %d deliveries and %d intents, %d recorded from them; %d redeliveries with no queue ID in the logs to check against the journals",
		len(copies), dups, resent, smtpdKills, redelivered, sendqKills, killedRunners, len(lost), journaled, intents, fromJournal, unchecked)
	if len(lost) > 0 {
		t.Errorf("%d messages that got a 250 were never delivered: %v", len(lost), lost)
	}
	if redelivered > sendqKills {
		t.Errorf("%d messages delivered again after %d runner kills: more than one per kill", redelivered, sendqKills)
	}
	if bounded && dups > kills {
		t.Errorf("%d duplicates after %d kills (%d sent again after %d smtpd kills, %d delivered again after %d runner kills): more than one per kill",
			dups, kills, resent, smtpdKills, redelivered, sendqKills)
	}
}

var (
	crashPerDestination = regexp.MustCompile(`event=start .*per_destination=(\d+)`)
	// crashAccepted takes the queue ID and the transaction ID out of
	// smtpd's log line for a stored message.
	crashAccepted = regexp.MustCompile(`\baccepted id=(\S+) conn=\S+ rid=(\S+) `)
	// crashDelivered takes the queue ID and the Maildir file out of a
	// runner's log line for a local delivery.
	crashDelivered = regexp.MustCompile(`\bid=(\S+) rcpt=\S+ status=delivered relay=local code=\S+ reply="delivered to ([^"]+)"`)
)

// crashJournaled is what a runner journaled: its deliveries ("QUEUEID
// RCPT") and the names of the files of its intents.
type crashJournaled struct {
	delivered, intents map[string]bool
}

// crashJournal returns what the runner with process ID pid journaled,
// from its files in the spool's journal/ (named START.PPID.N). The test's
// addresses are plain words, written as they are; the paths of intents
// are quoted.
func crashJournal(t *testing.T, root string, pid int) crashJournaled {
	t.Helper()
	dir := filepath.Join(root, "spool", "journal")
	j := crashJournaled{delivered: map[string]bool{}, intents: map[string]bool{}}
	for _, name := range sqDir(root, "journal") {
		if !strings.Contains(name, fmt.Sprintf(".P%d.", pid)) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 || !strings.HasSuffix(line, "\n") {
				continue
			}
			if f[2] == "intent" {
				if path, err := strconv.Unquote(f[3]); err == nil {
					j.intents[filepath.Base(path)] = true
				}
				continue
			}
			j.delivered[f[0]+" "+f[1]] = true
		}
	}
	return j
}

// crashSlots returns how many deliveries to one destination (all local
// deliveries are one) r runs at once, from its start line.
func crashSlots(t *testing.T, r *sqRunner) int {
	t.Helper()
	for _, l := range r.lines() {
		if m := crashPerDestination.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	t.Fatalf("no per_destination in the runner's start line:\n%s", strings.Join(r.lines(), "\n"))
	return 0
}
