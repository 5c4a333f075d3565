package address

import (
	"strings"
	"testing"
)

func TestQualifyPostmasterRCPT(t *testing.T) {
	for _, tc := range []struct {
		name              string
		verb, arg, domain string
		want              string // "" for no rewrite
	}{
		{"bare", "RCPT", "TO:<Postmaster>", "example.org", "RCPT TO:<postmaster@example.org>\r\n"},
		{"any case, blanks, parameters", "RCPT", "to: <postMASTER> NOTIFY=NEVER", "example.org", "RCPT TO:<postmaster@example.org> NOTIFY=NEVER\r\n"},
		{"domain normalised", "rcpt", "TO:<POSTMASTER>", "Host.Example.ORG", "RCPT TO:<postmaster@host.example.org>\r\n"},
		{"with a domain", "RCPT", "TO:<postmaster@example.org>", "example.org", ""},
		{"longer local part", "RCPT", "TO:<postmasterx>", "example.org", ""},
		{"without angle brackets", "RCPT", "TO:postmaster", "example.org", ""},
		{"without a closing bracket", "RCPT", "TO:<postmaster", "example.org", ""},
		{"not RCPT", "MAIL", "FROM:<postmaster>", "example.org", ""},
		{"bad domain", "RCPT", "TO:<Postmaster>", "a>b", ""},
		{"empty domain", "RCPT", "TO:<Postmaster>", "", ""},
	} {
		got, ok := QualifyPostmasterRCPT(tc.verb, tc.arg, tc.domain)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: QualifyPostmasterRCPT(%q, %q, %q) = %q, %v, want %q", tc.name, tc.verb, tc.arg, tc.domain, got, ok, tc.want)
		}
	}
}

// FuzzQualifyPostmasterRCPT checks that a rewritten RCPT line names
// postmaster@ the domain, that the argument's path was "<Postmaster>", and
// that the line keeps what followed the path and nothing else.
func FuzzQualifyPostmasterRCPT(f *testing.F) {
	for _, s := range []string{"TO:<Postmaster>", "to:  <POSTMASTER> NOTIFY=NEVER", "TO:<postmaster@x.y>", "TO:postmaster", "TO:<postmaster", "TO:\t<postmaster>\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		line, ok := QualifyPostmasterRCPT("RCPT", arg, "example.org")
		if !ok {
			return
		}
		rest, found := strings.CutPrefix(line, "RCPT TO:<postmaster@example.org>")
		rest, crlf := strings.CutSuffix(rest, "\r\n")
		if !found || !crlf || !strings.HasSuffix(arg, rest) {
			t.Fatalf("QualifyPostmasterRCPT(%q) = %q", arg, line)
		}
		path := strings.TrimLeft(strings.TrimSuffix(arg, rest)[len("TO:"):], " \t")
		if !IsBarePostmaster(path) {
			t.Fatalf("QualifyPostmasterRCPT(%q) = %q: path %q is not <Postmaster>", arg, line, path)
		}
	})
}
