package main

// The IMAP workloads of issue 6: postkit's imapd against Dovecot's imap
// (Debian's dovecot-imapd) on the same machine in the same run, both
// driven by go-imap's client, so that client costs are the same. Every
// server gets its own copy of the same generated Maildirs (hard links to
// one generated tree: the message files are never written, only renamed
// and read), so neither sees the other's index, cache or UID list.
//
//   - warm: SELECT INBOX + FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE) of
//     -imap-messages messages, after one untimed round that builds the
//     servers' caches; 500 single-message UID FETCH BODY.PEEK[], one
//     command at a time as a client opening messages; SEARCH TEXT of a
//     word in 1% of the messages (both servers read every message: Dovecot
//     has no full-text index configured);
//   - cold: the first SELECT of an INBOX of -imap-cold-messages messages
//     in cur/, without any UID list, index or cache yet;
//   - memory: idle authenticated connections under inetd (imapd under
//     systemd-socket-activate --inetd --accept, one process per
//     connection) against Dovecot's imap processes of logged-in sessions
//     (the mean process's RSS, PSS and anonymous memory, eight at once),
//     then the same with INBOX selected and IDLE; and -imap-idle users each with one connection in IDLE on
//     a small INBOX, one standalone imapd against all of Dovecot's
//     processes (PSS summed).
//
// Rates are per second; memory is shown as connections per GiB, so that
// for every row higher is better and the ratio is postkit over Dovecot.

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/crypto/bcrypt"
)

const (
	dovecotIMAP  = "/usr/lib/dovecot/imap"
	imapPassword = "secret"
	imapDomain   = "example.org"
	// imapNeedle is the word SEARCH TEXT looks for: it is in every
	// imapNeedleEvery-th message's body.
	imapNeedle      = "xylophone"
	imapNeedleEvery = 100
)

var (
	imapMessages     = flag.Int("imap-messages", 10000, "messages in the warm IMAP workloads' INBOX")
	imapBodies       = flag.Int("imap-bodies", 500, "messages fetched one at a time with BODY.PEEK[]")
	imapColdMessages = flag.Int("imap-cold-messages", 100000, "messages in the cold-SELECT INBOX")
	imapIdle         = flag.Int("imap-idle", 1000, "IDLE connections in one imapd, one user each")
	imapIdleMessages = flag.Int("imap-idle-messages", 100, "messages in the INBOX of each IDLE user")
	imapRounds       = flag.Int("imap-rounds", 9, "rounds of the warm IMAP workloads; the median counts")
)

// imapRows runs the IMAP workloads.
func imapRows(binDir string) []row {
	imapd := filepath.Join(binDir, "imapd")
	withPeer := true
	if _, err := os.Stat(dovecotIMAP); err != nil {
		log.Printf("%s not installed (apt-get install dovecot-imapd): measuring imapd only", dovecotIMAP)
		withPeer = false
	} else if os.Geteuid() != 0 {
		log.Print("Dovecot needs root: measuring imapd only")
		withPeer = false
	}
	work, err := os.MkdirTemp("", "postkit-bench-imap")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	// Dovecot's processes run as nobody and must get in.
	if err := os.Chmod(work, 0o755); err != nil {
		log.Fatal(err)
	}
	b := &imapBench{work: work, withPeer: withPeer}
	start := time.Now()
	b.templates()
	log.Printf("imap: generated the Maildirs in %.1fs", time.Since(start).Seconds())
	b.setup()

	pk := b.startPostkit(imapd)
	targets := []*imapTarget{pk}
	var dc *imapDovecot
	if withPeer {
		dc = b.startDovecot()
		defer dc.stop()
		targets = append(targets, dc.target)
	}

	var rows []row
	add := func(workload string, values []float64) {
		r := row{workload: workload, postkit: values[0], peerName: "Dovecot imap"}
		if len(values) > 1 {
			r.peer = values[1]
		}
		rows = append(rows, r)
	}
	warm := b.warm(targets)
	add(fmt.Sprintf("imap warm SELECT + FETCH 1:* of %d (ENVELOPE)", *imapMessages), warm[0])
	add(fmt.Sprintf("imap UID FETCH BODY.PEEK[], %d single (msg)", *imapBodies), warm[1])
	add(fmt.Sprintf("imap SEARCH TEXT over %d messages", *imapMessages), warm[2])
	add(fmt.Sprintf("imap cold first SELECT of %d messages", *imapColdMessages), b.cold(targets, dc))
	pk.stop()

	authed, idle := b.inetdMemory(imapd, dc)
	add("imap inetd idle logged-in session (per GiB RSS)", authed)
	add(fmt.Sprintf("imap inetd IDLE in %d-msg INBOX (per GiB RSS)", *imapMessages), idle)
	add(fmt.Sprintf("imap %d IDLE connections (per GiB PSS)", *imapIdle), b.idleMemory(imapd, dc))
	return rows
}

type imapBench struct {
	work     string
	withPeer bool
	root     string // postkit's root
	dcMail   string // Dovecot's mail_location base: one Maildir per user
}

func (b *imapBench) templatePath(name string) string { return filepath.Join(b.work, "template-"+name) }

// templates writes the generated Maildirs that every copy links to.
func (b *imapBench) templates() {
	imapWriteMaildir(b.templatePath("warm"), *imapMessages, imapWarmSize)
	imapWriteMaildir(b.templatePath("cold"), *imapColdMessages, func(int) int { return 0 })
	imapWriteMaildir(b.templatePath("idle"), *imapIdleMessages, imapWarmSize)
}

func imapWarmSize(i int) int {
	return []int{1 << 10, 2 << 10, 3 << 10, 4 << 10, 6 << 10, 8 << 10, 12 << 10}[i%7]
}

func imapIdleUser(i int) string { return fmt.Sprintf("u%04d", i+1) }

// setup makes postkit's root (etc/users with every user, the warm INBOX)
// and Dovecot's copy of the warm INBOX.
func (b *imapBench) setup() {
	b.root = filepath.Join(b.work, "postkit")
	b.dcMail = filepath.Join(b.work, "dovecot-mail")
	// Logins are not what is measured: a cheap hash keeps 1,000 of them
	// quick.
	h, err := bcrypt.GenerateFromPassword([]byte(imapPassword), bcrypt.MinCost)
	if err != nil {
		log.Fatal(err)
	}
	hash := "{BLF-CRYPT}$2y$" + strings.TrimPrefix(string(h), "$2a$")
	var usersFile bytes.Buffer
	names := []string{"warm", "cold", "inetd"}
	for i := range *imapIdle {
		names = append(names, imapIdleUser(i))
	}
	for _, n := range names {
		fmt.Fprintf(&usersFile, "%s@%s:%s::::::\n", n, imapDomain, hash)
	}
	if err := os.MkdirAll(filepath.Join(b.root, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.root, "etc", "users"), usersFile.Bytes(), 0o600); err != nil {
		log.Fatal(err)
	}
	imapLinkMaildir(b.templatePath("warm"), b.postkitMaildir("warm"))
	if b.withPeer {
		imapLinkMaildir(b.templatePath("warm"), filepath.Join(b.dcMail, "warm"))
	}
}

func (b *imapBench) postkitMaildir(user string) string {
	return filepath.Join(b.root, "mail", imapDomain, user)
}

// imapTarget is a server under test.
type imapTarget struct {
	name    string
	addr    string
	stop    func()
	pids    func() []int             // processes whose memory counts
	maildir func(user string) string // where user's INBOX is
}

// --- Maildirs ---------------------------------------------------------

// imapWriteMaildir writes a Maildir of n messages in cur/, named as
// postkit and Dovecot name them (with ,S= and ,W=), with LF line endings
// as stored, most of them seen, some flagged. bodySize(i) is the body's
// approximate size; 0 gives a one-line body.
func imapWriteMaildir(dir string, n int, bodySize func(int) int) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			log.Fatal(err)
		}
	}
	line := "Thanks for the figures; the totals below still need a second look.\n"
	var msg bytes.Buffer
	for i := range n {
		msg.Reset()
		fmt.Fprintf(&msg, "Return-Path: <sender%d@example.net>\nDate: Mon, 2 Nov 2026 %02d:%02d:%02d +0100\n"+
			"From: Sender %d <sender%d@example.net>\nTo: Demo User <demo@example.org>\n",
			i%50, i/3600%24, i/60%60, i%60, i%50, i%50)
		if i%5 == 0 {
			msg.WriteString("Cc: Team <team@example.org>, Boss <boss@example.org>\n")
		}
		fmt.Fprintf(&msg, "Subject: Report %d on the quarterly numbers\nMessage-ID: <bench%d@example.net>\n", i, i)
		if i%3 == 0 && i > 0 {
			fmt.Fprintf(&msg, "In-Reply-To: <bench%d@example.net>\n", i-1)
		}
		msg.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
		size := bodySize(i)
		for body := 0; body == 0 || body < size-len(line); body += len(line) {
			msg.WriteString(line)
		}
		if i%imapNeedleEvery == 0 {
			msg.WriteString("The " + imapNeedle + " is in the attic.\n")
		}
		flags := "S"
		switch {
		case i%10 == 0:
			flags = "FS"
		case i%7 == 0:
			flags = ""
		}
		data := msg.Bytes()
		vsize := len(data) + bytes.Count(data, []byte("\n"))
		name := fmt.Sprintf("%d.M%dP4242Q%dR%016x.bench,S=%d,W=%d:2,%s", 1795000000+i/10, i%10*1000, i, uint64(i)*7919, len(data), vsize, flags)
		if err := os.WriteFile(filepath.Join(dir, "cur", name), data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// imapLinkMaildir makes dir a Maildir whose files are hard links to
// those of the template.
func imapLinkMaildir(template, dir string) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			log.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(template, sub))
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range entries {
			if err := os.Link(filepath.Join(template, sub, e.Name()), filepath.Join(dir, sub, e.Name())); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// --- servers ------------------------------------------------------------

var imapListenLine = regexp.MustCompile(`mode=listen addr=(\S+)`)

// startPostkit runs a standalone imapd on a loopback port, its session
// limits raised for the IDLE connections, which all come from one
// address.
func (b *imapBench) startPostkit(imapd string) *imapTarget {
	limit := strconv.Itoa(*imapIdle + 100)
	cmd := exec.Command(imapd, "--root", b.root, "--listen", "127.0.0.1:0", "--allow-plaintext-loopback", "--hostname", "bench",
		"--max-sessions", limit, "--max-sessions-per-client", limit)
	addr, stop := imapStartLogging(cmd, func(line string) string {
		if m := imapListenLine.FindStringSubmatch(line); m != nil {
			return m[1]
		}
		return ""
	})
	return &imapTarget{name: "imapd", addr: addr, stop: stop,
		pids: func() []int { return []int{cmd.Process.Pid} }, maildir: b.postkitMaildir}
}

// imapStartLogging starts cmd and waits until ready returns an address
// for a line of its stderr; later lines that report errors are logged.
// stop ends the process (SIGTERM) and waits for it.
func imapStartLogging(cmd *exec.Cmd, ready func(line string) string) (addr string, stop func()) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	for addr == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			log.Fatalf("%s ended before it listened: %v", cmd.Path, err)
		}
		addr = ready(line)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, " error ") || strings.Contains(l, "panic") {
				log.Printf("%s: %s", filepath.Base(cmd.Path), l)
			}
		}
	}()
	var once sync.Once
	return addr, func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
			cmd.Wait()
		})
	}
}

// imapDovecot is a private Dovecot serving IMAP on a loopback port: one
// Maildir per user under dcMail, every mail process running as nobody.
type imapDovecot struct {
	dir, conf string
	uid, gid  int
	target    *imapTarget
}

func (b *imapBench) startDovecot() *imapDovecot {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		log.Fatal(err)
	}
	d := &imapDovecot{dir: filepath.Join(b.work, "dovecot")}
	d.uid, _ = strconv.Atoi(nobody.Uid)
	d.gid, _ = strconv.Atoi(nobody.Gid)
	home := filepath.Join(d.dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		log.Fatal(err)
	}
	d.chown(home)
	d.chown(b.dcMail)
	d.conf = filepath.Join(d.dir, "dovecot.conf")
	port := imapFreePort()
	// Limits raised for the 1,000 IDLE connections: one imap process
	// each, and every one of them a client of the log and anvil.
	config := fmt.Sprintf(`base_dir = %[1]s/base
state_dir = %[1]s/base
ssl = no
log_path = %[1]s/dovecot.log
first_valid_uid = 0
default_login_user = nobody
default_internal_user = root
protocols = imap
disable_plaintext_auth = no
mail_location = maildir:%[5]s/%%n
default_process_limit = %[6]d
default_client_limit = %[7]d
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[8]d
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  process_limit = %[6]d
}
passdb {
  driver = static
  args = password=%[9]s
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[4]s
}
`, d.dir, d.uid, d.gid, home, b.dcMail, *imapIdle+100, 4*(*imapIdle)+1000, port, imapPassword)
	if err := os.WriteFile(d.conf, []byte(config), 0o644); err != nil {
		log.Fatal(err)
	}
	// Not CombinedOutput: the daemon keeps the pipe open and would block it.
	if err := exec.Command("/usr/sbin/dovecot", "-c", d.conf).Run(); err != nil {
		log.Fatalf("starting dovecot (see %s/dovecot.log): %v", d.dir, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("Dovecot does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.target = &imapTarget{name: "dovecot", addr: addr, stop: d.stop, pids: d.processes,
		maildir: func(user string) string { return filepath.Join(b.dcMail, user) }}
	return d
}

func (d *imapDovecot) stop() {
	exec.Command("/usr/sbin/dovecot", "-c", d.conf, "stop").Run()
}

// chown gives dir and everything in it to nobody.
func (d *imapDovecot) chown(dir string) {
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, d.uid, d.gid)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// processes returns the master process and all its children.
func (d *imapDovecot) processes() []int {
	data, err := os.ReadFile(filepath.Join(d.dir, "base", "master.pid"))
	if err != nil {
		log.Fatal(err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		log.Fatal(err)
	}
	return append([]int{master}, imapChildren(master, "")...)
}

// imapChildren returns the processes whose parent is ppid, and whose
// command name is comm unless comm is empty.
func imapChildren(ppid int, comm string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		log.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		open, close := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(string(stat[close+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		if comm != "" && string(stat[open+1:close]) != comm {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// imapMemory returns the resident set and proportional set sizes of the
// processes pids, in bytes.
func imapMemory(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		rss += imapProcField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss += imapProcField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return rss, pss
}

// imapProcField returns a "Name:   123 kB" field of a /proc file in bytes.
func imapProcField(path, name string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, name); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				log.Fatalf("%s: %q: %v", path, l, err)
			}
			return kb << 10
		}
	}
	log.Fatalf("%s has no %s", path, name)
	return 0
}

func imapFreePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// --- the client ---------------------------------------------------------

// imapLogin connects to addr and logs in as user.
func imapLogin(addr, user string, options *imapclient.Options) *imapclient.Client {
	c, err := imapclient.DialInsecure(addr, options)
	if err != nil {
		log.Fatalf("imap: %s: %v", addr, err)
	}
	if err := c.Login(user+"@"+imapDomain, imapPassword).Wait(); err != nil {
		log.Fatalf("imap: %s: LOGIN %s: %v", addr, user, err)
	}
	return c
}

func imapSelect(c *imapclient.Client, want int) {
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		log.Fatalf("imap: SELECT: %v", err)
	}
	if int(data.NumMessages) != want {
		log.Fatalf("imap: SELECT: %d messages, want %d", data.NumMessages, want)
	}
}

// timed returns the seconds run took.
func timed(run func()) float64 {
	start := time.Now()
	run()
	return time.Since(start).Seconds()
}

// warm runs the warm workloads on each target and returns, per workload,
// each target's median rate (operations per second). The machine is
// shared: a round may be slowed, or land in a quiet moment, for one server
// and not the other, and the median of the rounds depends less on such
// luck than the best one.
func (b *imapBench) warm(targets []*imapTarget) [3][]float64 {
	n := *imapMessages
	clients := make([]*imapclient.Client, len(targets))
	for i, t := range targets {
		clients[i] = imapLogin(t.addr, "warm", nil)
		defer clients[i].Close()
		// The untimed first round: the servers build their UID lists,
		// indexes and caches.
		d := timed(func() { imapSelectFetch(clients[i], n) })
		log.Printf("imap %s: first SELECT + FETCH of %d messages: %.2fs", t.name, n, d)
	}
	// Messages spread over the whole folder.
	var uids []imap.UID
	for i := range *imapBodies {
		uids = append(uids, imap.UID(1+(i*n / *imapBodies)))
	}
	rates := make([][3][]float64, len(targets)) // target, workload, round
	for round := range *imapRounds {
		for k := range targets {
			// Rounds take turns at going first, so that both meet
			// the same load on this shared machine.
			i := (k + round) % len(targets)
			c := clients[i]
			got := [3]float64{
				1 / timed(func() { imapSelectFetch(c, n) }),
				float64(len(uids)) / timed(func() { imapBodiesFetch(c, uids) }),
				1 / timed(func() { imapSearchText(c, n) }),
			}
			log.Printf("imap round %d %s: SELECT + FETCH %.2f/s, BODY[] %.0f msg/s, SEARCH TEXT %.2f/s",
				round+1, targets[i].name, got[0], got[1], got[2])
			for w := range got {
				rates[i][w] = append(rates[i][w], got[w])
			}
		}
	}
	var medians [3][]float64
	for w := range medians {
		for i, t := range targets {
			r := rates[i][w]
			slices.Sort(r)
			medians[w] = append(medians[w], r[len(r)/2])
			log.Printf("imap %s workload %d: median %.2f, best %.2f, worst %.2f", t.name, w+1, r[len(r)/2], r[len(r)-1], r[0])
		}
	}
	return medians
}

// imapSelectFetch selects INBOX and fetches what a client lists, taking
// each message's data as it arrives (as a client filling its message
// list does) rather than collecting all of them first.
func imapSelectFetch(c *imapclient.Client, n int) {
	imapSelect(c, n)
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, Envelope: true})
	count, last := 0, ""
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		count++
		for item := msg.Next(); item != nil; item = msg.Next() {
			if env, ok := item.(imapclient.FetchItemDataEnvelope); ok && env.Envelope != nil {
				last = env.Envelope.Subject
			}
		}
	}
	if err := cmd.Close(); err != nil {
		log.Fatalf("imap: FETCH: %v", err)
	}
	if count != n || last != fmt.Sprintf("Report %d on the quarterly numbers", n-1) {
		log.Fatalf("imap: FETCH 1:* returned %d messages, want %d with envelopes (last subject %q)", count, n, last)
	}
}

// imapBodiesFetch fetches each message of uids with its own command.
func imapBodiesFetch(c *imapclient.Client, uids []imap.UID) {
	var total int64
	for _, uid := range uids {
		cmd := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		msg := cmd.Next()
		if msg == nil {
			log.Fatalf("imap: UID FETCH %d BODY.PEEK[]: no message: %v", uid, cmd.Close())
		}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if body, ok := item.(imapclient.FetchItemDataBodySection); ok {
				k, err := io.Copy(io.Discard, body.Literal)
				if err != nil {
					log.Fatalf("imap: UID FETCH %d BODY.PEEK[]: %v", uid, err)
				}
				total += k
			}
		}
		if err := cmd.Close(); err != nil {
			log.Fatalf("imap: UID FETCH %d BODY.PEEK[]: %v", uid, err)
		}
	}
	if total < int64(len(uids))*1000 {
		log.Fatalf("imap: BODY.PEEK[] of %d messages gave only %d bytes", len(uids), total)
	}
}

func imapSearchText(c *imapclient.Client, n int) {
	res, err := c.Search(&imap.SearchCriteria{Text: []string{imapNeedle}}, nil).Wait()
	if err != nil {
		log.Fatalf("imap: SEARCH TEXT: %v", err)
	}
	if got, want := len(res.AllSeqNums()), (n+imapNeedleEvery-1)/imapNeedleEvery; got != want {
		log.Fatalf("imap: SEARCH TEXT %s found %d messages, want %d", imapNeedle, got, want)
	}
}

// cold times each target's first SELECT of a fresh copy of the cold
// template, logged in beforehand.
func (b *imapBench) cold(targets []*imapTarget, dc *imapDovecot) []float64 {
	var rates []float64
	for _, t := range targets {
		dir := t.maildir("cold")
		start := time.Now()
		imapLinkMaildir(b.templatePath("cold"), dir)
		if dc != nil && t == dc.target {
			dc.chown(dir)
		}
		log.Printf("imap %s: copied the %d-message INBOX in %.1fs", t.name, *imapColdMessages, time.Since(start).Seconds())
		// A Maildir that was complete a moment before, not one still
		// being written: imapd lists a directory changed within the
		// last few clock ticks again.
		time.Sleep(time.Second)
		c := imapLogin(t.addr, "cold", nil)
		d := timed(func() { imapSelect(c, *imapColdMessages) })
		c.Close()
		log.Printf("imap %s: cold SELECT of %d messages: %.2fs", t.name, *imapColdMessages, d)
		rates = append(rates, 1/d)
	}
	return rates
}

// imapInetdConnections is how many connections the inetd workload keeps
// open at once, so that each process's PSS shows its share of the pages
// the processes have in common (the binary, libraries).
const imapInetdConnections = 8

// inetdMemory measures the processes of connections in inetd mode:
// logged in, then with INBOX selected and in IDLE. It returns connections
// per GiB of RSS (the mean process's) for postkit and Dovecot, for the two
// states.
func (b *imapBench) inetdMemory(imapd string, dc *imapDovecot) (authed, idle []float64) {
	port := imapFreePort()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command("systemd-socket-activate", "--inetd", "--accept", "-l", addr,
		imapd, "--root", b.root, "--allow-plaintext-loopback", "--hostname", "bench")
	_, stop := imapStartLogging(cmd, func(line string) string {
		if strings.HasPrefix(line, "Listening on ") {
			return addr
		}
		return ""
	})
	defer stop()
	pk := &imapTarget{name: "imapd (inetd)", addr: addr, pids: func() []int {
		return imapChildren(cmd.Process.Pid, "")
	}}
	targets := []*imapTarget{pk}
	if dc != nil {
		targets = append(targets, &imapTarget{name: "dovecot", addr: dc.target.addr, pids: func() []int {
			procs := dc.processes()
			return imapChildren(procs[0], "imap")
		}})
	}
	k := imapInetdConnections
	measure := func(t *imapTarget, state string) float64 {
		// Let the processes settle after the last command.
		time.Sleep(time.Second)
		pids := t.pids()
		if len(pids) != k {
			log.Fatalf("imap %s: %d processes for %d connections", t.name, len(pids), k)
		}
		rss, pss := imapMemory(pids)
		var anon int64
		for _, pid := range pids {
			anon += imapProcField(fmt.Sprintf("/proc/%d/status", pid), "RssAnon:")
		}
		n := int64(k)
		log.Printf("imap %s: %s, mean of %d processes: RSS %.1f MiB, PSS %.1f MiB, anonymous %.1f MiB",
			t.name, state, k, mib(rss/n), mib(pss/n), mib(anon/n))
		return float64(1<<30) / float64(rss/n)
	}
	for _, t := range targets {
		var clients []*imapclient.Client
		for range k {
			clients = append(clients, imapLogin(t.addr, "warm", nil))
		}
		authed = append(authed, measure(t, "logged in"))
		var idles []*imapclient.IdleCommand
		for _, c := range clients {
			imapSelect(c, *imapMessages)
			cmd, err := c.Idle()
			if err != nil {
				log.Fatalf("imap %s: IDLE: %v", t.name, err)
			}
			idles = append(idles, cmd)
		}
		idle = append(idle, measure(t, fmt.Sprintf("IDLE in INBOX of %d", *imapMessages)))
		for i, c := range clients {
			idles[i].Close()
			idles[i].Wait()
			c.Logout().Wait()
			c.Close()
		}
	}
	return authed, idle
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// idleMemory opens -imap-idle connections, one per user, each in IDLE
// with its INBOX selected, to a fresh standalone imapd and to Dovecot,
// and returns connections per GiB of PSS: imapd's one process against
// all of Dovecot's.
func (b *imapBench) idleMemory(imapd string, dc *imapDovecot) []float64 {
	n := *imapIdle
	start := time.Now()
	for i := range n {
		imapLinkMaildir(b.templatePath("idle"), b.postkitMaildir(imapIdleUser(i)))
		if dc != nil {
			imapLinkMaildir(b.templatePath("idle"), filepath.Join(b.dcMail, imapIdleUser(i)))
		}
	}
	if dc != nil {
		dc.chown(b.dcMail)
	}
	log.Printf("imap: made %d INBOXes in %.1fs", n, time.Since(start).Seconds())
	pk := b.startPostkit(imapd)
	defer pk.stop()
	targets := []*imapTarget{pk}
	if dc != nil {
		targets = append(targets, dc.target)
	}
	var out []float64
	for _, t := range targets {
		_, before := imapMemory(t.pids())
		start := time.Now()
		var clients []*imapclient.Client
		var idles []*imapclient.IdleCommand
		for i := range n {
			c := imapLogin(t.addr, imapIdleUser(i), nil)
			imapSelect(c, *imapIdleMessages)
			cmd, err := c.Idle()
			if err != nil {
				log.Fatalf("imap %s: IDLE: %v", t.name, err)
			}
			clients = append(clients, c)
			idles = append(idles, cmd)
		}
		// Every connection has its continuation: the server's side is
		// in IDLE. A NOOP on a fresh connection proves the server
		// still answers.
		check := imapLogin(t.addr, "warm", nil)
		if err := check.Noop().Wait(); err != nil {
			log.Fatalf("imap %s: NOOP with %d connections in IDLE: %v", t.name, n, err)
		}
		check.Logout().Wait()
		check.Close()
		time.Sleep(time.Second)
		rss, pss := imapMemory(t.pids())
		log.Printf("imap %s: %d connections in IDLE (made in %.1fs): RSS %.1f MiB, PSS %.1f MiB (%.1f MiB before), %d processes",
			t.name, n, time.Since(start).Seconds(), mib(rss), mib(pss), mib(before), len(t.pids()))
		out = append(out, float64(n)*float64(1<<30)/float64(pss))
		for i, cmd := range idles {
			cmd.Close()
			cmd.Wait()
			clients[i].Close()
		}
	}
	return out
}
