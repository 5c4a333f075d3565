package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// The load test's size.
const (
	loadSMTPSessions = 500
	loadIMAPSessions = 500
	loadUsers        = 10 // the IMAP sessions are spread over them
	loadHold         = 60 * time.Second
	loadSlowClients  = 50
	// loadSlowTimeout is the slow clients' smtpd's --command-timeout.
	loadSlowTimeout = 2 * time.Second
	// loadSlowIMAPLine is what slow IMAP clients send, a byte a second:
	// imapd has no timeout flag, and go-imap gives each command 30
	// seconds from its first byte, far less than this line takes.
	loadSlowIMAPLine = "a LOGIN load0@example.org slow-client-with-a-very-long-password-that-takes-minutes-to-type\r\n"
	// loadDialers is how many sessions are opened at once.
	loadDialers = 50
)

func loadUser(i int) string { return fmt.Sprintf("load%d@example.org", i%loadUsers) }

func loadPassword(i int) string { return fmt.Sprintf("load-pw-%d", i%loadUsers) }

// loadRoot makes a root with the load users (through mkuser) and 127.0.0.1
// as a relay client (no sender checks at the end of the data, which would
// ask a DNS server). mkuser hashes passwords at bcrypt's default cost,
// tens of milliseconds of CPU per login; the hashes are replaced with ones
// of the lowest cost so that 500 logins do not take the test's time.
func loadRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for i := range loadUsers {
		cmd := exec.Command(Bin(t, "mkuser"), "--root", root, "add", loadUser(i))
		cmd.Stdin = strings.NewReader(loadPassword(i) + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkuser add %s: %v\n%s", loadUser(i), err, out)
		}
	}
	users := filepath.Join(root, "etc", "users")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, users)), "\n") {
		f := strings.Split(l, ":")
		for i := range loadUsers {
			if f[0] == loadUser(i) {
				h, err := bcrypt.GenerateFromPassword([]byte(loadPassword(i)), bcrypt.MinCost)
				if err != nil {
					t.Fatal(err)
				}
				f[1] = "{BLF-CRYPT}" + string(h)
			}
		}
		lines = append(lines, strings.Join(f, ":"))
	}
	writeFile(t, users, strings.Join(lines, "\n")+"\n")
	smtpWriteEtc(t, root, "relay-clients", "127.0.0.1\n")
	return root
}

// loadErrors collects the errors of many sessions: the count, and the
// first few for the log.
type loadErrors struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *loadErrors) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 10 {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

func (e *loadErrors) check(t *testing.T, what string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		t.Errorf("%s: %d errors, the first:\n%s", what, e.n, strings.Join(e.first, "\n"))
	}
}

// loadEach runs f(i) for i in [0, n), loadDialers at a time.
func loadEach(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, loadDialers)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// loadSMTP is one held SMTP session, in the middle of a transaction.
type loadSMTP struct {
	c *smtp.Client
}

func loadOpenSMTP(addr string, i int) (*loadSMTP, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = time.Minute
	if err := c.Hello(fmt.Sprintf("load%d.test", i)); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail("sender@remote.test", nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(loadUser(i), nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("RCPT: %w", err)
	}
	return &loadSMTP{c: c}, nil
}

// finish sends the message of the held transaction and quits.
func (s *loadSMTP) finish(i int) error {
	defer s.c.Close()
	w, err := s.c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	fmt.Fprintf(w, "From: sender@remote.test\r\nTo: %s\r\nSubject: load %d\r\n\r\nheld for a minute\r\n", loadUser(i), i)
	resp, err := w.CloseWithResponse()
	if err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	if !strings.HasPrefix(resp.StatusText, "2.0.0 OK queued as ") {
		return fmt.Errorf("end of data: 250 %q", resp.StatusText)
	}
	return s.c.Quit()
}

// loadIMAP is one IMAP session idling in its user's INBOX.
type loadIMAP struct {
	c      *imapclient.Client
	idle   *imapclient.IdleCommand
	exists atomic.Uint32 // the highest EXISTS seen since the SELECT
	seen   chan struct{} // closed at the first EXISTS above 0
	once   sync.Once
}

// loadOpenIMAP logs in as user i, selects INBOX, which must hold want
// messages, and starts IDLE.
func loadOpenIMAP(addr string, i int, want uint32) (*loadIMAP, error) {
	s := &loadIMAP{seen: make(chan struct{})}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil && *d.NumMessages > 0 {
				s.exists.Store(max(s.exists.Load(), *d.NumMessages))
				s.once.Do(func() { close(s.seen) })
			}
		},
	}})
	if err != nil {
		return nil, err
	}
	s.c = c
	if err := c.Login(loadUser(i), loadPassword(i)).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", loadUser(i), err)
	}
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("SELECT: %w", err)
	}
	if data.NumMessages != want {
		c.Close()
		return nil, fmt.Errorf("SELECT: %d messages in INBOX, want %d", data.NumMessages, want)
	}
	if s.idle, err = c.Idle(); err != nil {
		c.Close()
		return nil, fmt.Errorf("IDLE: %w", err)
	}
	return s, nil
}

// finish ends IDLE and logs out.
func (s *loadIMAP) finish() error {
	defer s.c.Close()
	if err := s.idle.Close(); err != nil {
		return fmt.Errorf("DONE: %w", err)
	}
	if err := s.idle.Wait(); err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	if err := s.c.Noop().Wait(); err != nil {
		return fmt.Errorf("NOOP: %w", err)
	}
	return s.c.Logout().Wait()
}

// loadSlowClient connects to addr again and again, each time sending
// "EHLO" one byte a second, slower than the command timeout allows, until
// stop is closed, and then once more. It counts the sessions that ended
// with 421 and a close (timed out); anything else is an error.
func loadSlowClient(addr string, greeted func(), stop <-chan struct{}, timeouts *atomic.Int64, errs *loadErrors) {
	first := true
	for {
		select {
		case <-stop:
			if !first {
				return
			}
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			errs.add("slow client: %v", err)
			return
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReader(c)
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
			errs.add("slow client: greeting %q, %v", l, err)
			c.Close()
			return
		}
		if first {
			greeted()
			first = false
		}
		// What the server says until it closes the connection. A close
		// with bytes from the client still unread (those sent after the
		// deadline) is a reset rather than an end of file.
		replies := make(chan string, 1)
		go func() {
			var got []string
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
						got = append(got, err.Error())
					}
					replies <- strings.Join(got, "|")
					return
				}
				got = append(got, strings.TrimSpace(l))
			}
		}()
		line := "EHLO slow.test\r\n"
		var reply string
	send:
		for i := 0; ; i++ {
			if i < len(line) {
				// A write after the server closed may fail: the reply
				// tells what happened.
				c.Write([]byte{line[i]})
			}
			select {
			case reply = <-replies:
				break send
			case <-time.After(time.Second):
			}
		}
		c.Close()
		if !strings.HasPrefix(reply, "421 4.4.2 ") || strings.Contains(reply, "|") {
			errs.add("slow client: the session ended with %q, want one 421 4.4.2 and the close", reply)
			return
		}
		timeouts.Add(1)
	}
}

// loadSlowIMAPClient connects to imapd at addr and sends
// loadSlowIMAPLine a byte a second. imapd must close the connection
// before the line is complete; cut counts the clients it did, and said
// what imapd answered before closing.
func loadSlowIMAPClient(addr string, greeted func(), cut *loadReplies, errs *loadErrors) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		errs.add("slow IMAP client: %v", err)
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK ") {
		errs.add("slow IMAP client: greeting %q, %v", l, err)
		return
	}
	greeted()
	closed := make(chan error, 1)
	var said []string
	go func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				closed <- err
				return
			}
			said = append(said, strings.TrimSpace(l))
		}
	}()
	for i := range len(loadSlowIMAPLine) {
		c.Write([]byte{loadSlowIMAPLine[i]})
		select {
		case err := <-closed:
			if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				errs.add("slow IMAP client: %v after %d bytes", err, i+1)
				return
			}
			cut.add(strings.Join(said, " | "))
			return
		case <-time.After(time.Second):
		}
	}
	errs.add("slow IMAP client: sent a %d-byte command a byte a second and the connection is still open", len(loadSlowIMAPLine))
}

// loadReplies counts the clients that got each reply.
type loadReplies struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *loadReplies) add(reply string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reply]++
}

func (r *loadReplies) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.n {
		n += k
	}
	return n
}

// TestLoadSessions holds 500 SMTP sessions (each in the middle of a
// transaction) and 500 IMAP sessions in IDLE for a minute. While they are
// held, a delivery to each user reaches every IDLE session as EXISTS, and
// on another smtpd with a 2-second command timeout 50 slow clients are
// timed out again and again while a normal client sends a message, and 50
// slow IMAP clients are cut off by imapd while a normal one logs in. At the
// end every SMTP session sends its message and every IMAP session logs
// out, without an error. The daemons' memory and open files are logged.
func TestLoadSessions(t *testing.T) {
	// Each session is a socket here and one in the daemon, and Go raises
	// the soft limit to the hard one: this only checks that it is enough.
	raiseFileLimit(t, 4*(loadSMTPSessions+loadIMAPSessions))
	root := loadRoot(t)
	limit := fmt.Sprint(loadSMTPSessions + 100)
	mx := startSMTPd(t, root, "--max-sessions", limit, "--max-sessions-per-client", limit)
	slow := startSMTPd(t, root, "--command-timeout", loadSlowTimeout.String(), "--max-sessions", "200", "--max-sessions-per-client", "200")
	imapLimit := fmt.Sprint(loadIMAPSessions + 100) // all from 127.0.0.1, slow clients included
	imapd := startIMAPd(t, root, "--allow-plaintext-loopback", "--max-sessions", imapLimit, "--max-sessions-per-client", imapLimit)
	usage := func(when string) {
		t.Logf("%s: smtpd %s; smtpd (slow clients) %s; imapd %s; test process %s", when,
			procUsage(mx.cmd.Process.Pid), procUsage(slow.cmd.Process.Pid), procUsage(imapd.cmd.Process.Pid), procUsage(os.Getpid()))
	}
	usage("idle daemons")

	start := time.Now()
	var openErrs loadErrors
	smtpSessions := make([]*loadSMTP, loadSMTPSessions)
	imapSessions := make([]*loadIMAP, loadIMAPSessions)
	var opening sync.WaitGroup
	opening.Add(2)
	go func() {
		defer opening.Done()
		loadEach(loadSMTPSessions, func(i int) {
			s, err := loadOpenSMTP(mx.addr, i)
			if err != nil {
				openErrs.add("SMTP session %d: %v", i, err)
				return
			}
			smtpSessions[i] = s
		})
	}()
	go func() {
		defer opening.Done()
		loadEach(loadIMAPSessions, func(i int) {
			s, err := loadOpenIMAP(imapd.addr, i, 0)
			if err != nil {
				openErrs.add("IMAP session %d: %v", i, err)
				return
			}
			imapSessions[i] = s
		})
	}()
	opening.Wait()
	openErrs.check(t, "opening the sessions")
	t.Cleanup(func() {
		for _, s := range smtpSessions {
			if s != nil {
				s.c.Close()
			}
		}
		for _, s := range imapSessions {
			if s != nil {
				s.c.Close()
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	held := time.Now()
	t.Logf("%d SMTP sessions in a transaction and %d IMAP sessions in IDLE opened in %v",
		loadSMTPSessions, loadIMAPSessions, held.Sub(start).Round(time.Millisecond))
	usage("sessions open")

	// A delivery to each user reaches each of its IDLE sessions.
	for i := range loadUsers {
		cmd := exec.Command(Bin(t, "deliver"), "--root", root, loadUser(i))
		cmd.Stdin = strings.NewReader(fmt.Sprintf("From: sender@remote.test\nSubject: to %s\n\nwhile idling\n", loadUser(i)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("deliver to %s: %v\n%s", loadUser(i), err, out)
		}
	}
	delivered := time.Now()
	timeout := time.After(loadHold)
	missed := 0
	for i, s := range imapSessions {
		select {
		case <-s.seen:
		case <-timeout:
			missed++
			continue
		}
		if n := s.exists.Load(); n != 1 {
			t.Errorf("IMAP session %d (%s) saw EXISTS %d, want 1", i, loadUser(i), n)
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d IDLE sessions saw no EXISTS within %v of the deliveries", missed, loadIMAPSessions, loadHold)
	}
	t.Logf("every IDLE session saw its EXISTS %v after the deliveries", time.Since(delivered).Round(time.Millisecond))

	// Slow IMAP clients are cut off while the rest goes on, and a normal
	// IMAP client logs in meanwhile. (go-imap's read timeout, 30 seconds
	// for a command, ends the command with NO [SERVERBUG] rather than the
	// session; the next command's timeout closes it: what they were told
	// is logged.)
	var (
		slowIMAPErrs    loadErrors
		slowIMAPCut     loadReplies
		slowIMAPStart   = time.Now()
		slowIMAPGreeted sync.WaitGroup
		slowIMAPDone    sync.WaitGroup
	)
	slowIMAPGreeted.Add(loadSlowClients)
	for range loadSlowClients {
		slowIMAPDone.Add(1)
		go func() {
			defer slowIMAPDone.Done()
			var once sync.Once
			loadSlowIMAPClient(imapd.addr, func() { once.Do(slowIMAPGreeted.Done) }, &slowIMAPCut, &slowIMAPErrs)
			once.Do(slowIMAPGreeted.Done)
		}()
	}
	slowIMAPGreeted.Wait()
	if s, err := loadOpenIMAP(imapd.addr, loadIMAPSessions, 1); err != nil {
		t.Errorf("a normal IMAP client among %d slow ones: %v", loadSlowClients, err)
	} else if err := s.finish(); err != nil {
		t.Errorf("a normal IMAP client among %d slow ones: %v", loadSlowClients, err)
	}

	// Slow clients on the other smtpd are timed out, over and over, and
	// a normal client's transaction goes through meanwhile.
	var (
		slowErrs     loadErrors
		slowTimeouts atomic.Int64
		greetedAll   sync.WaitGroup
		slowDone     sync.WaitGroup
		stop         = make(chan struct{})
	)
	greetedAll.Add(loadSlowClients)
	for range loadSlowClients {
		slowDone.Add(1)
		go func() {
			defer slowDone.Done()
			var once sync.Once
			loadSlowClient(slow.addr, func() { once.Do(greetedAll.Done) }, stop, &slowTimeouts, &slowErrs)
			once.Do(greetedAll.Done)
		}()
	}
	greetedAll.Wait()
	usage(fmt.Sprintf("%d slow clients connected", loadSlowClients))
	normalStart := time.Now()
	c, err := smtp.Dial(slow.addr)
	if err == nil {
		err = smtpSend(c, "sender@remote.test", []string{loadUser(0)}, "Subject: among slow clients\r\n\r\nhello\r\n")
		if err == nil {
			err = c.Quit()
		}
		c.Close()
	}
	if err != nil {
		t.Errorf("a normal client among %d slow ones: %v", loadSlowClients, err)
	}
	normalTook := time.Since(normalStart)
	timeoutsMeanwhile := slowTimeouts.Load()
	close(stop)
	slowDone.Wait()
	slowErrs.check(t, "slow clients")
	t.Logf("a normal transaction among %d slow clients took %v; the slow clients were timed out %d times meanwhile and %d times in all",
		loadSlowClients, normalTook.Round(time.Millisecond), timeoutsMeanwhile, slowTimeouts.Load())
	if n := slowTimeouts.Load(); n < loadSlowClients {
		t.Errorf("the slow clients were timed out %d times, want at least once each (%d)", n, loadSlowClients)
	}
	if l := slow.waitContains(t, "result=timeout"); !strings.Contains(l, "client=127.0.0.1") {
		t.Errorf("session log line of a slow client: %q", l)
	}

	// Hold the sessions for the rest of the minute, checking the SMTP
	// ones halfway.
	time.Sleep(time.Until(held.Add(loadHold / 2)))
	var noopErrs loadErrors
	loadEach(loadSMTPSessions, func(i int) {
		if err := smtpSessions[i].c.Noop(); err != nil {
			noopErrs.add("SMTP session %d: NOOP: %v", i, err)
		}
	})
	noopErrs.check(t, "SMTP sessions halfway")
	usage("halfway")
	slowIMAPDone.Wait()
	slowIMAPErrs.check(t, "slow IMAP clients")
	t.Logf("imapd cut off %d of %d slow IMAP clients within %v; what they were told before (clients by reply): %v",
		slowIMAPCut.total(), loadSlowClients, time.Since(slowIMAPStart).Round(time.Second), slowIMAPCut.n)

	time.Sleep(time.Until(held.Add(loadHold)))
	usage(fmt.Sprintf("after %v", time.Since(held).Round(time.Second)))

	var endErrs loadErrors
	loadEach(loadSMTPSessions+loadIMAPSessions, func(i int) {
		if i < loadSMTPSessions {
			if err := smtpSessions[i].finish(i); err != nil {
				endErrs.add("SMTP session %d: %v", i, err)
			}
			return
		}
		k := i - loadSMTPSessions
		if err := imapSessions[k].finish(); err != nil {
			endErrs.add("IMAP session %d: %v", k, err)
		}
	})
	endErrs.check(t, "ending the sessions")
	usage("sessions ended")
	if n := len(smtpSpool(t, root)); n != loadSMTPSessions+1 {
		t.Errorf("the spool holds %d messages, want %d (one per SMTP session and the normal client's)", n, loadSMTPSessions+1)
	}
}
