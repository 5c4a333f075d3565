package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// The content filter tests: the built smtpd with etc/milters naming a
// milter served in the test process by go-milter's server on a unix
// socket, whose verdict the test chooses; then local delivery (deliver
// and sendq) filing by etc/spam-header.

// mlFilter is the test milter: its end-of-message answer comes from mode,
// read at every message so that one server plays every verdict.
type mlFilter struct {
	gomilter.NoOpMilter
	srv *mlServer
}

func (f mlFilter) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.srv.mu.Lock()
	f.srv.seen = append(f.srv.seen, name+": "+value)
	f.srv.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f mlFilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	switch f.srv.getMode() {
	case "reject":
		return gomilter.NewResponseStr('y', "554 5.7.1 Rejected by the e2e filter"), nil
	case "tempfail":
		return gomilter.RespTempFail, nil
	case "discard":
		return gomilter.RespDiscard, nil
	case "add":
		return gomilter.RespAccept, m.AddHeader("X-Spam", "Yes")
	case "change":
		return gomilter.RespAccept, m.ChangeHeader(1, "Subject", "[SPAM] milter verdict")
	case "quarantine":
		return gomilter.RespAccept, m.Quarantine("e2e quarantine")
	case "slow":
		time.Sleep(3 * time.Second)
	}
	return gomilter.RespAccept, nil
}

// mlServer is a running test milter.
type mlServer struct {
	sock string
	mu   sync.Mutex
	mode string
	seen []string // header fields shown to it
}

func (s *mlServer) setMode(m string) {
	s.mu.Lock()
	s.mode, s.seen = m, nil
	s.mu.Unlock()
}

func (s *mlServer) getMode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

func (s *mlServer) headers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func mlStart(t *testing.T) *mlServer {
	t.Helper()
	s := &mlServer{sock: filepath.Join(t.TempDir(), "milter.sock"), mode: "accept"}
	l, err := net.Listen("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return mlFilter{srv: s} },
		Actions:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	// Closing the listener ends Serve; go-milter's Server.Close races
	// with Serve, which records its listeners without a lock.
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return s
}

const mlMessage = "From: a@remote.test\r\nTo: alice@example.org\r\nSubject: milter\r\n\r\nHello.\r\n"

func TestMilterVerdicts(t *testing.T) {
	root, _ := smtpRoot(t)
	ml := mlStart(t)
	smtpWriteEtc(t, root, "milters", "unix:"+ml.sock+" timeout=1s\n")
	srv := startSMTPd(t, root)
	tests := []struct {
		mode   string
		code   int
		text   string // prefix of the reply text
		stored bool
		junk   string
		check  func(stored string) bool
	}{
		{"accept", 250, "2.0.0 OK queued as ", true, "", func(m string) bool { return strings.HasSuffix(m, mlMessage) }},
		{"reject", 554, "5.7.1 Rejected by the e2e filter", false, "", nil},
		{"tempfail", 451, "4.7.1 Message deferred by the content filter", false, "", nil},
		{"discard", 250, "2.0.0 OK", false, "", nil},
		{"add", 250, "2.0.0 OK queued as ", true, "", func(m string) bool {
			return strings.HasSuffix(m, "Subject: milter\r\nX-Spam: Yes\r\n\r\nHello.\r\n")
		}},
		{"change", 250, "2.0.0 OK queued as ", true, "", func(m string) bool {
			return strings.Contains(m, "\r\nSubject: [SPAM] milter verdict\r\n") && !strings.Contains(m, "Subject: milter\r\n")
		}},
		{"quarantine", 250, "2.0.0 OK queued as ", true, "milter", func(m string) bool { return strings.HasSuffix(m, mlMessage) }},
		{"slow", 451, "4.7.1 Content filter unavailable, try again later", false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ml.setMode(tt.mode)
			before := len(smtpSpool(t, root))
			code, text := saSend(t, srv.addr, "client.test", "a@remote.test", mlMessage)
			if code != tt.code || !strings.HasPrefix(text, tt.text) {
				t.Fatalf("end of data: %d %q, want %d %q", code, text, tt.code, tt.text)
			}
			envs := smtpSpool(t, root)
			if got := len(envs) - before; got != map[bool]int{false: 0, true: 1}[tt.stored] {
				t.Fatalf("%d messages stored, want stored %v", got, tt.stored)
			}
			if !tt.stored {
				return
			}
			env := envs[len(envs)-1]
			if !strings.HasSuffix(text, env.ID) {
				t.Fatalf("reply %q names no spool entry %s", text, env.ID)
			}
			if env.Junk != tt.junk {
				t.Errorf("envelope junk %q, want %q", env.Junk, tt.junk)
			}
			if stored := smtpSpoolMessage(t, root, env.ID); !tt.check(stored) {
				t.Errorf("stored message:\n%s", stored)
			}
		})
	}
	srv.waitContains(t, "discarded conn=")
	srv.waitContains(t, `quarantine="yes: e2e quarantine"`)
}

// A filter that is down gives 451 4.7.1, never a lost message; with
// etc/milter-failure accept, the message goes on unfiltered.
func TestMilterDown(t *testing.T) {
	root, _ := smtpRoot(t)
	sock := filepath.Join(t.TempDir(), "down.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	smtpWriteEtc(t, root, "milters", "unix:"+sock+"\n")
	srv := startSMTPd(t, root)
	code, text := saSend(t, srv.addr, "client.test", "a@remote.test", mlMessage)
	if code != 451 || text != "4.7.1 Content filter unavailable, try again later" {
		t.Fatalf("filter down: %d %q, want 451 4.7.1", code, text)
	}
	if n := len(smtpSpool(t, root)); n != 0 {
		t.Fatalf("%d messages stored", n)
	}
	srv.waitContains(t, "error conn=")
	smtpWriteEtc(t, root, "milter-failure", "accept\n")
	if code, text := saSend(t, srv.addr, "client.test", "a@remote.test", mlMessage); code != 250 {
		t.Fatalf("filter down, milter-failure accept: %d %q", code, text)
	}
	if n := len(smtpSpool(t, root)); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
	srv.waitContains(t, "action=skipped reason=failure")
}

// mlDeliver pipes the stored message to deliver for alice and returns
// the folders it landed in.
func mlDeliver(t *testing.T, root, stored string) []string {
	t.Helper()
	if code, stderr := runDeliver(t, stored, "--root", root, "alice@example.org"); code != 0 {
		t.Fatalf("deliver: exit %d\n%s", code, stderr)
	}
	var folders []string
	for _, f := range []string{"", "Junk"} {
		for range mailFiles(t, root, "alice@example.org", f) {
			folders = append(folders, f)
		}
	}
	return folders
}

// A message a filter marks with the field of etc/spam-header goes to
// Junk through deliver, and through sendq's local delivery; a sender's
// own copy of that field is removed by smtpd, and the message stays in
// INBOX.
func TestMilterSpamHeaderToJunk(t *testing.T) {
	root, _ := smtpRoot(t)
	smtpWriteEtc(t, root, "hostname", "mx.test\n")
	smtpWriteEtc(t, root, "spam-header", "X-Spam: yes\n")
	ml := mlStart(t)
	smtpWriteEtc(t, root, "milters", "unix:"+ml.sock+"\n")
	srv := startSMTPd(t, root)

	// The sender's X-Spam goes; the filter never sees it.
	ml.setMode("accept")
	forged := "X-Spam: yes\r\n" + mlMessage
	if code, text := saSend(t, srv.addr, "client.test", "a@remote.test", forged); code != 250 {
		t.Fatalf("forged field: %d %q", code, text)
	}
	for _, h := range ml.headers() {
		if strings.HasPrefix(h, "X-Spam") {
			t.Errorf("the filter saw the sender's %q", h)
		}
	}
	envs := smtpSpool(t, root)
	stored := smtpSpoolMessage(t, root, envs[0].ID)
	if strings.Contains(stored, "X-Spam") {
		t.Fatalf("the sender's X-Spam was stored:\n%s", stored)
	}
	if folders := mlDeliver(t, root, stored); len(folders) != 1 || folders[0] != "" {
		t.Fatalf("unmarked message delivered to %q, want INBOX", folders)
	}

	// The filter's X-Spam sends it to Junk.
	ml.setMode("add")
	if code, text := saSend(t, srv.addr, "client.test", "a@remote.test", mlMessage); code != 250 {
		t.Fatalf("marked message: %d %q", code, text)
	}
	envs = smtpSpool(t, root)
	stored = smtpSpoolMessage(t, root, envs[1].ID)
	if folders := mlDeliver(t, root, stored); len(folders) != 2 || folders[1] != "Junk" {
		t.Fatalf("marked message: alice has %q, want the second one in Junk", folders)
	}

	// sendq delivers both spooled messages the same way.
	for _, d := range []string{"", ".Junk"} {
		dir := filepath.Join(root, "mail", "example.org", "alice", d, "new")
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	startSendq(t, root)
	sqWait(t, "both messages delivered", 30*time.Second, func() bool {
		return len(mailFiles(t, root, "alice@example.org", "")) == 1 && len(mailFiles(t, root, "alice@example.org", "Junk")) == 1
	})
	junk := readFile(t, mailFiles(t, root, "alice@example.org", "Junk")[0])
	if !strings.Contains(junk, "X-Spam: Yes\n") {
		t.Errorf("Junk holds:\n%s", junk)
	}
}
