package sendmail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/spool"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args string // space separated; _ stands for an empty argument
		want string // fmt of the interesting fields, or "error: ..."
	}{
		{"cron", "-t -i", "mode=0 t=true i=true from=false: rcpts=[]"},
		{"php", "-t -i -f www@example.org", "mode=0 t=true i=true from=true:www@example.org rcpts=[]"},
		{"mail(1)", "-oi -f alice bob@example.org", "mode=0 t=false i=true from=true:alice rcpts=[bob@example.org]"},
		{"clustered", "-ti", "mode=0 t=true i=true from=false: rcpts=[]"},
		{"attached from", "-falice@example.org -Fname x@y.example", "mode=0 t=false i=false from=true:alice@example.org rcpts=[x@y.example] name=name"},
		{"null sender", "-f <> x@y.example", "mode=0 t=false i=false from=true: rcpts=[x@y.example]"},
		{"empty sender", "-f _ x@y.example", "mode=0 t=false i=false from=true: rcpts=[x@y.example]"},
		{"ignored options", "-oem -odb -v -n -U -oQ/tmp -Am -L x -O a=b -B 8BITMIME -h 10 x@y.example", "mode=0 t=false i=false from=false: rcpts=[x@y.example]"},
		{"separate -o", "-o i x@y.example", "mode=0 t=false i=true from=false: rcpts=[x@y.example]"},
		{"double dash", "-i -- -weird@y.example", "mode=0 t=false i=true from=false: rcpts=[-weird@y.example]"},
		{"options end at first recipient", "a@x.example -t", "mode=0 t=false i=false from=false: rcpts=[a@x.example -t]"},
		{"comma list", "a@x.example,b@x.example, \"c,d\"@x.example", "mode=0 t=false i=false from=false: rcpts=[a@x.example b@x.example \"c,d\"@x.example]"},
		{"dsn", "-N success,delay -R hdrs -V id1 x@y.example", "mode=0 t=false i=false from=false: rcpts=[x@y.example] notify=SUCCESS,DELAY ret=HDRS envid=id1"},
		{"list", "-bp", "mode=1 t=false i=false from=false: rcpts=[]"},
		{"smtp", "-bs", "mode=2 t=false i=false from=false: rcpts=[]"},
		{"flush", "-q", "mode=3 t=false i=false from=false: rcpts=[]"},
		{"flush interval", "-q30m", "mode=3 t=false i=false from=false: rcpts=[]"},
		{"newaliases", "-bi", "mode=4 t=false i=false from=false: rcpts=[]"},
		{"no recipient", "-i", "error: no recipients"},
		{"unknown option", "-Z x@y.example", "error: invalid option -- 'Z'"},
		{"missing argument", "-t -f", "error: needs an argument"},
		{"daemon", "-bd", "error: sendq run"},
		{"verify", "-bv x@y.example", "error: not supported"},
		{"bad notify", "-N sometimes x@y.example", "error: -N"},
		{"never with others", "-N never,success x@y.example", "error: never goes alone"},
		{"bad ret", "-R most x@y.example", "error: -R"},
		{"bad envid", "-V _ x@y.example", "error: -V"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := strings.Fields(tt.args)
			for i, a := range args {
				if a == "_" {
					args[i] = ""
				}
			}
			inv, err := Parse(args)
			if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), want) {
					t.Errorf("Parse(%q) = %+v, %v; want a usage error with %q", args, inv, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v", args, err)
			}
			got := fmt.Sprintf("mode=%d t=%v i=%v from=%v:%s rcpts=%v", inv.Mode, inv.ReadRecipients, inv.IgnoreDots, inv.FromSet, inv.From, inv.Recipients)
			if inv.FullName != "" {
				got += " name=" + inv.FullName
			}
			if inv.Notify != "" {
				got += fmt.Sprintf(" notify=%s ret=%s envid=%s", inv.Notify, inv.Ret, inv.EnvID)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", args, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("-t\x00-i")
	f.Add("-oi\x00-f\x00a@b.example\x00c@d.example")
	f.Add("-ti\x00-Fname\x00--\x00x")
	f.Add("-N\x00success,delay\x00-R\x00full\x00-V\x00id\x00x@y")
	f.Add("-bs")
	f.Add("-q30m")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		inv, err := Parse(args)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Parse(%q) = %v, not a usage error", args, err)
			}
			return
		}
		if inv.Mode == ModeDeliver && !inv.ReadRecipients && len(inv.Recipients) == 0 {
			t.Errorf("Parse(%q) accepted a delivery without recipients", args)
		}
		for _, r := range inv.Recipients {
			if r == "" || r != strings.TrimSpace(r) {
				t.Errorf("Parse(%q) gave recipient %q", args, r)
			}
		}
	})
}

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		ignoreDots bool
		want       string
	}{
		{"crlf", "A: b\r\n\r\nbody\r\n", true, "A: b\n\nbody\n"},
		{"dot ends", "A: b\n\nbody\n.\nafter\n", false, "A: b\n\nbody\n"},
		{"dot crlf ends", "A: b\r\n\r\nbody\r\n.\r\nafter\r\n", false, "A: b\n\nbody\n"},
		{"dot kept with -i", "A: b\n\nbody\n.\nafter\n", true, "A: b\n\nbody\n.\nafter\n"},
		{"dot in text", "A: b\n\n.. x\n.x\n", false, "A: b\n\n.. x\n.x\n"},
		{"no final newline", "A: b\n\nbody", false, "A: b\n\nbody"},
	}
	for _, tt := range tests {
		got, err := ReadMessage(strings.NewReader(tt.in), tt.ignoreDots)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: ReadMessage(%q) = %q, %v; want %q", tt.name, tt.in, got, err, tt.want)
		}
	}
}

func TestHeaderRecipients(t *testing.T) {
	m := parseMessage([]byte("To: a@x.example, \"B\" <b@x.example>\nCc: undisclosed-recipients:;\nBcc: secret@x.example,\n\tsecret2@x.example\nSubject: s\n\nTo: body@x.example\n"))
	got, err := m.headerRecipients()
	if err != nil || strings.Join(got, " ") != "a@x.example b@x.example secret@x.example secret2@x.example" {
		t.Errorf("headerRecipients = %v, %v", got, err)
	}
	if out := string(m.bytes()); strings.Contains(out, "secret") || !strings.Contains(out, "Subject: s\n\nTo: body@x.example\n") {
		t.Errorf("message after -t = %q, want Bcc gone and the body intact", out)
	}
	bad := parseMessage([]byte("To: a b c\n\n"))
	if _, err := bad.headerRecipients(); !errors.Is(err, ErrData) {
		t.Errorf("headerRecipients of a broken To = %v, want ErrData", err)
	}
}

func TestParseMessageWithoutHeader(t *testing.T) {
	m := parseMessage([]byte("just a line of text\nmore\n"))
	m.complete("a@x.example", "", "h.example", time.Unix(0, 0))
	out := string(m.bytes())
	if !strings.HasPrefix(out, "Date: ") || !strings.HasSuffix(out, "\n\njust a line of text\nmore\n") {
		t.Errorf("completed message = %q, want new fields, an empty line, then the text", out)
	}
}

func TestComplete(t *testing.T) {
	when := time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)
	m := parseMessage([]byte("Subject: s\n\nb\n"))
	m.complete("alice@example.org", "Alice Ä", "mx.example.org", when)
	out := string(m.bytes())
	for _, want := range []string{"Date: Sun, 22 Nov 2026 07:00:00 +0000\n", "From: =?utf-8?q?Alice_=C3=84?= <alice@example.org>\n", "Message-ID: <20261122070000."} {
		if !strings.Contains(out, want) {
			t.Errorf("completed = %q, lacks %q", out, want)
		}
	}
	m = parseMessage([]byte("From: x@y.example\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <a@b>\n\nb\n"))
	before := string(m.bytes())
	m.complete("alice@example.org", "", "h", when)
	if string(m.bytes()) != before {
		t.Errorf("complete changed a complete message: %q", m.bytes())
	}
}

func testEnv(t *testing.T) Env {
	t.Helper()
	return Env{Root: control.Root(t.TempDir()), Hostname: "host.example.org", User: "cron", Now: func() time.Time { return time.Unix(1e9, 0) }}
}

func onlyEntry(t *testing.T, env Env) (*spool.Envelope, string) {
	t.Helper()
	sp, err := spool.Open(env.Root.SpoolDir())
	if err != nil {
		t.Fatal(err)
	}
	list, err := sp.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("spool holds %d entries (%v), want 1", len(list), err)
	}
	f, err := sp.OpenMessage(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	return list[0], string(data)
}

func TestRunSendsCronMail(t *testing.T) {
	env := testEnv(t)
	in := "To: root, Bob <bob@far.example>\r\nBcc: hidden@far.example\r\nSubject: cron output\r\n\r\nbody\r\n.\r\n"
	var stdout, stderr bytes.Buffer
	code := Run([]string{"-t", "-i", "-N", "failure"}, strings.NewReader(in), &stdout, &stderr, env, Commands{})
	if code != 0 || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Fatalf("Run = %d, stdout %q, stderr %q; want 0 and silence", code, stdout.String(), stderr.String())
	}
	e, msg := onlyEntry(t, env)
	var rcpts []string
	for _, r := range e.Recipients {
		rcpts = append(rcpts, r.Address+"/"+r.Notify)
	}
	if e.From != "cron@host.example.org" || strings.Join(rcpts, " ") != "root@host.example.org/FAILURE bob@far.example/FAILURE hidden@far.example/FAILURE" {
		t.Errorf("envelope from=%q rcpts=%v", e.From, rcpts)
	}
	for _, want := range []string{"To: root, Bob <bob@far.example>\n", "From: <cron@host.example.org>\n", "Date: ", "Message-ID: <", "\n\nbody\n.\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("queued message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hidden") || strings.Contains(msg, "\r") {
		t.Errorf("queued message has Bcc or CR:\n%q", msg)
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		in   string
		code int
	}{
		{"usage", []string{"-Z"}, "", 64},
		{"no header recipients", []string{"-t"}, "Subject: x\n\n", 65},
		{"bad recipient", []string{"a@@b"}, "Subject: x\n\n", 65},
		{"bad sender", []string{"-f", "a b@c", "x@y.example"}, "Subject: x\n\n", 65},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if code := Run(tt.args, strings.NewReader(tt.in), io.Discard, &stderr, testEnv(t), Commands{}); code != tt.code || stderr.Len() == 0 {
			t.Errorf("%s: Run(%q) = %d (stderr %q), want %d and a message", tt.name, tt.args, code, stderr.String(), tt.code)
		}
	}
	// The spool cannot be created: temporary failure.
	env := testEnv(t)
	os.WriteFile(env.Root.SpoolDir(), []byte("a file where the spool should be"), 0o600)
	if code := Run([]string{"x@y.example"}, strings.NewReader("Subject: x\n\n"), io.Discard, io.Discard, env, Commands{}); code != 75 {
		t.Errorf("Run with a broken spool = %d, want 75", code)
	}
	listed, flushed := false, false
	cmds := Commands{List: func(io.Writer) error { listed = true; return nil }, Flush: func() error { flushed = true; return nil }}
	Run([]string{"-bp"}, nil, io.Discard, io.Discard, env, cmds)
	Run([]string{"-q"}, nil, io.Discard, io.Discard, env, cmds)
	if !listed || !flushed {
		t.Errorf("-bp listed %v, -q flushed %v; want both", listed, flushed)
	}
}

func TestServeSMTP(t *testing.T) {
	env := testEnv(t)
	in := strings.Join([]string{
		"EHLO client", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@far.example> NOTIFY=SUCCESS", "RCPT TO:<bad@@x>", "RCPT TO:<root>",
		"DATA", "Subject: via -bs", "", "..dot", ".", "QUIT", ""}, "\r\n")
	var out bytes.Buffer
	if err := ServeSMTP(strings.NewReader(in), &out, env); err != nil {
		t.Fatalf("ServeSMTP = %v", err)
	}
	replies := out.String()
	for _, want := range []string{"220 host.example.org", "553 5.1.3", "501 5.5.2", "354 ", "250 2.0.0", "221 "} {
		if !strings.Contains(replies, want) {
			t.Errorf("replies lack %q:\n%s", want, replies)
		}
	}
	e, msg := onlyEntry(t, env)
	if e.From != "alice@example.org" || len(e.Recipients) != 1 || e.Recipients[0].Notify != "SUCCESS" {
		t.Errorf("envelope = %+v", e)
	}
	if !strings.HasPrefix(msg, "Subject: via -bs\nDate: ") || !strings.HasSuffix(msg, "\n\n.dot\n") {
		t.Errorf("queued message = %q", msg)
	}
}

// TestServeSMTPPostmaster checks RFC 5321 §4.1.1.3 under -bs: the bare
// "<Postmaster>", in any case and with parameters, is accepted and queued for
// the recipient that "sendmail postmaster" gets. A message line that reads
// like the command, in a DATA message or a BDAT chunk, stays as it is.
func TestServeSMTPPostmaster(t *testing.T) {
	cmdEnv := testEnv(t)
	if code := Run([]string{"postmaster"}, strings.NewReader("Subject: x\n\n"), io.Discard, io.Discard, cmdEnv, Commands{}); code != 0 {
		t.Fatalf("Run(postmaster) = %d, want 0", code)
	}
	cmdEntry, _ := onlyEntry(t, cmdEnv)
	want := cmdEntry.Recipients[0].Address
	if want != "postmaster@host.example.org" {
		t.Fatalf("sendmail postmaster queued for %q, want postmaster@host.example.org", want)
	}
	body := "Subject: x\r\n\r\nRCPT TO:<Postmaster>\r\n"
	for _, tc := range []struct {
		name    string
		rcpt    string
		message string // the commands and data that send the message
		codes   string // the replies to them
		notify  string
	}{
		{"bare", "RCPT TO:<Postmaster>", "DATA\r\n" + body + ".\r\n", "354 250", ""},
		{"lower case, parameters", "RCPT TO:<postmaster> NOTIFY=NEVER", "DATA\r\n" + body + ".\r\n", "354 250", "NEVER"},
		{"BDAT", "rcpt to: <POSTMASTER>", fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body), "250", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv(t)
			in := "EHLO client\r\nMAIL FROM:<alice@example.org>\r\n" + tc.rcpt + "\r\n" + tc.message + "QUIT\r\n"
			var out bytes.Buffer
			if err := ServeSMTP(strings.NewReader(in), &out, env); err != nil {
				t.Fatalf("ServeSMTP = %v", err)
			}
			var codes []string
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n") {
				if len(line) >= 4 && line[3] == ' ' {
					codes = append(codes, line[:3])
				}
			}
			// Greeting, EHLO, MAIL, RCPT, the message, QUIT.
			if got, want := strings.Join(codes, " "), "220 250 250 250 "+tc.codes+" 221"; got != want {
				t.Fatalf("%s: replies %s, want %s:\n%s", tc.rcpt, got, want, out.String())
			}
			e, msg := onlyEntry(t, env)
			if len(e.Recipients) != 1 || e.Recipients[0].Address != want || e.Recipients[0].Notify != tc.notify {
				t.Errorf("%s: queued for %+v, want %s notify %q", tc.rcpt, e.Recipients, want, tc.notify)
			}
			if !strings.HasSuffix(msg, "\n\nRCPT TO:<Postmaster>\n") {
				t.Errorf("%s: queued message = %q, want the body as sent", tc.rcpt, msg)
			}
		})
	}
}

// FuzzServeSMTP checks that a -bs session ends, without a panic, at the end
// of any input: stdioConn's line and chunk tracking never leaves go-smtp
// waiting for input that will not come.
func FuzzServeSMTP(f *testing.F) {
	body := "Subject: x\r\n\r\nRCPT TO:<Postmaster>\r\n"
	for _, s := range []string{
		"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster> NOTIFY=NEVER\r\nDATA\r\n" + body + ".\r\nQUIT\r\n",
		fmt.Sprintf("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nBDAT %d LAST\r\n%sQUIT\r\n", len(body), body),
		"EHLO c\r\nBDAT 10\r\nRCPT TO:<Postmaster>\r\n", "EHLO c\r\nDATA\r\nRCPT TO:<Postmaster>\n", "RCPT TO:<Postmaster>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if err := ServeSMTP(strings.NewReader(in), io.Discard, testEnv(t)); err != nil {
			t.Fatalf("ServeSMTP(%q) = %v", in, err)
		}
	})
}
