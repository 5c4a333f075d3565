package milter

import (
	"strings"
	"testing"
	"time"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		line             string
		network, address string
		connect, timeout time.Duration
		ok               bool
	}{
		{"unix:/run/rspamd/milter.sock", "unix", "/run/rspamd/milter.sock", DefaultConnectTimeout, DefaultTimeout, true},
		{"local:/var/run/clamav/clamav-milter.ctl", "unix", "/var/run/clamav/clamav-milter.ctl", DefaultConnectTimeout, DefaultTimeout, true},
		{"inet:127.0.0.1:11332", "tcp", "127.0.0.1:11332", DefaultConnectTimeout, DefaultTimeout, true},
		{"INET:localhost:8891 timeout=1m connect-timeout=2s", "tcp", "localhost:8891", 2 * time.Second, time.Minute, true},
		{"inet:[::1]:11332", "tcp", "[::1]:11332", DefaultConnectTimeout, DefaultTimeout, true},
		{"inet6:[2001:db8::1]:25", "tcp", "[2001:db8::1]:25", DefaultConnectTimeout, DefaultTimeout, true},
		{"unix:relative.sock", "", "", 0, 0, false},
		{"unix:/" + strings.Repeat("a", 107), "", "", 0, 0, false},
		{"inet:127.0.0.1", "", "", 0, 0, false},
		{"inet:127.0.0.1:0", "", "", 0, 0, false},
		{"inet:127.0.0.1:65536", "", "", 0, 0, false},
		{"inet::11332", "", "", 0, 0, false},
		{"inet:bad_host:1", "", "", 0, 0, false},
		{"tcp:127.0.0.1:1", "", "", 0, 0, false},
		{"/run/milter.sock", "", "", 0, 0, false},
		{"unix:/x timeout=0s", "", "", 0, 0, false},
		{"unix:/x timeout=11m", "", "", 0, 0, false},
		{"unix:/x timeout", "", "", 0, 0, false},
		{"unix:/x retries=3", "", "", 0, 0, false},
		{"", "", "", 0, 0, false},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.line)
		if (err == nil) != tt.ok {
			t.Errorf("ParseFilter(%q) error %v, want ok %v", tt.line, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		if f.Network != tt.network || f.Address != tt.address || f.ConnectTimeout != tt.connect || f.Timeout != tt.timeout {
			t.Errorf("ParseFilter(%q) = %+v, want %s %s connect %v timeout %v", tt.line, f, tt.network, tt.address, tt.connect, tt.timeout)
		}
		if f.Spec != strings.Fields(tt.line)[0] {
			t.Errorf("ParseFilter(%q).Spec = %q", tt.line, f.Spec)
		}
	}
}

func mustChange(t *testing.T, kind ChangeKind, index int, name, value string) Change {
	t.Helper()
	c, ok := newChange(kind, index, name, value, false)
	if !ok {
		t.Fatalf("newChange(%v, %d, %q, %q) refused", kind, index, name, value)
	}
	return c
}

func TestApply(t *testing.T) {
	header := "A: 1\r\nB: 2\r\nA: 3\r\nnot a field\r\nsubject : obsolete space\r\n"
	tests := []struct {
		name    string
		changes []Change
		want    string
	}{
		{"add", []Change{mustChange(t, AddField, 0, "X-Spam", "Yes")},
			header + "X-Spam: Yes\r\n"},
		{"insert at top", []Change{mustChange(t, InsertField, 0, "X-Top", "t")},
			"X-Top: t\r\n" + header},
		{"insert in the middle", []Change{mustChange(t, InsertField, 2, "X-Mid", "m")},
			"A: 1\r\nB: 2\r\nX-Mid: m\r\nA: 3\r\nnot a field\r\nsubject : obsolete space\r\n"},
		{"insert past the end", []Change{mustChange(t, InsertField, 99, "X-End", "e")},
			header + "X-End: e\r\n"},
		{"change the second A", []Change{mustChange(t, ChangeField, 2, "a", "three")},
			"A: 1\r\nB: 2\r\na: three\r\nnot a field\r\nsubject : obsolete space\r\n"},
		{"change index 0 is the first", []Change{mustChange(t, ChangeField, 0, "A", "one")},
			"A: one\r\nB: 2\r\nA: 3\r\nnot a field\r\nsubject : obsolete space\r\n"},
		{"change a field with obsolete syntax", []Change{mustChange(t, ChangeField, 1, "Subject", "new")},
			"A: 1\r\nB: 2\r\nA: 3\r\nnot a field\r\nSubject: new\r\n"},
		{"delete", []Change{mustChange(t, ChangeField, 1, "B", "")},
			"A: 1\r\nA: 3\r\nnot a field\r\nsubject : obsolete space\r\n"},
		{"change past the last adds", []Change{mustChange(t, ChangeField, 3, "A", "5")},
			header + "A: 5\r\n"},
		{"delete what is not there", []Change{mustChange(t, ChangeField, 3, "A", "")},
			header},
		{"in order", []Change{
			mustChange(t, ChangeField, 1, "A", ""),
			mustChange(t, ChangeField, 1, "A", "x"),
		}, "B: 2\r\nA: x\r\nnot a field\r\nsubject : obsolete space\r\n"},
	}
	for _, tt := range tests {
		fields := ParseHeader([]byte(header))
		before := string(FormatHeader(fields))
		got := string(FormatHeader(Apply(fields, tt.changes)))
		if got != tt.want {
			t.Errorf("%s: Apply = %q, want %q", tt.name, got, tt.want)
		}
		if after := string(FormatHeader(fields)); after != before {
			t.Errorf("%s: Apply changed its input to %q", tt.name, after)
		}
	}
}

func TestNewChange(t *testing.T) {
	tests := []struct {
		name, value string
		leadSpace   bool
		raw         string
		ok          bool
	}{
		{"X-Spam", "Yes", false, "X-Spam: Yes\r\n", true},
		{"X-Spam", " Yes", false, "X-Spam: Yes\r\n", true},
		{"X-Spam", "  Yes", true, "X-Spam:  Yes\r\n", true},
		{"X-Spam", "Yes", true, "X-Spam:Yes\r\n", true},
		{"X-Report", "a\nb\n\tc", false, "X-Report: a\r\n\tb\r\n\tc\r\n", true},
		{"X-Report", "a\r\nb", false, "X-Report: a\r\n\tb\r\n", true},
		{"X-Report", "a\n\nInjected: yes\n", false, "X-Report: a\r\n\tInjected: yes\r\n", true},
		{"X-Report", "a\rb\x00c", false, "X-Report: abc\r\n", true},
		{"X-Empty", "", false, "X-Empty: \r\n", true},
		{"Bad Name", "x", false, "", false},
		{"Bad:Name", "x", false, "", false},
		{"", "x", false, "", false},
		{"Nön", "x", false, "", false},
		{strings.Repeat("N", 201), "x", false, "", false},
	}
	for _, tt := range tests {
		c, ok := newChange(AddField, 0, tt.name, tt.value, tt.leadSpace)
		if ok != tt.ok || ok && c.Raw != tt.raw {
			t.Errorf("newChange(%q, %q, %v) = %q, %v; want %q, %v", tt.name, tt.value, tt.leadSpace, c.Raw, ok, tt.raw, tt.ok)
		}
	}
	// A deletion has no field to store.
	if c, ok := newChange(ChangeField, 1, "X-Spam", "", false); !ok || c.Raw != "" {
		t.Errorf("newChange(delete) = %+v, %v", c, ok)
	}
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		code           int
		text           string
		enhanced, want string
		ok             bool
	}{
		{554, "5.7.1 Spam message rejected", "5.7.1", "Spam message rejected", true},
		{451, "4.7.1 Try again", "4.7.1", "Try again", true},
		{550, "Go away", "", "Go away", true},
		{550, "4.7.1 wrong class", "", "4.7.1 wrong class", true},
		{550, "5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third", "5.7.1", "first second third", true},
		{550, "5.7.1 bell\a and\x7f del", "5.7.1", "bell and del", true},
		{550, "5.7.1234 long detail", "", "5.7.1234 long detail", true},
		{250, "2.0.0 OK", "", "", false},
		{600, "x", "", "", false},
		{0, "", "", "", false},
	}
	for _, tt := range tests {
		code, enh, text, ok := ParseReply(tt.code, tt.text)
		if ok != tt.ok || ok && (code != tt.code || enh != tt.enhanced || text != tt.want) {
			t.Errorf("ParseReply(%d, %q) = %d, %q, %q, %v; want %d, %q, %q, %v",
				tt.code, tt.text, code, enh, text, ok, tt.code, tt.enhanced, tt.want, tt.ok)
		}
	}
	if _, _, text, _ := ParseReply(550, strings.Repeat("x", 1000)); len(text) != maxReplyText {
		t.Errorf("a 1000-octet reply text kept %d octets, want %d", len(text), maxReplyText)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"unix:/run/rspamd/milter.sock", "inet:127.0.0.1:11332 timeout=60s connect-timeout=5s",
		"inet:[::1]:1", "local:/x", "inet:host", "unix:x", "inet6:[::1]:99999", "unix:/x timeout=-1s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		flt, err := ParseFilter(line)
		if err != nil {
			return
		}
		switch flt.Network {
		case "unix":
			if !strings.HasPrefix(flt.Address, "/") || len(flt.Address) > 107 {
				t.Errorf("ParseFilter(%q) = unix socket %q", line, flt.Address)
			}
		case "tcp":
		default:
			t.Errorf("ParseFilter(%q) = network %q", line, flt.Network)
		}
		if flt.Timeout <= 0 || flt.Timeout > maxTimeout || flt.ConnectTimeout <= 0 || flt.ConnectTimeout > maxTimeout {
			t.Errorf("ParseFilter(%q) = timeouts %v, %v", line, flt.ConnectTimeout, flt.Timeout)
		}
	})
}

// FuzzApply feeds arbitrary header sections and filter changes: the
// result is always a header section that parses back into the same
// fields, with no empty line that would end it early.
func FuzzApply(f *testing.F) {
	f.Add([]byte("A: 1\r\nB: 2\r\n"), uint8(0), 0, "X-Spam", "Yes")
	f.Add([]byte("Subject: x\r\n\tfolded\r\n"), uint8(2), 1, "Subject", "")
	f.Add([]byte("junk\r\n"), uint8(1), 5, "X", "a\n\nB: c")
	f.Fuzz(func(t *testing.T, header []byte, kind uint8, index int, name, value string) {
		fields := ParseHeader(header)
		c, ok := newChange(ChangeKind(kind%3), index, name, value, kind&4 != 0)
		if !ok {
			return
		}
		out := FormatHeader(Apply(fields, []Change{c}))
		if c.Raw == "" {
			return
		}
		added := ParseHeader([]byte(c.Raw))
		if len(added) != 1 || !strings.EqualFold(added[0].Name, name) || added[0].Raw != c.Raw {
			t.Fatalf("change %q parses as %q", c.Raw, added)
		}
		if !strings.Contains(string(out), c.Raw) {
			t.Fatalf("Apply lost the field %q:\n%q", c.Raw, out)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add(554, "5.7.1 Spam")
	f.Add(451, "4.7.1 a\r\n451-4.7.1 b")
	f.Fuzz(func(t *testing.T, code int, text string) {
		c, enh, out, ok := ParseReply(code, text)
		if !ok {
			return
		}
		if c < 400 || c > 599 || len(out) > maxReplyText {
			t.Fatalf("ParseReply(%d, %q) = %d, %q", code, text, c, out)
		}
		if enh != "" && enh[0] != byte('0'+c/100) {
			t.Fatalf("ParseReply(%d, %q): enhanced code %q of another class", code, text, enh)
		}
		for i := 0; i < len(out); i++ {
			if out[i] < ' ' || out[i] >= 0x7f {
				t.Fatalf("ParseReply(%d, %q) = text %q with %q", code, text, out, out[i])
			}
		}
	})
}
