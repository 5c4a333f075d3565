package smtpd

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// Each smuggling sequence is sent inside one DATA block together with a
// whole second transaction. The block ends only at the final CRLF.CRLF,
// the message is refused as a whole with one 5xx, nothing is queued, and
// the session goes on.
func TestSmuggling(t *testing.T) {
	for _, seq := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r.\r\n", "\r\n.\r"} {
		t.Run(fmt.Sprintf("%q", seq), func(t *testing.T) {
			ts := startServer(t)
			c := ts.dial()
			c.mx("someone@remote.test", "alice@example.org")
			c.cmd("DATA", 354)
			c.send("Subject: first\r\n\r\nhello" + seq +
				"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")
			code, text := c.reply()
			if code != 554 || !strings.HasPrefix(text, "5.6.0 ") {
				t.Fatalf("end of data: %d %q, want 554 5.6.0", code, text)
			}
			// The next reply answers NOOP: nothing ran in between.
			c.cmd("NOOP", 250)
			if envs, _ := ts.queued(); len(envs) != 0 {
				t.Errorf("spool has %d entries, want none", len(envs))
			}
			ts.waitLog("reason=bare-line-ending")
		})
	}
}

// go-smtp drops the dot and CR of a line starting ".\r" followed by
// anything but LF; conn sees them and the message is refused all the same.
func TestBareCRAfterDotIsSeen(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org")
	if code, text := c.message("Subject: x\r\n\r\n.\rhidden\r\n"); code != 554 {
		t.Fatalf("end of data: %d %q, want 554", code, text)
	}
}

func TestBDAT(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org")
	c.send("BDAT 20\r\nSubject: chunked\r\n\r\nBDAT 7 LAST\r\nhello\r\n")
	c.expect(250)
	code, text := c.reply()
	if code != 250 || !queueIDReply.MatchString(text) {
		t.Fatalf("BDAT LAST: %d %q", code, text)
	}
	_, msgs := ts.queued()
	if !strings.HasSuffix(msgs[0], "\r\nSubject: chunked\r\n\r\nhello\r\n") {
		t.Errorf("stored %q", msgs[0])
	}
	// A chunk that looks like commands is data; a bare LF refuses it.
	c.cmd("MAIL FROM:<someone@remote.test>", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	chunk := "Subject: x\n\nQUIT\r\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	if code, text := c.reply(); code != 554 {
		t.Fatalf("BDAT with bare LF: %d %q, want 554", code, text)
	}
	c.cmd("NOOP", 250)
	c.cmd("BDAT x", 501)
	c.cmd("BDAT 1 NOTLAST", 501)
}

func TestCommandLineLimit(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	// 512 octets with CRLF pass.
	c.cmd("NOOP "+strings.Repeat("x", 512-len("NOOP \r\n")), 250)
	// One more is too long: one 500, and QUIT beyond octet 512 is not run.
	long := "NOOP " + strings.Repeat("x", 512-len("NOOP ")) + "QUIT"
	c.cmd(long, 500)
	c.cmd("NOOP", 250)
	// A line far over any limit: one 500 as well.
	c.cmd("NOOP "+strings.Repeat("y", 100000)+"\rQUIT", 500)
	c.cmd("NOOP", 250)
	// MAIL and RCPT get room for their parameters (RFC 1870, 3461).
	mail := "MAIL FROM:<someone@remote.test> RET=HDRS ENVID=" + strings.Repeat("e", 600) + " SIZE=1000"
	c.cmd(mail, 250)
	rcpt := "RCPT TO:<alice@example.org> NOTIFY=FAILURE ORCPT=rfc822;" + strings.Repeat("o", 700) + "@example.org"
	c.cmd(rcpt, 250)
	c.cmd("RSET", 250)
	c.cmd("MAIL FROM:<someone@remote.test> ENVID="+strings.Repeat("e", maxMailLine), 500)
	c.cmd("NOOP", 250)
}

func TestLongMessageLinesKept(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org")
	line := strings.Repeat("<td>cell</td>", 100000) // 1.3 MB, one line
	body := "Subject: html\r\n\r\n" + line + "\r\n"
	if code, text := c.message(body); code != 250 {
		t.Fatalf("%d %q", code, text)
	}
	_, msgs := ts.queued()
	if !strings.HasSuffix(msgs[0], "\r\n"+body) {
		t.Errorf("long line not stored whole (%d octets)", len(msgs[0]))
	}
}

func TestSizeLimit(t *testing.T) {
	ts := startServer(t, func(c *Config, ts *testServer) {
		writeEtc(t, ts.root, "size-limit", "1K\n")
	})
	c := ts.dial()
	if text := c.cmd("EHLO client.test", 250); !hasLine(text, "SIZE 1024") {
		t.Errorf("EHLO reply:\n%s", text)
	}
	c.cmd("MAIL FROM:<someone@remote.test> SIZE=1025", 552)
	c.cmd("MAIL FROM:<someone@remote.test> SIZE=1000", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	code, text := c.message("Subject: big\r\n\r\n" + strings.Repeat("0123456789\r\n", 100))
	if code != 552 || !strings.HasPrefix(text, "5.3.4 ") {
		t.Fatalf("over the limit: %d %q, want 552 5.3.4", code, text)
	}
	c.mx("someone@remote.test", "alice@example.org")
	if code, text := c.message("Subject: small\r\n\r\nok\r\n"); code != 250 {
		t.Fatalf("under the limit: %d %q", code, text)
	}
	if envs, _ := ts.queued(); len(envs) != 1 {
		t.Errorf("spool has %d entries, want 1", len(envs))
	}
}

func TestRecipientLimit(t *testing.T) {
	ts := startServer(t, func(c *Config, ts *testServer) {
		writeEtc(t, ts.root, "recipient-limit", "3\n")
	})
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org", "bob@example.org", "sales@example.org")
	if text := c.cmd("RCPT TO:<alice+x@example.org>", 452); !strings.HasPrefix(text, "4.5.3 ") {
		t.Errorf("fourth recipient: %q, want 452 4.5.3", text)
	}
}

func TestErrorLimit(t *testing.T) {
	ts := startServer(t)
	c := ts.dial()
	c.cmd("EHLO client.test", 250)
	for i := 1; i <= DefaultMaxErrors; i++ {
		switch i % 4 {
		case 0:
			c.cmd("XYZZ", 500) // unknown
		case 1:
			c.cmd("MAIL", 501) // malformed (go-smtp's parser)
		case 2:
			c.cmd("", 500)
		case 3:
			c.cmd("RCPT TO:<a@b.c>", 502) // out of sequence, answered by go-smtp
		}
	}
	c.expect(421)
	c.closed()
	ts.waitLog("result=too-many-errors")
}

func TestCommandTimeout(t *testing.T) {
	ts := startServer(t, withConfig(func(c *Config) { c.CommandTimeout = 50 * time.Millisecond }))
	c := ts.dial()
	if text := c.expect(421); !strings.HasPrefix(text, "4.4.2 ") {
		t.Errorf("timeout reply %q", text)
	}
	c.closed()
	ts.waitLog("result=timeout")
}

func TestDataTimeout(t *testing.T) {
	ts := startServer(t, withConfig(func(c *Config) { c.DataTimeout = 50 * time.Millisecond }))
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org")
	c.cmd("DATA", 354)
	c.send("Subject: slow\r\n")
	c.expect(421)
	c.closed()
	if envs, _ := ts.queued(); len(envs) != 0 {
		t.Errorf("spool has %d entries, want none", len(envs))
	}
}

func TestSpoolFailureIsTemporary(t *testing.T) {
	ts := startServer(t)
	// A file where the spool's queue directory should be: every write
	// fails, as it would on a broken disk, also for root.
	if err := os.MkdirAll(ts.root.SpoolDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ts.root.SpoolDir()+"/queue", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := ts.dial()
	c.mx("someone@remote.test", "alice@example.org")
	code, text := c.message(testMessage)
	if code != 451 || !strings.HasPrefix(text, "4.3.0 ") {
		t.Fatalf("end of data with a broken spool: %d %q, want 451 4.3.0", code, text)
	}
	c.cmd("NOOP", 250)
	ts.waitLog("storing the message")
}

func TestSessionLimits(t *testing.T) {
	ts := startServer(t, withConfig(func(c *Config) { c.MaxSessions = 3; c.MaxSessionsPerClient = 2 }))
	a, b := ts.dial(), ts.dial()
	third, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	cl := &client{t: t, conn: third, r: newBufReader(third)}
	if text := cl.expect(421); !strings.HasPrefix(text, "4.7.0 ") {
		t.Errorf("third session from one client: %q", text)
	}
	cl.closed()
	ts.waitLog("reason=too-many-sessions-from-client limit=2")
	a.cmd("QUIT", 221)
	ts.waitLog("session conn=")
	// The place is free again.
	ts.dial().cmd("NOOP", 250)
	b.cmd("NOOP", 250)
}

func TestSessionLimitOverall(t *testing.T) {
	ts := startServer(t, withConfig(func(c *Config) { c.MaxSessions = 1 }))
	ts.dial()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := &client{t: t, conn: c, r: newBufReader(c)}
	cl.expect(421)
	ts.waitLog("reason=too-many-sessions limit=1")
}

// A client that leaves in the middle of a BDAT transfer, before its first
// chunk brought a byte, must not make go-smtp's Data goroutine run after
// the session was closed (it would find no session and panic).
func TestBDATClientLeaves(t *testing.T) {
	ts := startServer(t)
	for range 50 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.org>\r\nBDAT 0\r\n")
		c.(*net.TCPConn).CloseWrite()
		io.ReadAll(c)
		c.Close()
	}
	ts.waitLog("session conn=")
	ts.srv.Close()
	if strings.Contains(ts.log.String(), "panic") {
		t.Fatalf("go-smtp panicked:\n%s", ts.log.String())
	}
}
