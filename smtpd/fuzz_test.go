package smtpd

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/address"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"NOOP", "MAIL FROM:<a@b.c> SIZE=1", "STARTTLS", "BDAT 10 LAST", "HELLO", "", "\x00\x00\x00\x00 x", "ÉHLO x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		kind, verb, arg := parseCommand(line)
		switch kind {
		case cmdOK:
			if !knownVerbs[verb] || !strings.EqualFold(line[:4], verb) || len(line) > 4 && line[4] != ' ' {
				t.Fatalf("parseCommand(%q) = OK %q %q", line, verb, arg)
			}
		case cmdStartTLS:
			if !strings.HasPrefix(strings.ToUpper(line), "STARTTLS") {
				t.Fatalf("parseCommand(%q) = STARTTLS", line)
			}
		case cmdEmpty:
			if line != "" {
				t.Fatalf("parseCommand(%q) = empty", line)
			}
		}
		if !strings.Contains(line, arg) {
			t.Fatalf("parseCommand(%q): argument %q is not in the line", line, arg)
		}
	})
}

func FuzzPathArg(f *testing.F) {
	for _, s := range []string{"FROM:<a@b.c> SIZE=1", `TO:<"a>b"@c.d>`, "TO:<@x.y:a@b.c>", "TO:a@b.c X=1", "TO:<", `TO:"\`, "FROM:<>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, prefix := range []string{"FROM:", "TO:"} {
			p, ok := pathArg(arg, prefix)
			if !ok {
				continue
			}
			if p == "" || !strings.Contains(arg, p) {
				t.Fatalf("pathArg(%q, %q) = %q", arg, prefix, p)
			}
			a, err := address.ParsePath(p)
			if err != nil || a.IsZero() {
				continue
			}
			if b, err := address.Parse(a.String()); err != nil || b != a {
				t.Fatalf("path %q gives %q, which parses as %q, %v", p, a, b, err)
			}
		}
	})
}

func FuzzHeaderHas(f *testing.F) {
	for _, s := range []string{"Message-ID: <a@b>\r\nDate: x\r\n\r\n", "Subject: x\n\nDate: y\n", "", ":\r\n \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		id, date, complete := headerHas([]byte(msg))
		if !complete {
			return
		}
		id2, date2, complete2 := headerHas([]byte("Message-ID: <x@y>\r\nDate: z\r\n" + msg))
		if complete2 && (!id2 || !date2) {
			t.Fatalf("fields added in front of %q not found", msg)
		}
		_, _ = id, date
	})
}

// replyLine is what every line the server writes must look like.
var replyLine = regexp.MustCompile(`^[2-5]\d\d[ -][^\x00-\x1f\x7f]*\r\n$`)

// FuzzSession sends whatever a client might to a real server: it must
// answer only with well-formed reply lines and never panic.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.org>\r\nBDAT 3 LAST\r\nabcQUIT\r\n",
		"EHLO x\r\nAUTH PLAIN\r\n*\r\nSTARTTLS x\r\nNOOP\r\n",
		"HELO x\nMAIL FROM:<@a,@b:c@d.e> BODY=8BITMIME\nRCPT TO:<\"x@y\"@example.org>\nDATA\n\n.\n.\r\n",
		"\r\n\r\nBOGUS\r\nBDAT 99999999999\r\nRCPT\r\n",
	} {
		f.Add(s)
	}
	ts := startServer(f, withConfig(func(c *Config) { c.CommandTimeout = 2 * time.Second; c.DataTimeout = 2 * time.Second }))
	f.Fuzz(func(t *testing.T, input string) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			io.WriteString(c, input)
			c.(*net.TCPConn).CloseWrite()
		}()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err == io.EOF && l == "" {
				break
			}
			if err != nil {
				t.Fatalf("reading replies: %v (after %q)", err, l)
			}
			if !replyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q", l)
			}
		}
		if strings.Contains(ts.log.String(), "panic") {
			t.Fatalf("server panicked:\n%s", ts.log.String())
		}
	})
}
