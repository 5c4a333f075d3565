package sendmail

import (
	"bytes"
	"errors"
	"net/mail"
	"slices"
	"strings"
	"testing"
)

// FuzzReadMessage reads any input the way sendmail -t does (ReadMessage,
// parseMessage, headerRecipients) and checks: the message read is the
// input with CRLF made LF, cut at a lone dot line unless ignoreDots;
// parsing splits it into fields and body without losing a byte, and
// parsing what bytes() writes gives the same again; -t removes every Bcc
// field and nothing else, leaves the body as it was, and every recipient
// it finds is either a bare name or an address that parses back to itself.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("To: a@x.example, \"B\" <b@x.example>\r\nCc: undisclosed-recipients:;\r\nBcc: secret@x.example,\r\n\tsecret2@x.example\r\nSubject: s\r\n\r\nTo: body@x.example\r\n"), false)
	f.Add([]byte("To: root\nSubject: cron\n\nout\n.\nafter\n"), false)
	f.Add([]byte("To: root\nSubject: cron\n\nout\n.\nafter\n"), true)
	f.Add([]byte("BCC: hidden@x.example\nbcc: other@x.example\nTo: (comment) <c@x.example>\n\n"), false)
	f.Add([]byte("To: \"a b\"@x.example, \"q@r\"@x.example\n\n"), false)
	f.Add([]byte("To: Group: a@x.example, b@x.example;\nCc: , ,\n\n"), false)
	f.Add([]byte("To: =?utf-8?q?J=C3=B6rg?= <j@x.example>, δοκιμή@παράδειγμα.δοκιμή\n\n"), false)
	f.Add([]byte("not a header\nTo: a@x.example\n"), false)
	f.Add([]byte("To: a@x.example\n\tmore\nX: y"), false)
	f.Add([]byte("\n\nbody only\n"), false)
	f.Add([]byte("To: <a b>, x y\n\n"), false)
	f.Add([]byte("a\r\r\n.\r\n"), false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, ignoreDots bool) {
		all, err := ReadMessage(bytes.NewReader(data), true)
		if err != nil {
			t.Fatalf("ReadMessage(%q, true) = %v", data, err)
		}
		pieces := bytes.Split(data, []byte("\n"))
		for i := range pieces[:len(pieces)-1] {
			pieces[i] = bytes.TrimSuffix(pieces[i], []byte("\r"))
		}
		if want := bytes.Join(pieces, []byte("\n")); !bytes.Equal(all, want) {
			t.Fatalf("ReadMessage(%q, true) = %q, want %q", data, all, want)
		}
		msg, err := ReadMessage(bytes.NewReader(data), ignoreDots)
		if err != nil {
			t.Fatalf("ReadMessage(%q, %v) = %v", data, ignoreDots, err)
		}
		if !bytes.HasPrefix(all, msg) {
			t.Fatalf("ReadMessage(%q, %v) = %q, not a start of %q", data, ignoreDots, msg, all)
		}
		if rest := all[len(msg):]; len(rest) > 0 {
			// The dot line may lack its LF at the end of the input.
			line, _, _ := bytes.Cut(rest, []byte("\n"))
			if ignoreDots || string(bytes.TrimRight(line, "\r")) != "." || (len(msg) > 0 && msg[len(msg)-1] != '\n') {
				t.Fatalf("ReadMessage(%q, %v) = %q, stopped before %q", data, ignoreDots, msg, rest)
			}
		}

		m := parseMessage(msg)
		if !bytes.HasSuffix(msg, m.body) {
			t.Fatalf("parseMessage(%q).body = %q, not the end of the message", msg, m.body)
		}
		var header bytes.Buffer
		for _, fl := range m.fields {
			header.WriteString(fl.text + "\n")
		}
		h, head := header.String(), string(msg[:len(msg)-len(m.body)])
		if head != h && head != h+"\n" && !(len(m.body) == 0 && head+"\n" == h) {
			t.Fatalf("parseMessage(%q) = fields %q body %q: the header was %q", msg, h, m.body, head)
		}
		again := parseMessage(m.bytes())
		if !slices.Equal(again.fields, m.fields) || !bytes.Equal(again.body, m.body) {
			t.Fatalf("parseMessage(%q) = %q %q, but parsing its bytes() %q gives %q %q", msg, m.fields, m.body, m.bytes(), again.fields, again.body)
		}

		var wantKept []field
		for _, fl := range m.fields {
			if !strings.EqualFold(fl.name, "bcc") {
				wantKept = append(wantKept, fl)
			}
		}
		body := m.body
		rcpts, err := m.headerRecipients()
		if err != nil {
			if !errors.Is(err, ErrData) {
				t.Fatalf("headerRecipients(%q) = %v, not a data error", msg, err)
			}
			return
		}
		if !slices.Equal(m.fields, wantKept) || !bytes.Equal(m.body, body) {
			t.Fatalf("headerRecipients(%q) left fields %q body %q, want %q %q", msg, m.fields, m.body, wantKept, body)
		}
		out := parseMessage(m.bytes())
		for _, fl := range out.fields {
			if strings.EqualFold(fl.name, "bcc") {
				t.Fatalf("headerRecipients(%q) left %q", msg, fl.text)
			}
		}
		total := 0
		for _, r := range rcpts {
			total += len(r)
			if !strings.Contains(r, "@") {
				if r == "" || strings.ContainsAny(r, " \t\"<>,;:()") {
					t.Fatalf("headerRecipients(%q) gave the bare name %q", msg, r)
				}
				continue
			}
			if a, err := mail.ParseAddress("<" + r + ">"); err != nil || a.Address != r && (&mail.Address{Address: a.Address}).String() != "<"+r+">" {
				t.Fatalf("headerRecipients(%q) gave %q, which is not an address: %v", msg, r, err)
			}
		}
		if total > len(data) {
			t.Fatalf("headerRecipients(%q) gave %d bytes of recipients from %d", msg, total, len(data))
		}
	})
}

// TestRunQuotedLocalPart is the regression test for what FuzzReadMessage
// found: -t took recipients from net/mail with their local part unquoted,
// so a valid "a b"@x or "q@r"@x became a b@x or q@r@x, which qualify
// refuses, and the whole message was refused with exit 65.
func TestRunQuotedLocalPart(t *testing.T) {
	env := testEnv(t)
	in := "To: \"a b\"@far.example, Q <\"q@r\"@far.example>\nSubject: s\n\nbody\n"
	var stdout, stderr bytes.Buffer
	if code := Run([]string{"-t"}, strings.NewReader(in), &stdout, &stderr, env, Commands{}); code != 0 {
		t.Fatalf("Run(-t, %q) = %d, stderr %q; want 0", in, code, stderr.String())
	}
	e, _ := onlyEntry(t, env)
	var rcpts []string
	for _, r := range e.Recipients {
		rcpts = append(rcpts, r.Address)
	}
	if got, want := strings.Join(rcpts, " "), `"a b"@far.example "q@r"@far.example`; got != want {
		t.Errorf("recipients = %s, want %s", got, want)
	}
}
