package smtpd

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/postkit/postkit/mailheader"
)

// testFilter is a milter whose end-of-message answer is chosen by mode;
// it records the header fields it is shown.
type testFilter struct {
	gomilter.NoOpMilter
	mode string
	mu   *sync.Mutex
	seen *[]string
}

func (f testFilter) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.mu.Lock()
	*f.seen = append(*f.seen, name+": "+value)
	f.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f testFilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	switch f.mode {
	case "reject":
		return gomilter.RespReject, nil
	case "reject-reply":
		return gomilter.NewResponseStr('y', "554 5.7.1 Spam detected"), nil
	case "tempfail":
		return gomilter.RespTempFail, nil
	case "discard":
		return gomilter.RespDiscard, nil
	case "add":
		return gomilter.RespAccept, m.AddHeader("X-Spam", "Yes")
	case "change":
		return gomilter.RespAccept, m.ChangeHeader(1, "Subject", "[SPAM] milter")
	case "quarantine":
		return gomilter.RespAccept, m.Quarantine("spam")
	case "slow":
		time.Sleep(2 * time.Second)
	}
	return gomilter.RespAccept, nil
}

// filterServer is a running test milter.
type filterServer struct {
	line string // for etc/milters
	mu   sync.Mutex
	seen []string
}

func (fs *filterServer) headers() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.seen...)
}

// startFilter serves a test milter of mode on a unix socket.
func startFilter(t *testing.T, mode string) *filterServer {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fs := &filterServer{line: "unix:" + sock}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return testFilter{mode: mode, mu: &fs.mu, seen: &fs.seen} },
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
	return fs
}

// stoppedFilter is the line of a filter whose socket is gone.
func stoppedFilter(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	return "unix:" + sock
}

const filterMessage = "From: a@remote.test\r\nTo: alice@example.org\r\nSubject: filter\r\n\r\nHello.\r\n"

func TestMilterVerdicts(t *testing.T) {
	tests := []struct {
		mode     string
		code     int
		text     string // prefix of the reply's text
		stored   bool
		junk     string
		contains string // in the stored message
		lacks    string
	}{
		{"accept", 250, "2.0.0 OK queued as ", true, "", "Subject: filter\r\n", ""},
		{"reject", 550, "5.7.1 Message refused by the content filter", false, "", "", ""},
		{"reject-reply", 554, "5.7.1 Spam detected", false, "", "", ""},
		{"tempfail", 451, "4.7.1 Message deferred by the content filter", false, "", "", ""},
		{"discard", 250, "2.0.0 OK", false, "", "", ""},
		{"add", 250, "2.0.0 OK queued as ", true, "", "\r\nHello.\r\n", ""},
		{"change", 250, "2.0.0 OK queued as ", true, "", "Subject: [SPAM] milter\r\n", "Subject: filter"},
		{"quarantine", 250, "2.0.0 OK queued as ", true, JunkMilter, "Subject: filter\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ts := startServer(t)
			writeEtc(t, ts.root, "milters", startFilter(t, tt.mode).line+" timeout=10s\n")
			code, text := sendMX(ts, "a@remote.test", filterMessage)
			if code != tt.code || !strings.HasPrefix(text, tt.text) {
				t.Fatalf("end of data: %d %q, want %d %q", code, text, tt.code, tt.text)
			}
			envs, msgs := ts.queued()
			if len(envs) != map[bool]int{false: 0, true: 1}[tt.stored] {
				t.Fatalf("%d messages stored, want stored %v", len(envs), tt.stored)
			}
			if !tt.stored {
				return
			}
			if envs[0].Junk != tt.junk {
				t.Errorf("junk %q, want %q", envs[0].Junk, tt.junk)
			}
			if !strings.Contains(msgs[0], tt.contains) || tt.lacks != "" && strings.Contains(msgs[0], tt.lacks) {
				t.Errorf("stored message:\n%s\nwant %q in it, not %q", msgs[0], tt.contains, tt.lacks)
			}
			if tt.mode == "add" && !strings.HasSuffix(msgs[0], "Subject: filter\r\nX-Spam: Yes\r\n\r\nHello.\r\n") {
				t.Errorf("the added field is not last in the header:\n%s", msgs[0])
			}
		})
	}
}

// The filter is shown the header as it is stored: our Received and
// Authentication-Results fields first, without the fields of
// etc/spam-header, which a sender cannot set in incoming mail.
func TestMilterSeesHeaderWithoutSpamFields(t *testing.T) {
	ts := startServer(t)
	fs := startFilter(t, "add")
	writeEtc(t, ts.root, "milters", fs.line+"\n")
	writeEtc(t, ts.root, "spam-header", "X-Spam: yes\n")
	forged := "X-Spam: yes\r\nx-spam: no\r\n" + filterMessage
	if code, text := sendMX(ts, "a@remote.test", forged); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	seen := fs.headers()
	if len(seen) < 2 || !strings.HasPrefix(seen[0], "Received: from client.test ([127.0.0.1])") ||
		!strings.HasPrefix(seen[1], "Authentication-Results: "+testHostname+";") {
		t.Errorf("the filter saw %q, want Received and Authentication-Results first", seen)
	}
	for _, h := range seen {
		if strings.HasPrefix(strings.ToLower(h), "x-spam") {
			t.Errorf("the filter saw the sender's %q", h)
		}
	}
	_, msgs := ts.queued()
	if n := strings.Count(strings.ToLower(msgs[0]), "x-spam:"); n != 1 || !strings.Contains(msgs[0], "X-Spam: Yes\r\n") {
		t.Errorf("stored message has %d X-Spam fields, want the filter's only:\n%s", n, msgs[0])
	}
	ts.waitLog("field=X-Spam count=2")
}

// Without filters the fields go all the same; relay clients keep theirs.
func TestSpamFieldsStrippedFromIncomingOnly(t *testing.T) {
	ts := startServer(t)
	writeEtc(t, ts.root, "spam-header", "X-Spam: yes\n")
	if code, _ := sendMX(ts, "a@remote.test", "X-Spam: yes\r\nSubject: incoming\r\n\r\nbody\r\n"); code != 250 {
		t.Fatal(code)
	}
	writeEtc(t, ts.root, "relay-clients", "127.0.0.1\n")
	if code, _ := sendMX(ts, "a@remote.test", "X-Spam: yes\r\nSubject: relayed\r\n\r\nbody\r\n"); code != 250 {
		t.Fatal(code)
	}
	_, msgs := ts.queued()
	if len(msgs) != 2 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	for _, m := range msgs {
		if relayed := strings.Contains(m, "Subject: relayed"); strings.Contains(m, "X-Spam: yes") != relayed {
			t.Errorf("relayed %v, X-Spam kept %v:\n%s", relayed, !relayed, m)
		}
	}
}

func TestMilterFailures(t *testing.T) {
	tests := []struct {
		name    string
		milters string
		failure string // etc/milter-failure
		code    int
	}{
		{"down", "STOPPED\n", "", 451},
		{"down, accept", "STOPPED\n", "accept\n", 250},
		{"timeout", "SLOW timeout=100ms\n", "", 451},
		{"timeout, accept", "SLOW timeout=100ms\n", "accept\n", 250},
		{"bad line", "tcp:127.0.0.1:1\n", "", 451},
		{"bad line, accept", "tcp:127.0.0.1:1\n", "accept\n", 250},
		{"bad policy means tempfail", "STOPPED\n", "maybe\n", 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t)
			milters := strings.ReplaceAll(tt.milters, "STOPPED", stoppedFilter(t))
			if strings.Contains(milters, "SLOW") {
				milters = strings.ReplaceAll(milters, "SLOW", startFilter(t, "slow").line)
			}
			writeEtc(t, ts.root, "milters", milters)
			if tt.failure != "" {
				writeEtc(t, ts.root, "milter-failure", tt.failure)
			}
			code, text := sendMX(ts, "a@remote.test", filterMessage)
			if code != tt.code {
				t.Fatalf("end of data: %d %q, want %d", code, text, tt.code)
			}
			envs, _ := ts.queued()
			if want := map[int]int{250: 1, 451: 0}[tt.code]; len(envs) != want {
				t.Errorf("%d messages stored, want %d", len(envs), want)
			}
			if code == 451 && text != "4.7.1 Content filter unavailable, try again later" {
				t.Errorf("reply %q", text)
			}
		})
	}
}

// Filters run in order, each seeing what the one before left; the
// first refusal ends it.
func TestMilterChain(t *testing.T) {
	ts := startServer(t)
	first, second := startFilter(t, "add"), startFilter(t, "quarantine")
	writeEtc(t, ts.root, "milters", first.line+"\n"+second.line+"\n")
	if code, text := sendMX(ts, "a@remote.test", filterMessage); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	if seen := second.headers(); len(seen) == 0 || seen[len(seen)-1] != "X-Spam: Yes" {
		t.Errorf("the second filter saw %q, want the first one's field last", seen)
	}
	envs, _ := ts.queued()
	if len(envs) != 1 || envs[0].Junk != JunkMilter {
		t.Errorf("stored %+v, want one message for Junk", envs)
	}

	writeEtc(t, ts.root, "milters", startFilter(t, "reject").line+"\n"+stoppedFilter(t)+"\n")
	if code, _ := sendMX(ts, "a@remote.test", filterMessage); code != 550 {
		t.Errorf("reject then a stopped filter: %d, want the reject", code)
	}
}

// Incoming mail goes through etc/milters, mail of users through
// etc/submission-milters.
func TestMilterFiles(t *testing.T) {
	ts := startServer(t, submission)
	writeEtc(t, ts.root, "milters", startFilter(t, "reject").line+"\n")
	c := submitter(ts)
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if code, text := c.message(filterMessage); code != 250 {
		t.Fatalf("submission with etc/milters only: %d %q", code, text)
	}
	writeEtc(t, ts.root, "submission-milters", startFilter(t, "tempfail").line+"\n")
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if code, text := c.message(filterMessage); code != 451 {
		t.Fatalf("submission with etc/submission-milters: %d %q, want 451", code, text)
	}
	// The rate limit counts stored messages only.
	writeEtc(t, ts.root, "rate-messages-per-hour", "2\n")
	writeEtc(t, ts.root, "submission-milters", "")
	c.cmd("MAIL FROM:<alice@example.org>", 250)
	c.cmd("RCPT TO:<bob@example.org>", 250)
	if code, text := c.message(filterMessage); code != 250 {
		t.Fatalf("second stored message under a limit of 2: %d %q", code, text)
	}
	c.cmd("MAIL FROM:<alice@example.org>", 451)
}

// FuzzKeptFields: the fields kept from a received header are those of
// the header, in order and byte for byte, less exactly the removed ones,
// and none of them is a field of etc/spam-header.
func FuzzKeptFields(f *testing.F) {
	f.Add([]byte("X-Spam: yes\r\nSubject: x\r\n\r\n"))
	f.Add([]byte("Authentication-Results: " + testHostname + "; spf=pass\r\nx-spam : no\r\n\tfolded\r\nbroken\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		header := mailheader.ParseHeader(data)
		kept, forged, spam := keptFields(header, testHostname, []string{"X-Spam"})
		removed := forged
		for _, n := range spam {
			removed += n
		}
		if len(kept)+removed != len(header.Fields) {
			t.Fatalf("%d fields kept and %d removed of %d", len(kept), removed, len(header.Fields))
		}
		for _, k := range kept {
			if strings.EqualFold(k.Name, "X-Spam") {
				t.Fatalf("kept %q", k.Raw)
			}
		}
		// In order, as they were.
		i := 0
		for _, f := range header.Fields {
			if i < len(kept) && kept[i].Raw == string(f.Raw) && kept[i].Name == f.Name {
				i++
			}
		}
		if i != len(kept) {
			t.Fatalf("kept fields %q are not those of %q in order", kept, data)
		}
	})
}
