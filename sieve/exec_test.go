package sieve

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const testMessage = "Date: Wed, 2 Jan 2008 10:00:00 +0000\r\n" +
	"From: Friend <friend@example.net>\r\n" +
	"To: me@example.com\r\n" +
	"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= from the\r\n =?UTF-8?B?w7xiZXI=?= agent\r\n" +
	"X-Twice: first\r\n" +
	"X-Twice: second\r\n" +
	"\r\n" +
	"body text\r\n"

func runScript(t *testing.T, src string, env *testEnv) ([]string, error) {
	t.Helper()
	script, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%q) = %v", src, err)
	}
	msg, err := NewMessage(strings.NewReader(testMessage), int64(len(testMessage)))
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = newTestEnv()
	}
	res, err := script.Run(msg, Envelope{From: "friend@example.net", To: "me+box@example.com"}, env)
	var got []string
	for _, a := range res.Actions {
		got = append(got, a.String())
	}
	return got, err
}

func TestRun(t *testing.T) {
	many := func(format string, n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, format, i)
		}
		return b.String()
	}
	tests := []struct {
		name    string
		script  string
		want    []string
		wantErr string
	}{
		{"empty script keeps", ``, []string{"keep # implicit"}, ""},
		{"discard cancels the implicit keep", `discard;`, []string{"discard"}, ""},
		{"stop keeps what was done", "require \"fileinto\";\nfileinto \"a\"; if true { stop; } fileinto \"b\";",
			[]string{`fileinto "a"`}, ""},
		{"duplicates merge", "require [\"fileinto\", \"imap4flags\"];\nfileinto :flags \"\\\\Seen\" \"a\"; fileinto :flags \"x\" \"a\"; keep; fileinto \"INBOX\"; redirect \"A@example.org\"; redirect \"a@example.org\";",
			[]string{`fileinto :flags "\\Seen x" "a"`, `keep`, `redirect "A@example.org"`}, ""},
		{"keep then implicit keep merge", "keep;", []string{"keep"}, ""},
		{"redirect :copy and implicit keep", "require \"copy\";\nredirect :copy \"a@example.org\";",
			[]string{`redirect :copy "a@example.org"`, "keep # implicit"}, ""},
		{"too many redirects", many("redirect \"a%d@example.org\";\n", MaxRedirects+1), []string{"keep # implicit"},
			"sieve: 5:1: too many redirects (limit 4)"},
		{"repeated redirects count once", strings.Repeat("redirect \"same@example.org\";\n", MaxRedirects+2), []string{`redirect "same@example.org"`}, ""},
		{"too many actions", "require \"fileinto\";\n" + many("fileinto \"f%d\";\n", MaxActions+1), []string{"keep # implicit"},
			"sieve: 34:1: too many actions (limit 32)"},
		{"reject after fileinto", "require [\"fileinto\", \"reject\"];\nfileinto \"a\";\nreject \"no\";", []string{"keep # implicit"},
			"sieve: 3:1: reject cannot follow keep, fileinto or redirect"},
		{"fileinto after reject", "require [\"fileinto\", \"reject\"];\nreject \"no\";\nfileinto \"a\";", []string{"keep # implicit"},
			"sieve: 3:1: fileinto cannot follow reject"},
		{"discard after reject", "require \"ereject\";\nereject \"no\";\ndiscard;", []string{`ereject "no"`, "discard"}, ""},
		{"vacation twice", "require \"vacation\";\nvacation \"a\";\nvacation \"b\";", []string{"keep # implicit"},
			"sieve: 3:1: vacation may run once per message"},
		{"vacation after reject", "require [\"vacation\", \"reject\"];\nreject \"no\";\nvacation \"b\";", []string{"keep # implicit"},
			"sieve: 3:1: vacation cannot follow reject"},
		{"reject after vacation", "require [\"vacation\", \"reject\"];\nvacation \"b\";\nreject \"no\";", []string{"keep # implicit"},
			"sieve: 3:1: reject cannot follow vacation"},
		{"invalid address from a variable", "require \"variables\";\nset \"a\" \"no address\";\nredirect \"${a}\";",
			[]string{"keep # implicit"}, `sieve: 3:1: invalid redirect address "no address"`},
		{"empty mailbox from a variable", "require [\"variables\", \"fileinto\"];\nfileinto \"${unset}\";",
			[]string{"keep # implicit"}, `sieve: 2:1: fileinto "": empty mailbox name`},
		{"too many variables", "require \"variables\";\n" + many("set \"v%d\" \"x\";\n", MaxVariables+1), []string{"keep # implicit"},
			"sieve: too many variables (limit 256)"},
		{"long values are cut", "require [\"variables\", \"relational\"];\nset \"a\" \"" + strings.Repeat("ü", MaxVariableSize) + "\";\n" +
			"set :length \"n\" \"${a}\";\nif string :value \"eq\" \"${n}\" \"2048\" { discard; }", []string{"discard"}, ""},
		{"decoded header", `if header :is "subject" "Grüße from the über agent" { discard; }`, []string{"discard"}, ""},
		{"header :index", "require [\"index\", \"fileinto\"];\nif header :index 2 :is \"x-twice\" \"second\" { fileinto \"2\"; }\n" +
			"if header :index 2 :last :is \"x-twice\" \"first\" { fileinto \"1\"; }\nif header :index 3 :contains \"x-twice\" \"\" { fileinto \"3\"; }",
			[]string{`fileinto "2"`, `fileinto "1"`}, ""},
		{"envelope to with detail", "require [\"envelope\", \"subaddress\", \"fileinto\", \"variables\"];\n" +
			"if envelope :detail :matches \"to\" \"*\" { fileinto \"${1}\"; }\nif envelope :all :is \"from\" \"FRIEND@example.net\" { discard; }",
			[]string{`fileinto "box"`, "discard"}, ""},
		{"match variables survive a failed test", "require [\"variables\", \"fileinto\"];\n" +
			"if header :matches \"to\" \"*@*\" { }\nif header :matches \"to\" \"x*\" { }\nfileinto \"${1} ${2}\";",
			[]string{`fileinto "me example.com"`}, ""},
		{"mailboxexists of INBOX", "require [\"mailbox\", \"fileinto\"];\nif mailboxexists \"inbox\" { fileinto \"yes\"; }",
			[]string{`fileinto "yes"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runScript(t, tt.script, nil)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("Run(%q) error = %v, want %q", tt.script, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Run(%q) = %q, want %q", tt.script, got, tt.want)
			}
		})
	}
}

func TestRunEnvironmentError(t *testing.T) {
	env := newTestEnv()
	env.err = errors.New("disk on fire")
	got, err := runScript(t, "require [\"mailbox\", \"fileinto\"];\nif mailboxexists \"x\" { fileinto \"x\"; }", env)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Run() error = %v, want the environment's error", err)
	}
	if !reflect.DeepEqual(got, []string{"keep # implicit"}) {
		t.Errorf("Run() = %q, want the implicit keep", got)
	}
	got, err = runScript(t, "require \"vacation\";\nvacation \"away\";", env)
	if err == nil || err.Error() != "sieve: 2:1: vacation: disk on fire" || len(got) != 1 {
		t.Errorf("Run(vacation) = %q, %v, want the implicit keep and the error", got, err)
	}
}

// TestRunConcurrent runs one Script on one Message from many goroutines
// (run with -race to make it strict).
func TestRunConcurrent(t *testing.T) {
	script, err := Parse([]byte("require [\"body\", \"variables\", \"fileinto\"];\n" +
		"if body :text :matches \"*text*\" { fileinto \"${1}x\"; }"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := NewMessage(strings.NewReader(testMessage), int64(len(testMessage)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := script.Run(msg, Envelope{}, newTestEnv())
			if err == nil && len(res.Actions) == 1 {
				results[i] = res.Actions[0].String()
			}
		}()
	}
	wg.Wait()
	for i, got := range results {
		if want := `fileinto "body x"`; got != want {
			t.Errorf("run %d = %q, want %q", i, got, want)
		}
	}
}

func TestActionStrings(t *testing.T) {
	tests := []struct {
		a    Action
		want string
	}{
		{Keep{}, "keep"},
		{Keep{Flags: []string{`\Seen`}, Implicit: true}, `keep :flags "\\Seen" # implicit`},
		{FileInto{Mailbox: "a", Create: true, Copy: true, Flags: []string{"x", "y"}}, `fileinto :create :copy :flags "x y" "a"`},
		{Redirect{Address: "a@b"}, `redirect "a@b"`},
		{Redirect{Address: "a@b", Copy: true}, `redirect :copy "a@b"`},
		{Discard{}, "discard"},
		{Reject{Reason: "no"}, `reject "no"`},
		{Reject{Reason: "no", Extended: true}, `ereject "no"`},
		{Vacation{To: "a", From: "b", Subject: "s", Days: 7, Handle: "h", Body: "x", MIME: true},
			`vacation :to "a" :from "b" :subject "s" :days 7 :handle "h" :mime "x"`},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

func TestVacationReply(t *testing.T) {
	script, err := Parse([]byte("require \"vacation\";\nvacation :days 3 :handle \"h\" \"away\";"))
	if err != nil {
		t.Fatal(err)
	}
	data := "From: a@example.org\nTo: me@example.com\nSubject: hi\nMessage-ID: <m2@example.org>\n" +
		"References: <m0@example.org>\n <m1@example.org>\n\nx\n"
	msg, err := NewMessage(strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := script.Run(msg, Envelope{From: "a@example.org", To: "me@example.com"}, newTestEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := Vacation{To: "a@example.org", From: "me@example.com", Subject: "Auto: hi", Body: "away", Handle: "h", Days: 3,
		InReplyTo: "<m2@example.org>", References: "<m0@example.org> <m1@example.org> <m2@example.org>"}
	if len(res.Actions) != 2 || !reflect.DeepEqual(res.Actions[0], want) {
		t.Errorf("Run() = %#v, want %#v and the implicit keep", res.Actions, want)
	}
}

// TestMatchBudget runs a :matches whose cost is pattern length times text
// length above MaxMatchSteps: the run stops with an error and keeps.
func TestMatchBudget(t *testing.T) {
	script, err := Parse([]byte("require \"body\";\nif body :raw :matches \"*" + strings.Repeat("a", 100) + "b\" { discard; }"))
	if err != nil {
		t.Fatal(err)
	}
	data := "Subject: x\n\n" + strings.Repeat("a", 1<<20)
	msg, err := NewMessage(strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := script.Run(msg, Envelope{}, newTestEnv())
	if !errors.Is(err, errMatchBudget) || len(res.Actions) != 1 || res.Actions[0].String() != "keep # implicit" {
		t.Errorf("Run() = %v, %v, want the implicit keep and %v", res.Actions, err, errMatchBudget)
	}
}
