package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/postkit/postkit/maildir"
)

func TestCapabilities(t *testing.T) {
	f := newFixture(t)
	c := f.login()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev2, imap.CapIMAP4rev1, imap.CapMove, imap.CapNamespace, imap.CapUIDPlus,
		imap.CapESearch, imap.CapSearchRes, imap.CapIdle, imap.CapListExtended, imap.CapListStatus, imap.CapStatusSize,
		imap.CapSpecialUse, imap.CapCreateSpecialUse, imap.CapChildren, imap.CapUnselect, imap.CapEnable, imap.CapBinary,
		"APPENDLIMIT=52428800"} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY after login lacks %s: %v", want, caps)
		}
	}
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' || ns.Other != nil || ns.Shared != nil {
		t.Errorf("NAMESPACE = %+v", ns)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// TestLoginFailures checks the growing delay and the BYE after the third
// failure, and that the session is logged.
func TestLoginFailures(t *testing.T) {
	f := newFixture(t)
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	for i, login := range []string{testUser, `"not an address"`, "bob@example.org"} {
		fmt.Fprintf(conn, "a%d LOGIN %s wrong\r\n", i, login)
		if i == 2 {
			break
		}
		line, _ := r.ReadString('\n')
		if want := fmt.Sprintf("a%d NO [AUTHENTICATIONFAILED] ", i); !strings.HasPrefix(line, want) {
			t.Errorf("failure %d: %q, want %q...", i+1, line, want)
		}
	}
	// The tagged NO and BYE, in either order, then the end.
	rest, err := io.ReadAll(r)
	if err != nil || !strings.Contains(string(rest), "* BYE ") {
		t.Errorf("after the third failure: %q, %v; want * BYE and the connection closed", rest, err)
	}
	want := []time.Duration{DefaultFailureDelay, 2 * DefaultFailureDelay, 4 * DefaultFailureDelay}
	if got := *f.sleeps; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("delays = %v, want %v", got, want)
	}
	waitLog(t, f, "result=too-many-login-failures")
	// One line per failure, starting with the client's IP for fail2ban.
	for _, want := range []string{
		"auth-failed client=127.0.0.1 user=" + testUser + " failures=1",
		`auth-failed client=127.0.0.1 user="not an address" failures=2`,
		"auth-failed client=127.0.0.1 user=bob@example.org failures=3",
	} {
		if l := waitLog(t, f, want); !strings.HasSuffix(l, want) {
			t.Errorf("log line %q, want it to end with %q", l, want)
		}
	}
}

func waitLog(t *testing.T, f *fixture, substr string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, l := range strings.Split(f.logs.String(), "\n") {
			if strings.Contains(l, substr) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", substr, f.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoginSuccessLogLine(t *testing.T) {
	f := newFixture(t)
	c := f.dial(nil)
	if err := c.Login("Alice@Example.ORG", testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN with a differently cased address: %v", err)
	}
	c.Logout().Wait()
	l := waitLog(t, f, "session client=")
	if !strings.Contains(l, "user=alice@example.org tls=false") || !strings.Contains(l, "result=ok") || !strings.Contains(l, "client=127.0.0.1:") {
		t.Errorf("session log line = %q", l)
	}
}

func TestAuthenticatePlain(t *testing.T) {
	f := newFixture(t)
	c := f.dial(nil)
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, "wrong")); err == nil {
		t.Fatal("AUTHENTICATE PLAIN with a wrong password succeeded")
	}
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after AUTHENTICATE: %v", err)
	}
}

// TestLoginNeedsTLS runs a server that does not allow plain-text logins
// from loopback: LOGIN is refused until STARTTLS.
func TestLoginNeedsTLS(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.AllowPlaintextLoopback = false })
	c := f.dial(nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("CAPABILITY before TLS = %v, want LOGINDISABLED and STARTTLS", caps)
	}
	err = c.Login(testUser, testPassword).Wait()
	if imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Fatalf("LOGIN without TLS = %v, want NO [PRIVACYREQUIRED]", err)
	}

	tc, err := imapclient.DialStartTLS(f.addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: f.certs, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	tc.Logout().Wait()
	waitLog(t, f, "user=alice@example.org tls=true")
}

// TestImplicitTLS serves a TLS listener, as inetd.Serve does with
// --tls-implicit.
func TestImplicitTLS(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.AllowPlaintextLoopback = false })
	ln, err := tls.Listen("tcp", "127.0.0.1:0", f.srv.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go f.srv.Serve(ln)
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: f.certs, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("LOGIN over implicit TLS: %v", err)
	}
}

// TestUnknownCommandBeforeLogin: go-imap hangs up on an unknown command
// before login (a cross-protocol attack guard); the server survives.
func TestUnknownCommandBeforeLogin(t *testing.T) {
	f := newFixture(t)
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	conn.Read(buf)
	conn.Write([]byte("GET / HTTP/1.0\r\n"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !strings.Contains(string(answer), "* BYE") {
		t.Errorf("answer to an HTTP request = %q, want BYE and the connection closed", answer)
	}
	f.login()
}

// TestBadInput: malformed commands get BAD and the session goes on; a
// command line over go-imap's 50 KiB limit ends the connection.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	conn, r := rawLogin(t, f)
	for _, tc := range []struct{ send, want string }{
		{"a SELECT INBOX", "a OK"},
		// go-imap answers some syntax errors with NO [SERVERBUG].
		{"b FETCH x (FLAGS)", "b NO"},
		{"c STORE 1 +FLAGS (\\Bogus)", "c BAD"},
		{"d FETCH 5 (FLAGS)", "d BAD"},
		{"e CREATE {2}\r\n..", "e NO [CANNOT]"},
		{"f NOOP", "f OK"},
	} {
		fmt.Fprintf(conn, "%s\r\n", tc.send)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", tc.send, err)
			}
			if strings.HasPrefix(line, "+ ") || strings.HasPrefix(line, "* ") {
				continue
			}
			if !strings.HasPrefix(line, tc.want) {
				t.Errorf("%q answered %q, want %s...", tc.send, line, tc.want)
			}
			break
		}
	}
	f.deliver("", "Subject: x\n\ny\n", maildir.DeliverOptions{})
	fmt.Fprintf(conn, "g NOOP %s\r\n", strings.Repeat("x", 60<<10))
	rest, _ := io.ReadAll(r)
	if strings.Contains(string(rest), "g OK") {
		t.Errorf("a 60 KiB command line was accepted: %q", rest)
	}
	f.login()
}

// TestAuthenticateFailures: three failed AUTHENTICATE PLAIN also end the
// connection (go-imap holds its writer lock while it authenticates).
func TestAuthenticateFailures(t *testing.T) {
	f := newFixture(t)
	c := f.dial(nil)
	for i := range 3 {
		if err := c.Authenticate(sasl.NewPlainClient("", testUser, "wrong")); err == nil {
			t.Fatalf("failure %d: AUTHENTICATE succeeded", i+1)
		}
	}
	select {
	case <-c.Closed():
	case <-time.After(20 * time.Second):
		t.Fatal("connection still open after 3 failed AUTHENTICATE")
	}
	waitLog(t, f, "result=too-many-login-failures")
}
