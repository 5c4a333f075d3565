package milter

import (
	"encoding/binary"
	"net"
	"net/netip"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// seen is what the test filter was told, for the test to check.
type seen struct {
	mu      sync.Mutex
	host    string
	family  string
	addr    string
	port    uint16
	helo    string
	from    string
	rcpts   []string
	headers []string // "Name: value" as received
	body    string
	macros  map[string]string
}

// testMilter is a go-milter server handler whose answers come from its
// fields; it records what it is told in seen.
type testMilter struct {
	seen *seen
	// at answers resp at the named stage (connect, helo, mail, rcpt,
	// header, eoh, body), and Body answers eom.
	at   string
	resp gomilter.Response
	// eom makes the end of message modifications, then eomResp.
	eom     func(m *gomilter.Modifier) error
	eomResp gomilter.Response
	// sleep delays the end of message answer.
	sleep time.Duration
}

func (tm *testMilter) answer(stage string) (gomilter.Response, error) {
	if tm.at == stage {
		return tm.resp, nil
	}
	return gomilter.RespContinue, nil
}

func (tm *testMilter) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.seen.mu.Lock()
	tm.seen.host, tm.seen.family, tm.seen.port = host, family, port
	if addr != nil {
		tm.seen.addr = addr.String()
	}
	tm.seen.macros = map[string]string{}
	for k, v := range m.Macros {
		tm.seen.macros[k] = v
	}
	tm.seen.mu.Unlock()
	return tm.answer("connect")
}

func (tm *testMilter) record(f func(s *seen), m *gomilter.Modifier) {
	tm.seen.mu.Lock()
	defer tm.seen.mu.Unlock()
	f(tm.seen)
	for k, v := range m.Macros {
		tm.seen.macros[k] = v
	}
}

func (tm *testMilter) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(s *seen) { s.helo = name }, m)
	return tm.answer("helo")
}

func (tm *testMilter) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(s *seen) { s.from = from }, m)
	return tm.answer("mail")
}

func (tm *testMilter) RcptTo(rcpt string, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(s *seen) { s.rcpts = append(s.rcpts, rcpt) }, m)
	return tm.answer("rcpt")
}

func (tm *testMilter) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(s *seen) { s.headers = append(s.headers, name+": "+value) }, m)
	return tm.answer("header")
}

func (tm *testMilter) Headers(h textproto.MIMEHeader, m *gomilter.Modifier) (gomilter.Response, error) {
	return tm.answer("eoh")
}

func (tm *testMilter) BodyChunk(chunk []byte, m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(s *seen) { s.body += string(chunk) }, m)
	return tm.answer("body")
}

func (tm *testMilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	tm.record(func(*seen) {}, m)
	time.Sleep(tm.sleep)
	if tm.eom != nil {
		if err := tm.eom(m); err != nil {
			return nil, err
		}
	}
	if tm.eomResp != nil {
		return tm.eomResp, nil
	}
	return gomilter.RespAccept, nil
}

func (tm *testMilter) Abort(m *gomilter.Modifier) error { return nil }

// countingListener counts connections; with v6 set it makes go-milter's
// server (protocol version 2) claim version 6 in its option negotiation,
// so that the client keeps the version 6 masks: the path real filters
// take.
type countingListener struct {
	net.Listener
	v6    bool
	mu    sync.Mutex
	conns int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns++
	l.mu.Unlock()
	if !l.v6 {
		return c, nil
	}
	return &v6Conn{Conn: c}, nil
}

func (l *countingListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns
}

type v6Conn struct {
	net.Conn
	patched bool
}

func (c *v6Conn) Write(p []byte) (int, error) {
	// The first packet written is the negotiation: length, 'O', version.
	if !c.patched && len(p) >= 9 && p[4] == 'O' {
		c.patched = true
		q := append([]byte(nil), p...)
		binary.BigEndian.PutUint32(q[5:9], 6)
		return c.Conn.Write(q)
	}
	return c.Conn.Write(p)
}

// startFilter serves tm on a unix socket in a temporary directory and
// returns the filter line for it.
func startFilter(t *testing.T, tm *testMilter, v6 bool, actions gomilter.OptAction, proto gomilter.OptProtocol) Filter {
	f, _ := startCountedFilter(t, tm, v6, actions, proto)
	return f
}

func startCountedFilter(t *testing.T, tm *testMilter, v6 bool, actions gomilter.OptAction, proto gomilter.OptProtocol) (Filter, *countingListener) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "m.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: ul, v6: v6}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return tm },
		Actions:   actions,
		Protocol:  proto,
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
	f, err := ParseFilter("unix:" + sock + " timeout=5s connect-timeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

const allActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine

func testMessage() *Message {
	header := "Received: from client.test ([192.0.2.7])\r\n\tby mx.test (postkit); Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
		"From: a@remote.test\r\nTo: alice@example.org\r\nSubject: first\r\nSubject: second\r\n"
	return &Message{
		Hostname:   "mx.test",
		QueueID:    "CONN123.1",
		ClientIP:   netip.MustParseAddr("192.0.2.7"),
		ClientPort: 40000,
		Helo:       "client.test",
		TLSVersion: "TLSv1.3",
		AuthUser:   "",
		From:       "a@remote.test",
		FromArgs:   []string{"BODY=8BITMIME"},
		Rcpts:      []string{"alice@example.org", "bob@example.org"},
		Header:     ParseHeader([]byte(header)),
		Body:       strings.NewReader("line one\r\nline two\r\n"),
	}
}

func check(t *testing.T, f Filter, msg *Message) *Result {
	t.Helper()
	res, err := f.Check(msg, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return res
}

// The filter is told the connection, envelope, header and body, with the
// macros, on both protocol versions.
func TestCheckSendsEverything(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "v2"
		if v6 {
			name = "v6"
		}
		t.Run(name, func(t *testing.T) {
			tm := &testMilter{seen: &seen{}}
			f, l := startCountedFilter(t, tm, v6, allActions, 0)
			res := check(t, f, testMessage())
			// A version 2 filter refuses the version 6 masks: a second
			// connection offers the old ones.
			if want := map[bool]int{false: 2, true: 1}[v6]; l.count() != want {
				t.Errorf("%d connections to the filter, want %d", l.count(), want)
			}
			if res.Action != Accept || res.Stage != "eom" || len(res.Changes) != 0 || res.Quarantine {
				t.Errorf("Check = %+v, want a plain accept at eom", res)
			}
			s := tm.seen
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.host != "unknown" || s.family != "tcp4" || s.addr != "192.0.2.7" || s.port != 40000 {
				t.Errorf("connect: host %q family %q addr %q port %d", s.host, s.family, s.addr, s.port)
			}
			if s.helo != "client.test" || s.from != "a@remote.test" || strings.Join(s.rcpts, ",") != "alice@example.org,bob@example.org" {
				t.Errorf("helo %q from %q rcpts %q", s.helo, s.from, s.rcpts)
			}
			wantHeaders := []string{
				"Received: from client.test ([192.0.2.7])\n\tby mx.test (postkit); Mon, 1 Jan 2024 00:00:00 +0000",
				"From: a@remote.test", "To: alice@example.org", "Subject: first", "Subject: second",
			}
			if strings.Join(s.headers, "|") != strings.Join(wantHeaders, "|") {
				t.Errorf("headers %q, want %q", s.headers, wantHeaders)
			}
			if s.body != "line one\r\nline two\r\n" {
				t.Errorf("body %q", s.body)
			}
			// go-milter's server keeps the macros of the last packet.
			if s.macros["i"] != "CONN123.1" {
				t.Errorf("macros at the end of message %v, want i=CONN123.1", s.macros)
			}
		})
	}
}

// A body larger than one chunk arrives whole.
func TestCheckLargeBody(t *testing.T) {
	tm := &testMilter{seen: &seen{}}
	f := startFilter(t, tm, true, allActions, 0)
	msg := testMessage()
	body := strings.Repeat("0123456789abcdef\r\n", 10000) // 180000 octets: three chunks
	msg.Body = strings.NewReader(body)
	check(t, f, msg)
	tm.seen.mu.Lock()
	defer tm.seen.mu.Unlock()
	if tm.seen.body != body {
		t.Errorf("body of %d octets arrived as %d", len(body), len(tm.seen.body))
	}
}

func TestCheckVerdicts(t *testing.T) {
	tests := []struct {
		name     string
		tm       testMilter
		action   Action
		stage    string
		code     int
		enhanced string
		text     string
	}{
		{"reject at eom", testMilter{eomResp: gomilter.RespReject}, Reject, "eom", 0, "", ""},
		{"tempfail at eom", testMilter{eomResp: gomilter.RespTempFail}, TempFail, "eom", 0, "", ""},
		{"discard at eom", testMilter{eomResp: gomilter.RespDiscard}, Discard, "eom", 0, "", ""},
		{"reply code 5xx", testMilter{eomResp: gomilter.NewResponseStr('y', "554 5.7.1 Spam message rejected")},
			Reject, "eom", 554, "5.7.1", "Spam message rejected"},
		{"reply code 4xx", testMilter{eomResp: gomilter.NewResponseStr('y', "451 4.7.1 Try again later")},
			TempFail, "eom", 451, "4.7.1", "Try again later"},
		{"reject at connect", testMilter{at: "connect", resp: gomilter.RespReject}, Reject, "connect", 0, "", ""},
		{"tempfail at rcpt", testMilter{at: "rcpt", resp: gomilter.RespTempFail}, TempFail, "rcpt", 0, "", ""},
		{"reject at header", testMilter{at: "header", resp: gomilter.RespReject}, Reject, "header", 0, "", ""},
		{"discard in body", testMilter{at: "body", resp: gomilter.RespDiscard}, Discard, "body", 0, "", ""},
		{"accept at mail", testMilter{at: "mail", resp: gomilter.RespAccept}, Accept, "mail", 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := tt.tm
			tm.seen = &seen{}
			res := check(t, startFilter(t, &tm, true, allActions, 0), testMessage())
			if res.Action != tt.action || res.Stage != tt.stage || res.Code != tt.code || res.Enhanced != tt.enhanced || res.Text != tt.text {
				t.Errorf("Check = %v at %s, %d %q %q; want %v at %s, %d %q %q",
					res.Action, res.Stage, res.Code, res.Enhanced, res.Text, tt.action, tt.stage, tt.code, tt.enhanced, tt.text)
			}
		})
	}
}

func TestCheckModifications(t *testing.T) {
	tm := &testMilter{seen: &seen{}, eom: func(m *gomilter.Modifier) error {
		for _, err := range []error{
			m.AddHeader("X-Spam", "Yes"),
			m.ChangeHeader(2, "Subject", "[SPAM] second"),
			m.InsertHeader(0, "X-First", "top\nfolded"),
			m.ChangeHeader(1, "To", ""),
			m.AddHeader("Bad Name", "x"),
			m.Quarantine("looks like spam"),
			m.AddRecipient("mallory@remote.test"),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}}
	// go-milter's server answers with the options it is given, offered or
	// not: AddRecipient arrives although it was not offered.
	f := startFilter(t, tm, true, allActions|gomilter.OptAddRcpt, 0)
	msg := testMessage()
	res := check(t, f, msg)
	if res.Action != Accept || !res.Quarantine || res.QuarantineReason != "looks like spam" {
		t.Fatalf("Check = %+v, want accept with quarantine", res)
	}
	if len(res.Ignored) != 2 {
		t.Errorf("Ignored = %q, want the bad name and the recipient", res.Ignored)
	}
	got := string(FormatHeader(Apply(msg.Header, res.Changes)))
	want := "X-First: top\r\n\tfolded\r\n" +
		"Received: from client.test ([192.0.2.7])\r\n\tby mx.test (postkit); Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
		"From: a@remote.test\r\nSubject: first\r\nSubject: [SPAM] second\r\nX-Spam: Yes\r\n"
	if got != want {
		t.Errorf("changed header:\n%s\nwant:\n%s", got, want)
	}
}

// A filter that asks for the white space after the colon (version 6
// only) gets it and sends it.
func TestCheckLeadingSpace(t *testing.T) {
	tm := &testMilter{seen: &seen{}, eom: func(m *gomilter.Modifier) error {
		return m.AddHeader("X-Spam", "  Yes")
	}}
	f := startFilter(t, tm, true, allActions, gomilter.OptHeaderLeadingSpace)
	msg := testMessage()
	res := check(t, f, msg)
	tm.seen.mu.Lock()
	if tm.seen.headers[1] != "From:  a@remote.test" {
		t.Errorf("header sent as %q, want the value with its space", tm.seen.headers[1])
	}
	tm.seen.mu.Unlock()
	got := string(FormatHeader(Apply(nil, res.Changes)))
	if got != "X-Spam:  Yes\r\n" {
		t.Errorf("added field %q, want the filter's white space kept", got)
	}
}

// A filter that is not there, or does not answer in time, is an error
// (the caller's failure policy decides).
func TestCheckFailures(t *testing.T) {
	t.Run("not listening", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "gone.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		f, _ := ParseFilter("unix:" + sock)
		if res, err := f.Check(testMessage(), time.Now().Add(10*time.Second)); err == nil {
			t.Errorf("Check against a closed socket = %+v, want an error", res)
		}
	})
	t.Run("answer timeout", func(t *testing.T) {
		tm := &testMilter{seen: &seen{}, sleep: 3 * time.Second}
		f := startFilter(t, tm, true, allActions, 0)
		f.Timeout = 100 * time.Millisecond
		if res, err := f.Check(testMessage(), time.Now().Add(10*time.Second)); err == nil {
			t.Errorf("Check against a slow filter = %+v, want an error", res)
		}
	})
	t.Run("session deadline", func(t *testing.T) {
		tm := &testMilter{seen: &seen{}, sleep: 3 * time.Second}
		f := startFilter(t, tm, true, allActions, 0)
		start := time.Now()
		if res, err := f.Check(testMessage(), time.Now().Add(200*time.Millisecond)); err == nil {
			t.Errorf("Check past its deadline = %+v, want an error", res)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Check took %v with a deadline of 200ms", d)
		}
	})
	t.Run("silent server", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "silent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		f, _ := ParseFilter("unix:" + sock + " timeout=100ms")
		if res, err := f.Check(testMessage(), time.Now().Add(10*time.Second)); err == nil {
			t.Errorf("Check against a filter that never negotiates = %+v, want an error", res)
		}
	})
}
