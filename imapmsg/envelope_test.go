package imapmsg

import (
	"testing"
	"time"
)

func TestParseAddressList(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"alice@example.org", `((NIL NIL "alice" "example.org"))`},
		{"Alice <alice@example.org>", `(("Alice" NIL "alice" "example.org"))`},
		{`"Doe, John" <john@example.org>, bob@example.net`, `(("Doe, John" NIL "john" "example.org")(NIL NIL "bob" "example.net"))`},
		{`"quoted \"name\"" <q@x.org>`, `(("quoted \"name\"" NIL "q" "x.org"))`},
		{"bob@example.net (Bob Smith)", `(("Bob Smith" NIL "bob" "example.net"))`},
		{"=?UTF-8?Q?J=C3=B6rg?= <j@x.de>", `(("=?UTF-8?Q?J=C3=B6rg?=" NIL "j" "x.de"))`},
		{"John  Q.   Public <jqp@x.org>", `(("John Q. Public" NIL "jqp" "x.org"))`},
		{"<@route1,@route2:user@x.org>", `((NIL NIL "user" "x.org"))`},
		{"undisclosed-recipients:;", `((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`},
		{"team: a@x.org, b@x.org; c@x.org", `((NIL NIL "team" NIL)(NIL NIL "a" "x.org")(NIL NIL "b" "x.org")(NIL NIL NIL NIL)(NIL NIL "c" "x.org"))`},
		{"group: a@x.org", `((NIL NIL "group" NIL)(NIL NIL "a" "x.org")(NIL NIL NIL NIL))`},
		{"alice", `((NIL NIL "alice" "MISSING_DOMAIN"))`},
		{"@example.org", `((NIL NIL "MISSING_MAILBOX" "example.org"))`},
		{"<>", `((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))`},
		{"Alice <alice@example.org", `(("Alice" NIL "alice" "example.org"))`},
		{`"unterminated <a@b.c>`, `((NIL NIL "unterminated <a@b.c>" "MISSING_DOMAIN"))`},
		{"a@[192.0.2.1]", `((NIL NIL "a" "[192.0.2.1]"))`},
		{`"first last"@example.org`, `((NIL NIL "first last" "example.org"))`},
		{",,, ,", `NIL`},
		{"", `NIL`},
		{"(just a comment)", `NIL`},
		{"a@b.c junk <d@e.f>", `((NIL NIL "a" "b.c"))`},
		{"a@b@c", `((NIL NIL "a" "b"))`},
		{"(Bob Smith) bob@example.net", `(("Bob Smith" NIL "bob" "example.net"))`},
		// A bare CR ends no line: the rest of a CR-only message is junk
		// after the address.
		{"cr@example.org\rSubject: CR only\rline", `((NIL NIL "cr" "example.org"))`},
	}
	for _, tt := range tests {
		if got := addrs(parseAddressList(tt.in)); got != tt.want {
			t.Errorf("parseAddressList(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name, hdr, want string
	}{
		{"last occurrence wins", "Subject: one\nSubject: two\nFrom: a@x.org\nFrom: b@x.org\n\n",
			`(NIL "two" ((NIL NIL "b" "x.org")) ((NIL NIL "b" "x.org")) ((NIL NIL "b" "x.org")) NIL NIL NIL NIL NIL)`},
		{"folded subject", "Subject: a long\n  folded subject\n\n",
			`(NIL "a long  folded subject" NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"message ids", "Message-ID: <a@x> (comment)\nIn-Reply-To: <b@x> <c@x>\n\n",
			`(NIL NIL NIL NIL NIL NIL NIL NIL "<b@x> <c@x>" "<a@x>")`},
		{"message id without brackets", "Message-ID: a@x\n\n", `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"sender and reply-to", "From: a@x.org\nSender: s@x.org\nReply-To: r@x.org\n\n",
			`(NIL NIL ((NIL NIL "a" "x.org")) ((NIL NIL "s" "x.org")) ((NIL NIL "r" "x.org")) NIL NIL NIL NIL NIL)`},
		{"bad date", "Date: yesterday\n\n", `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"date with comment", "Date: Fri, 6 Nov 2026 14:00:00 +0100 (CET)\n\n",
			`("Fri, 06 Nov 2026 14:00:00 +0100" NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"date with glued junk", "Date: Fri, 6 Nov 2026 14:00:00 +0100 CET (Central European)\n\n",
			`("Fri, 06 Nov 2026 14:00:00 +0100" NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"no header", "", `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"NUL dropped", "Subject: a\x00b\n\n", `(NIL "ab" NIL NIL NIL NIL NIL NIL NIL NIL)`},
	}
	for _, tt := range tests {
		if got := formatEnv(ParseEnvelope([]byte(tt.hdr))); got != tt.want {
			t.Errorf("%s: ParseEnvelope(%q) =\n%s\nwant\n%s", tt.name, tt.hdr, got, tt.want)
		}
	}
	env := ParseEnvelope([]byte("Date: Mon, 02 Nov 2026 10:15:00 +0100\n\n"))
	if want := time.Date(2026, 11, 2, 9, 15, 0, 0, time.UTC); !env.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", env.Date, want)
	}
}
