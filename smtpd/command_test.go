package smtpd

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		kind       commandKind
		verb, arg  string
	}{
		{"verb alone", "noop", cmdOK, "NOOP", ""},
		{"verb and argument", "MAIL FROM:<a@b.c>  SIZE=1 ", cmdOK, "MAIL", "FROM:<a@b.c>  SIZE=1"},
		{"mixed case", "eHlO client", cmdOK, "EHLO", "client"},
		{"empty", "", cmdEmpty, "", ""},
		{"short", "HI", cmdMalformed, "", ""},
		{"five letters", "HELLO", cmdMalformed, "", ""},
		{"no space", "NOOPx", cmdMalformed, "", ""},
		{"tab", "NOOP\tx", cmdMalformed, "", ""},
		{"bare CR inside", "NOOP\rRSET", cmdMalformed, "", ""},
		{"unknown", "XYZZ plugh", cmdUnknown, "XYZZ", "plugh"},
		{"starttls", "StartTLS", cmdStartTLS, "STARTTLS", ""},
		{"starttls with argument", "STARTTLS now", cmdStartTLS, "STARTTLS", "now"},
		{"starttls glued", "STARTTLSX", cmdStartTLS, "STARTTLS", "X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, verb, arg := parseCommand(tc.line)
			if kind != tc.kind || verb != tc.verb || arg != tc.arg {
				t.Errorf("parseCommand(%q) = %v, %q, %q, want %v, %q, %q", tc.line, kind, verb, arg, tc.kind, tc.verb, tc.arg)
			}
		})
	}
}

func TestTrimLine(t *testing.T) {
	for in, want := range map[string]string{
		"NOOP\r\n":   "NOOP",
		"NOOP\n":     "NOOP",
		"NOOP\r\r\n": "NOOP",
		"NOOP \r\n":  "NOOP ",
		"\r\n":       "",
	} {
		if got := trimLine(in); got != want {
			t.Errorf("trimLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLineLimit(t *testing.T) {
	for verb, want := range map[string]int{"NOOP": 512, "EHLO": 512, "": 512, "MAIL": 1202, "RCPT": 1012, "AUTH": 12288} {
		if got := lineLimit(verb); got != want {
			t.Errorf("lineLimit(%q) = %d, want %d", verb, got, want)
		}
	}
}

func TestPathArg(t *testing.T) {
	for _, tc := range []struct {
		arg, prefix, want string
		ok                bool
	}{
		{"FROM:<a@b.c> SIZE=10", "FROM:", "<a@b.c>", true},
		{"from: <a@b.c>", "FROM:", "<a@b.c>", true},
		{"FROM:<>", "FROM:", "<>", true},
		{"TO:<@x.y,@z.w:a@b.c> NOTIFY=NEVER", "TO:", "<@x.y,@z.w:a@b.c>", true},
		{`TO:<"a> b"@c.d> X=1`, "TO:", `<"a> b"@c.d>`, true},
		{`TO:<"a\"> b"@c.d>`, "TO:", `<"a\"> b"@c.d>`, true},
		{"TO:a@b.c NOTIFY=NEVER", "TO:", "a@b.c", true},
		{`TO:"a b"@c.d`, "TO:", `"a b"@c.d`, true},
		{"TO:<a@b.c", "TO:", "", false},
		{`TO:<"a@b.c>`, "TO:", "", false},
		{"TO:", "TO:", "", false},
		{"FROM:<a@b.c>", "TO:", "", false},
		{"T", "TO:", "", false},
	} {
		got, ok := pathArg(tc.arg, tc.prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pathArg(%q, %q) = %q, %v, want %q, %v", tc.arg, tc.prefix, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHeaderHas(t *testing.T) {
	long := make([]byte, maxHeaderScan)
	for i := range long {
		long[i] = 'x'
	}
	for _, tc := range []struct {
		name               string
		msg                string
		id, date, complete bool
	}{
		{"both", "Message-ID: <a@b>\r\nDate: now\r\n\r\nbody", true, true, true},
		{"case and space", "message-id : <a@b>\r\ndate:x\r\n\r\n", true, true, true},
		{"none", "Subject: x\r\n\r\nMessage-ID: in body\r\n", false, false, true},
		{"folded value", "Subject: x\r\n Date: not a field\r\n\r\n", false, false, true},
		{"header only", "Subject: x\r\nDate: y", false, true, true},
		{"empty", "", false, false, true},
		{"LF lines", "Date: y\n\n", false, true, true},
		{"too long to tell", string(long), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, date, complete := headerHas([]byte(tc.msg))
			if id != tc.id || date != tc.date || complete != tc.complete {
				t.Errorf("headerHas(%.40q) = %v, %v, %v, want %v, %v, %v", tc.msg, id, date, complete, tc.id, tc.date, tc.complete)
			}
		})
	}
}

func TestParseRelayClients(t *testing.T) {
	prefixes, bad := parseRelayClients([]string{"127.0.0.1", "192.0.2.0/24", "::1", "::ffff:10.0.0.0/104", "10.1.2.3/8", "bogus", "300.1.1.1"})
	want := []string{"127.0.0.1/32", "192.0.2.0/24", "::1/128", "10.0.0.0/8", "10.0.0.0/8"}
	if fmt.Sprint(prefixes) != fmt.Sprint(want) {
		t.Errorf("prefixes %v, want %v", prefixes, want)
	}
	if fmt.Sprint(bad) != "[bogus 300.1.1.1]" {
		t.Errorf("bad lines %q", bad)
	}
}

func TestSafeHelo(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.org": "mail.example.org",
		"[192.0.2.1]":      "[192.0.2.1]",
		"x (y); z":         "x??y???z",
		"bücher":           "b??cher",
		"":                 "unknown",
	} {
		if got := safeHelo(in); got != want {
			t.Errorf("safeHelo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAddressLiteral(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1": "[192.0.2.1]", "2001:db8::1": "[IPv6:2001:db8::1]"} {
		if got := addressLiteral(netip.MustParseAddr(in)); got != want {
			t.Errorf("addressLiteral(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginServer(t *testing.T) {
	var gotUser, gotPass string
	check := func(u, p string) error { gotUser, gotPass = u, p; return nil }
	l := &loginServer{check: check}
	steps := []struct {
		response, challenge string
		done                bool
	}{{"", "Username:", false}, {"me", "Password:", false}, {"pw", "", true}}
	for i, s := range steps {
		var resp []byte
		if i > 0 {
			resp = []byte(s.response)
		}
		ch, done, err := l.Next(resp)
		if string(ch) != s.challenge || done != s.done || err != nil {
			t.Fatalf("step %d: Next(%q) = %q, %v, %v", i, s.response, ch, done, err)
		}
	}
	if gotUser != "me" || gotPass != "pw" {
		t.Errorf("checked %q %q", gotUser, gotPass)
	}
	if _, _, err := l.Next([]byte("more")); err == nil {
		t.Error("Next after the end gave no error")
	}
	// The user name as initial response skips the first challenge.
	l = &loginServer{check: check}
	if ch, _, _ := l.Next([]byte("you")); string(ch) != "Password:" {
		t.Errorf("with initial response, challenge %q", ch)
	}
}

// nextDataState must end a DATA block only at CRLF.CRLF.
func TestDataEnd(t *testing.T) {
	for _, tc := range []struct {
		data string
		end  int // index after the end, or -1
	}{
		{".\r\n", 3},
		{"a\r\n.\r\nb", 6},
		{"a\n.\n", -1},
		{"a\r\n.\n", -1},
		{"a\n.\r\n", -1},
		{"a\r.\r\n", -1},
		{"a\r\n..\r\n", -1},
		{"a\r\n.\r\r\n.\r\n", -1},
		{"a\r\n\r\n.\r\n", 8},
	} {
		state, end := dataBeginLine, -1
		for i := 0; i < len(tc.data); i++ {
			if state = nextDataState(state, tc.data[i]); state == dataEnd {
				end = i + 1
				break
			}
		}
		if end != tc.end {
			t.Errorf("DATA %q ends at %d, want %d", tc.data, end, tc.end)
		}
	}
}
