package main

// The mail-system workloads of issues 3 (smtpd) and 4 (sendq): postkit's
// smtpd and sendq against a private Postfix (scripts/peers/postfix.sh) on
// loopback ports, with Postfix's own smtp-source as the client and
// smtp-sink as the remote server, N messages of 4 KiB in 20 sessions (and
// N/3 of 100 KiB through the whole pipeline, issue 9). Each
// workload gets fresh directories on both sides, and every figure is
// printed only after the delivered messages were counted: a broken run
// stops the benchmark instead.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	smtpSource    = "/usr/sbin/smtp-source"
	smtpSink      = "/usr/sbin/smtp-sink"
	postfixMaster = "/usr/lib/postfix/sbin/master"
	// postfixScript sets up, starts and stops the private Postfix; the
	// benchmark runs from the top of the repository (make bench).
	postfixScript = "scripts/peers/postfix.sh"

	mailSessions = 20
	mailSize     = 4 << 10
	// bigMailSize is issue 9's second message size for the pipeline.
	bigMailSize = 100 << 10
	// The addresses: demo@example.org is local on both sides; mail for
	// remote.example goes to the smtp-sink (etc/routes, transport_maps).
	mailFrom   = "from@example.net"
	localRcpt  = "demo@example.org"
	remoteRcpt = "user@remote.example"
)

// cleanups undo what the mail workloads started (daemons, the Postfix
// instance, temporary directories), last first, also when a run fails.
var cleanups struct {
	sync.Mutex
	fns []func()
}

func atCleanup(f func()) {
	cleanups.Lock()
	defer cleanups.Unlock()
	cleanups.fns = append(cleanups.fns, f)
}

func runCleanups() {
	cleanups.Lock()
	fns := cleanups.fns
	cleanups.fns = nil
	cleanups.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// die reports a failed run and exits after cleaning up: no figure is
// printed for a run whose messages were not all delivered.
func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	runCleanups()
	os.Exit(1)
}

// mailRows runs the issue 3 and 4 workloads with n messages each, rounds
// times, and keeps each side's best figure: single rounds vary a lot on a
// machine shared with other work. Postfix is measured when it is installed
// and we are root (its master must start as root); smtp-source is needed
// for every workload.
func mailRows(binDir string, n, rounds int) []row {
	if _, err := os.Stat(smtpSource); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s not installed (apt-get install postfix): skipping the smtpd and sendq workloads\n", smtpSource)
		return nil
	}
	peer := "Postfix"
	if _, err := os.Stat(postfixMaster); err != nil {
		peer = ""
	} else if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: Postfix needs root; measuring postkit only")
		peer = ""
	}
	defer runCleanups()
	b := &mailBench{bin: binDir, n: n, withPeer: peer != ""}
	tmp, err := os.MkdirTemp("", "postkit-bench-mail")
	if err != nil {
		die("%v", err)
	}
	atCleanup(func() { os.RemoveAll(tmp) })
	// Postfix's daemons run as postfix and nobody: they must get in.
	os.Chmod(tmp, 0o755)
	spreadSubdirectories(tmp)
	b.tmp = tmp

	bigN := max(n/3, 100)
	rows := []row{
		{workload: fmt.Sprintf("smtpd: accept %d × 4 KiB, 20 sessions", n)},
		{workload: "sendq: local delivery from the queue"},
		{workload: "sendq: remote delivery to smtp-sink"},
		{workload: "pipeline: smtp-source to Maildir"},
		{workload: fmt.Sprintf("pipeline: %d × 100 KiB to Maildir", bigN)},
	}
	for round := range max(rounds, 1) {
		// Workload 1 fills each side's queue, which workload 2a then
		// drains.
		var pkRoot string
		var pf *postfixPeer
		sides := [][5]func() float64{{
			func() float64 { r, rate := b.postkitAccept(); pkRoot = r; return rate },
			func() float64 { return b.postkitDrainLocal(pkRoot) },
			b.postkitRemote,
			b.postkitPipeline,
			func() float64 { return b.withSize(bigMailSize, bigN, b.postkitPipeline) },
		}}
		if b.withPeer {
			sides = append(sides, [5]func() float64{
				func() float64 { p, rate := b.postfixAccept(); pf = p; return rate },
				func() float64 { return b.postfixDrainLocal(pf) },
				b.postfixRemote,
				b.postfixPipeline,
				func() float64 { return b.withSize(bigMailSize, bigN, b.postfixPipeline) },
			})
		}
		for i := range rows {
			rows[i].peerName = "Postfix"
			// Who goes first alternates from round to round.
			for k := range sides {
				side := (k + round) % len(sides)
				rate := sides[side][i]()
				best, name := &rows[i].postkit, "postkit"
				if side == 1 {
					best, name = &rows[i].peer, "Postfix"
				}
				*best = max(*best, rate)
				fmt.Fprintf(os.Stderr, "bench: round %d, %s, %s: %.1f/s\n", round+1, rows[i].workload, name, rate)
			}
		}
	}
	return rows
}

type mailBench struct {
	bin      string
	n        int
	size     int // bytes per message; 0 is mailSize
	withPeer bool
	tmp      string
	dirs     int // for unique directory names
}

// withSize runs workload with n messages of size bytes.
func (b *mailBench) withSize(size, n int, workload func() float64) float64 {
	oldSize, oldN := b.size, b.n
	b.size, b.n = size, n
	defer func() { b.size, b.n = oldSize, oldN }()
	return workload()
}

func (b *mailBench) messageSize() int {
	if b.size > 0 {
		return b.size
	}
	return mailSize
}

// spreadSubdirectories gives dir ext4's "top of directory hierarchy" flag
// (chattr +T), so that the Orlov allocator places each workload's directory
// in a block group of its own instead of beside the previous workload's.
// Without it a workload pays for the files its predecessor deleted, the
// other program's as much as its own: ext4 without a journal (the file
// system under /tmp here) passes over every inode freed in the last minute
// (six if its inode table block is dirty again) at each file creation in
// that group, looking each one up, and the directories of one run all land
// in one group. Elsewhere (another file system, no permission) it does
// nothing.
func spreadSubdirectories(dir string) {
	// FS_TOPDIR_FL of linux/fs.h, which x/sys/unix does not name.
	const fsTopdirFlag = 0x00020000
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFlag)); err != nil {
		fmt.Fprintf(os.Stderr, "bench: chattr +T %s: %v (workloads may share block groups)\n", dir, err)
	}
}

func (b *mailBench) newDir(name string) string {
	b.dirs++
	d := filepath.Join(b.tmp, fmt.Sprintf("%s-%d", name, b.dirs))
	if err := os.Mkdir(d, 0o755); err != nil {
		die("%v", err)
	}
	return d
}

// waitTimeout bounds every wait for deliveries: generous (10 messages a
// second), so only a broken run hits it.
func (b *mailBench) waitTimeout() time.Duration {
	return 30*time.Second + time.Duration(b.n)*100*time.Millisecond
}

// --- postkit ---------------------------------------------------------------

// postkitRoot makes a root with the user demo@example.org (via mkuser) and
// the given control files. 127.0.0.1 is a relay client, as it is in
// Postfix's mynetworks: smtpd then skips the SPF, DKIM and DMARC checks and
// DNSBL lookups it makes for other clients in MX mode (Postfix makes none
// without milters or policy servers), which would need DNS.
func (b *mailBench) postkitRoot(control map[string]string) string {
	root := b.newDir("postkit")
	control["relay-clients"] = "127.0.0.1"
	cmd := exec.Command(filepath.Join(b.bin, "mkuser"), "--root", root, "add", localRcpt)
	cmd.Stdin = strings.NewReader("benchmark-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		die("mkuser: %v: %s", err, out)
	}
	for name, value := range control {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(value+"\n"), 0o644); err != nil {
			die("%v", err)
		}
	}
	return root
}

// startSmtpd starts smtpd on a free loopback port and waits until it
// accepts connections. 20 sessions come from one address: the per-client
// limit is raised to Postfix's default (smtpd_client_connection_count_limit
// = 50).
func (b *mailBench) startSmtpd(root string) (port int, stop func()) {
	port = loopbackPort()
	stop = b.startDaemon(root, "smtpd", "smtpd", "--root", root, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--max-sessions-per-client", "50")
	waitPort(port)
	return port, stop
}

func (b *mailBench) startSendq(root string) (stop func()) {
	return b.startDaemon(root, "sendq", "sendq", "--root", root, "run")
}

// startDaemon starts a postkit program with its log in ROOT/NAME.log and
// returns a function that stops it (SIGTERM) and waits for it.
func (b *mailBench) startDaemon(root, name string, args ...string) (stop func()) {
	logf, err := os.Create(filepath.Join(root, name+".log"))
	if err != nil {
		die("%v", err)
	}
	cmd := exec.Command(filepath.Join(b.bin, args[0]), args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		die("starting %s: %v", name, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			logf.Close()
		})
	}
	atCleanup(stop)
	return stop
}

// postkitAccept is issue 3: smtpd accepting into the spool with no sendq
// running. The spool then holds n entries, for postkitDrainLocal.
func (b *mailBench) postkitAccept() (root string, perSecond float64) {
	root = b.postkitRoot(map[string]string{})
	port, stop := b.startSmtpd(root)
	elapsed := b.smtpSource(port, localRcpt)
	stop()
	if got := countEntries(filepath.Join(root, "spool", "queue")); got != b.n {
		die("postkit accept: %d entries in %s/spool/queue, want %d (see %s/smtpd.log)", got, root, b.n, root)
	}
	return root, rate(b.n, elapsed)
}

// postkitDrainLocal is issue 4 (a): sendq delivering the spool filled by
// postkitAccept into demo's Maildir; timed from sendq's start until the
// spool is empty.
func (b *mailBench) postkitDrainLocal(root string) float64 {
	start := time.Now()
	stop := b.startSendq(root)
	b.waitFor("postkit local delivery", root+"/sendq.log", func() bool {
		return countEntries(filepath.Join(root, "spool", "queue")) == 0
	})
	elapsed := time.Since(start)
	stop()
	b.checkMaildir("postkit local delivery", filepath.Join(root, "mail", "example.org", "demo"), root+"/sendq.log")
	return rate(b.n, elapsed)
}

// postkitRemote is issue 4 (b): the spool filled through smtpd (a relay
// client) with mail for remote.example, routed to smtp-sink; sendq with 20
// sessions to that destination, timed from its start until the spool is
// empty.
func (b *mailBench) postkitRemote() float64 {
	sinkPort := loopbackPort()
	root := b.postkitRoot(map[string]string{
		"routes":                      fmt.Sprintf("remote.example 127.0.0.1:%d", sinkPort),
		"concurrency-per-destination": strconv.Itoa(mailSessions),
	})
	port, stop := b.startSmtpd(root)
	b.smtpSource(port, remoteRcpt)
	stop()
	sink := startSink(sinkPort)
	start := time.Now()
	stopQ := b.startSendq(root)
	b.waitFor("postkit remote delivery", root+"/sendq.log", func() bool {
		return countEntries(filepath.Join(root, "spool", "queue")) == 0
	})
	elapsed := time.Since(start)
	stopQ()
	if got := sink.stop(); got != int64(b.n) {
		die("postkit remote delivery: smtp-sink received %d messages, want %d (see %s/sendq.log)", got, b.n, root)
	}
	return rate(b.n, elapsed)
}

// postkitPipeline is issue 4 (c): smtpd and sendq both running, timed from
// the first connection until the last message is in the Maildir.
func (b *mailBench) postkitPipeline() float64 {
	root := b.postkitRoot(map[string]string{})
	stopQ := b.startSendq(root)
	port, stop := b.startSmtpd(root)
	maildir := filepath.Join(root, "mail", "example.org", "demo")
	start := time.Now()
	b.smtpSource(port, localRcpt)
	b.waitFor("postkit pipeline", root+"/sendq.log", func() bool {
		return countEntries(filepath.Join(maildir, "new")) >= b.n
	})
	elapsed := time.Since(start)
	stop()
	stopQ()
	b.checkMaildir("postkit pipeline", maildir, root+"/sendq.log")
	return rate(b.n, elapsed)
}

// --- Postfix ---------------------------------------------------------------

// postfixPeer is one private Postfix instance (scripts/peers/postfix.sh).
type postfixPeer struct {
	dir  string
	port int
}

// newPostfix sets up and starts an instance: its smtpd on a free port,
// remote.example relayed to sinkPort, the queue manager running or not.
func (b *mailBench) newPostfix(sinkPort int, deliver bool) *postfixPeer {
	p := &postfixPeer{dir: b.newDir("postfix"), port: loopbackPort()}
	p.script("setup", strconv.Itoa(p.port), strconv.Itoa(sinkPort))
	if deliver {
		p.script("release")
	}
	p.script("start")
	atCleanup(func() { p.script("stop") })
	waitPort(p.port)
	return p
}

func (p *postfixPeer) script(args ...string) {
	args = append([]string{args[0], p.dir}, args[1:]...)
	if out, err := exec.Command(postfixScript, args...).CombinedOutput(); err != nil {
		die("%s %s: %v: %s (log: %s/maillog)", postfixScript, strings.Join(args, " "), err, out, p.dir)
	}
}

func (p *postfixPeer) maildir() string { return filepath.Join(p.dir, "mail", "example.org", "demo") }

// queued counts the queue files waiting in incoming, active or deferred
// (hashed into subdirectories).
func (p *postfixPeer) queued() int {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred"} {
		filepath.WalkDir(filepath.Join(p.dir, "queue", q), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

// postfixAccept is issue 3's peer: Postfix's smtpd and cleanup writing
// queue files into incoming/ with its queue manager not running (not in
// master.cf), so nothing is delivered. The queue then holds n messages,
// for postfixDrainLocal.
func (b *mailBench) postfixAccept() (*postfixPeer, float64) {
	p := b.newPostfix(loopbackPort(), false)
	elapsed := b.smtpSource(p.port, localRcpt)
	if got := p.queued(); got != b.n {
		die("Postfix accept: %d queue files in %s/queue, want %d (see %s/maillog)", got, p.dir, b.n, p.dir)
	}
	return p, rate(b.n, elapsed)
}

// postfixDrainLocal is 4 (a)'s peer: the queue manager started (postfix
// reload with qmgr back in master.cf) and virtual(8) delivering the queue
// into demo's Maildir; timed from the reload until the queue is empty.
func (b *mailBench) postfixDrainLocal(p *postfixPeer) float64 {
	start := time.Now()
	p.script("release")
	b.waitFor("Postfix local delivery", p.dir+"/maillog", func() bool {
		return p.queued() == 0 && countEntries(filepath.Join(p.maildir(), "new")) >= b.n
	})
	elapsed := time.Since(start)
	p.script("stop")
	b.checkMaildir("Postfix local delivery", p.maildir(), p.dir+"/maillog")
	return rate(b.n, elapsed)
}

// postfixRemote is 4 (b)'s peer: the queue filled through Postfix's smtpd
// (127.0.0.0/8 is in mynetworks) with the queue manager stopped, then
// started; smtp(8) delivers to smtp-sink (transport_maps), up to
// smtp_destination_concurrency_limit = 20 sessions, reusing connections as
// it does by default under backlog.
func (b *mailBench) postfixRemote() float64 {
	sinkPort := loopbackPort()
	p := b.newPostfix(sinkPort, false)
	b.smtpSource(p.port, remoteRcpt)
	if got := p.queued(); got != b.n {
		die("Postfix remote: %d queue files, want %d (see %s/maillog)", got, b.n, p.dir)
	}
	sink := startSink(sinkPort)
	start := time.Now()
	p.script("release")
	b.waitFor("Postfix remote delivery", p.dir+"/maillog", func() bool {
		return p.queued() == 0
	})
	elapsed := time.Since(start)
	p.script("stop")
	if got := sink.stop(); got != int64(b.n) {
		die("Postfix remote delivery: smtp-sink received %d messages, want %d (see %s/maillog)", got, b.n, p.dir)
	}
	return rate(b.n, elapsed)
}

// postfixPipeline is 4 (c)'s peer: smtpd, cleanup, qmgr and virtual(8)
// all running, timed from the first connection until the last message is
// in the Maildir.
func (b *mailBench) postfixPipeline() float64 {
	p := b.newPostfix(loopbackPort(), true)
	start := time.Now()
	b.smtpSource(p.port, localRcpt)
	b.waitFor("Postfix pipeline", p.dir+"/maillog", func() bool {
		return countEntries(filepath.Join(p.maildir(), "new")) >= b.n
	})
	elapsed := time.Since(start)
	p.script("stop")
	b.checkMaildir("Postfix pipeline", p.maildir(), p.dir+"/maillog")
	return rate(b.n, elapsed)
}

// --- shared ----------------------------------------------------------------

// smtpSource sends n messages of b.messageSize() bytes to rcpt in mailSessions
// parallel sessions, one message per session, and returns how long that
// took. smtp-source reports refused messages on stderr; the callers count
// what arrived. A server that stops answering fails the run after
// waitTimeout.
func (b *mailBench) smtpSource(port int, rcpt string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), b.waitTimeout())
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, smtpSource, "-s", strconv.Itoa(mailSessions), "-m", strconv.Itoa(b.n),
		"-l", strconv.Itoa(b.messageSize()), "-f", mailFrom, "-t", rcpt, fmt.Sprintf("127.0.0.1:%d", port))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		die("smtp-source to port %d: %v: %s", port, err, out)
	}
	return time.Since(start)
}

// waitFor polls done until it holds, or gives up after waitTimeout.
func (b *mailBench) waitFor(what, logFile string, done func() bool) {
	deadline := time.Now().Add(b.waitTimeout())
	for !done() {
		if time.Now().After(deadline) {
			die("%s: not done after %s (see %s)", what, b.waitTimeout(), logFile)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkMaildir checks that maildir/new holds exactly n messages and that
// one of them has the whole message.
func (b *mailBench) checkMaildir(what, maildir, logFile string) {
	newDir := filepath.Join(maildir, "new")
	names, err := os.ReadDir(newDir)
	if err != nil {
		die("%s: %v", what, err)
	}
	if len(names) != b.n {
		die("%s: %d messages in %s, want %d (see %s)", what, len(names), newDir, b.n, logFile)
	}
	fi, err := os.Stat(filepath.Join(newDir, names[0].Name()))
	// Stored with LF line endings (postkit) or as sent (Postfix), with
	// trace fields added: never less than nine tenths of what was sent.
	if err != nil || fi.Size() < int64(b.messageSize())*9/10 {
		die("%s: %s/%s is short (%v, %v)", what, newDir, names[0].Name(), fi, err)
	}
}

// countEntries counts the names in dir that do not start with a dot
// (temporaries), 0 when dir does not exist.
func countEntries(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, ".") {
			n++
		}
	}
	return n
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// loopbackPort returns a loopback port that was free a moment ago.
func loopbackPort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("%v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something accepts connections on the port.
func waitPort(port int) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			die("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sink is a running smtp-sink; its -c counters ("mesg=N", one line per
// event, separated by CR) tell how many messages it received.
type sink struct {
	cmd      *exec.Cmd
	messages atomic.Int64
	done     chan struct{}
	once     sync.Once
}

var sinkMessages = regexp.MustCompile(`mesg=(\d+)`)

func startSink(port int) *sink {
	s := &sink{done: make(chan struct{})}
	// -u: smtp-sink refuses to run as root without a user to become.
	s.cmd = exec.Command(smtpSink, "-u", "nobody", "-c", fmt.Sprintf("127.0.0.1:%d", port), "100")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		die("%v", err)
	}
	if err := s.cmd.Start(); err != nil {
		die("starting smtp-sink: %v", err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Split(splitCR)
		for sc.Scan() {
			if m := sinkMessages.FindSubmatch(sc.Bytes()); m != nil {
				v, _ := strconv.ParseInt(string(m[1]), 10, 64)
				s.messages.Store(v)
			}
		}
	}()
	atCleanup(s.kill)
	waitPort(port)
	return s
}

func (s *sink) kill() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		<-s.done
	})
}

// stop ends the sink and returns how many messages it received.
func (s *sink) stop() int64 {
	s.kill()
	return s.messages.Load()
}

// splitCR splits smtp-sink's counter output, whose updates end in CR.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		if c == '\r' || c == '\n' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
