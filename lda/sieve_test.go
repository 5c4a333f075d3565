package lda

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/sieve"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

// sieveFixture is a root with the user alice@example.org, her script and
// a log of what filter said.
type sieveFixture struct {
	t      *testing.T
	root   string
	target resolve.Target
	mu     sync.Mutex // guards log: deliveries may run concurrently
	log    []string
}

func newSieveFixture(t *testing.T, script string) *sieveFixture {
	t.Helper()
	root := t.TempDir()
	f := &sieveFixture{t: t, root: root, target: resolve.Target{
		Kind:    resolve.Local,
		Address: address.Address{Local: "alice", Domain: "example.org"},
		Maildir: filepath.Join(root, "mail", "example.org", "alice"),
	}}
	if err := maildir.Create(f.target.Maildir); err != nil {
		t.Fatal(err)
	}
	if script != "" {
		f.script(script)
	}
	old := sieveLogf
	sieveLogf = func(format string, args ...any) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.log = append(f.log, fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() { sieveLogf = old })
	return f
}

// script installs src as alice's active script.
func (f *sieveFixture) script(src string) {
	f.t.Helper()
	if err := sieve.SaveScript(f.target.Maildir, "main", []byte(src)); err != nil {
		f.t.Fatal(err)
	}
	if err := sieve.Activate(f.target.Maildir, "main"); err != nil {
		f.t.Fatal(err)
	}
}

func (f *sieveFixture) before(src string) {
	f.t.Helper()
	path := filepath.Join(f.root, "etc", BeforeScript)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *sieveFixture) deliver(msg, sender string) (maildir.Delivered, error) {
	return f.deliverAt(msg, sender, time.Now())
}

func (f *sieveFixture) deliverAt(msg, sender string, now time.Time) (maildir.Delivered, error) {
	f.t.Helper()
	m, err := ReadMessage(strings.NewReader(msg))
	if err != nil {
		f.t.Fatal(err)
	}
	opt := Options{Hostname: "mx.example.org"}
	if sender != "" {
		if opt.Sender, err = address.Parse(sender); err != nil {
			f.t.Fatal(err)
		}
	}
	user := f.target.Address.String()
	return filterAt(f.target, maildir.Dir(f.target.Maildir), user, m, opt, now)
}

// files lists the message files of a folder ("" for INBOX), new/ and cur/,
// relative to the folder.
func (f *sieveFixture) files(folder string) []string {
	f.t.Helper()
	dir := f.target.Maildir
	if folder != "" {
		dir = filepath.Join(dir, "."+folder)
	}
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

// queued returns the spool's entries and their messages.
func (f *sieveFixture) queued() ([]*spool.Envelope, []string) {
	f.t.Helper()
	sp, err := spool.Open(filepath.Join(f.root, "spool"))
	if err != nil {
		f.t.Fatal(err)
	}
	envs, err := sp.List()
	if err != nil {
		f.t.Fatal(err)
	}
	var msgs []string
	for _, e := range envs {
		r, err := sp.OpenMessage(e.ID)
		if err != nil {
			f.t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		msgs = append(msgs, string(b))
	}
	return envs, msgs
}

func (f *sieveFixture) logged(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.log {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

const sieveMsg = "From: Bob <bob@remote.example>\nTo: alice@example.org\nSubject: hello\nMessage-ID: <m1@remote.example>\n\nbody\n"

func TestSieveNoScriptStoresInDefaultMailbox(t *testing.T) {
	f := newSieveFixture(t, "")
	d, err := f.deliver(sieveMsg, "bob@remote.example")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(d.Path)
	want := "Return-Path: <bob@remote.example>\nDelivered-To: alice@example.org\n" + sieveMsg
	if string(got) != want || len(f.files("")) != 1 {
		t.Errorf("stored %q (files %v), want %q alone", got, f.files(""), want)
	}
}

func TestSieveFileinto(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string
		folders []string // made before delivery
		want    map[string]int
		log     string
	}{
		{"existing folder", `require "fileinto"; fileinto "Lists";`, []string{"Lists"}, map[string]int{"Lists": 1}, ""},
		{"missing folder keeps", `require "fileinto"; fileinto "Lists";`, nil, map[string]int{"": 1}, "status=missing"},
		{"create", `require ["fileinto", "mailbox"]; fileinto :create "Lists";`, nil, map[string]int{"Lists": 1}, ""},
		{"hierarchy with slash", `require ["fileinto", "mailbox"]; fileinto :create "lists/go";`, nil, map[string]int{"lists.go": 1}, ""},
		{"dovecot dots", `require ["fileinto", "mailbox"]; fileinto :create "lists.go";`, nil, map[string]int{"lists.go": 1}, ""},
		{"courier prefix", `require ["fileinto", "mailbox"]; fileinto :create "INBOX.lists.go";`, nil, map[string]int{"lists.go": 1}, ""},
		{"prefix with slash", `require "fileinto"; fileinto "INBOX/Work";`, []string{"Work"}, map[string]int{"Work": 1}, ""},
		{"literal INBOX folder wins", `require "fileinto"; fileinto "INBOX/Work";`, []string{"Work", "INBOX/Work"}, map[string]int{"INBOX.Work": 1}, ""},
		{"inbox any case", `require "fileinto"; fileinto "inbox";`, nil, map[string]int{"": 1}, ""},
		{"invalid name keeps", `require ["fileinto", "mailbox"]; fileinto :create "a..b";`, nil, map[string]int{"": 1}, "status=invalid"},
		{"copy and keep", `require ["fileinto", "copy"]; fileinto :copy "Lists";`, []string{"Lists"}, map[string]int{"": 1, "Lists": 1}, ""},
		{"two fileintos, one copy each", `require "fileinto"; fileinto "Lists"; fileinto "Lists"; fileinto "Other";`,
			[]string{"Lists", "Other"}, map[string]int{"Lists": 1, "Other": 1}, ""},
		{"by header", `require "fileinto"; if header :contains "subject" "hello" { fileinto "Lists"; }`, []string{"Lists"}, map[string]int{"Lists": 1}, ""},
		{"by envelope", `require ["fileinto", "envelope"]; if envelope :is "from" "bob@remote.example" { fileinto "Lists"; }`,
			[]string{"Lists"}, map[string]int{"Lists": 1}, ""},
		{"mailboxexists", `require ["fileinto", "mailbox"]; if mailboxexists "Lists" { fileinto "Lists"; } else { discard; }`,
			[]string{"Lists"}, map[string]int{"Lists": 1}, ""},
		{"mailboxexists missing", `require ["fileinto", "mailbox"]; if mailboxexists "Nope" { keep; } else { fileinto "Lists"; }`,
			[]string{"Lists"}, map[string]int{"Lists": 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSieveFixture(t, tc.script)
			if len(tc.folders) > 0 {
				if err := maildir.Create(f.target.Maildir, tc.folders...); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
				t.Fatal(err)
			}
			for _, folder := range []string{"", "Lists", "lists.go", "Work", "INBOX.Work", "Other"} {
				if got := len(f.files(folder)); got != tc.want[folder] {
					t.Errorf("folder %q has %d messages, want %d; log %q", folder, got, tc.want[folder], f.log)
				}
			}
			for folder := range tc.want {
				if folder == "" {
					continue
				}
				if _, err := os.Stat(filepath.Join(f.target.Maildir, "."+folder, maildir.FolderMarker)); err != nil {
					t.Errorf("folder %q: %v, want a complete folder", folder, err)
				}
			}
			if tc.log != "" && !f.logged(tc.log) {
				t.Errorf("log %q lacks %q", f.log, tc.log)
			}
		})
	}
}

func TestSieveFlags(t *testing.T) {
	f := newSieveFixture(t, `require ["fileinto", "imap4flags"];
addflag ["\\Seen", "\\Flagged"];
fileinto :flags ["\\Answered", "\\Deleted", "\\Draft", "$Label1", "work"] "Lists";
keep;`)
	if err := maildir.Create(f.target.Maildir, "Lists"); err != nil {
		t.Fatal(err)
	}
	// A keyword the folder knows already keeps its letter.
	if _, err := uidlist.Open(filepath.Join(f.target.Maildir, ".Lists"), nil).AddKeywords("Work"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
		t.Fatal(err)
	}
	inbox, lists := f.files(""), f.files("Lists")
	if len(inbox) != 1 || !strings.HasPrefix(inbox[0], "cur/") || !strings.HasSuffix(inbox[0], ":2,FS") {
		t.Errorf("INBOX files %q, want one in cur/ with flags FS", inbox)
	}
	if len(lists) != 1 || !strings.HasPrefix(lists[0], "cur/") || !strings.HasSuffix(lists[0], ":2,DRTab") {
		t.Fatalf("Lists files %q, want one in cur/ with flags DRTab", lists)
	}
	kw, err := uidlist.ReadKeywords(filepath.Join(f.target.Maildir, ".Lists"))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := kw.Name('a'); a != "Work" {
		t.Errorf("keyword a = %q, want Work (allocated before)", a)
	}
	if b, _ := kw.Name('b'); b != "$Label1" {
		t.Errorf("keyword b = %q, want $Label1", b)
	}
}

func TestSieveFlagsTooManyKeywords(t *testing.T) {
	f := newSieveFixture(t, `require "imap4flags"; keep :flags ["k0", "new1", "\\Seen"];`)
	box := uidlist.Open(f.target.Maildir, nil)
	for i := range uidlist.MaxKeywords {
		if _, err := box.AddKeywords(fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
		t.Fatal(err)
	}
	if files := f.files(""); len(files) != 1 || !strings.HasSuffix(files[0], ":2,Sa") {
		t.Errorf("INBOX files %q, want one with flags Sa (new1 has no letter left)", files)
	}
	if !f.logged(`status=flags-dropped flags="new1"`) {
		t.Errorf("log %q does not say that new1 was dropped", f.log)
	}
}

func TestSieveRedirect(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		kept         int
	}{
		{"redirect", `redirect "carol@far.example"; redirect "dave@far.example"; redirect "Carol@far.example";`, 0},
		{"redirect copy", `require "copy"; redirect :copy "carol@far.example"; redirect :copy "dave@far.example";`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSieveFixture(t, tc.script)
			d, err := f.deliver(sieveMsg, "bob@remote.example")
			if err != nil {
				t.Fatal(err)
			}
			if got := len(f.files("")); got != tc.kept || (tc.kept == 0) != (d.Path == "") {
				t.Errorf("INBOX has %d messages (delivered %q), want %d", got, d.Path, tc.kept)
			}
			envs, msgs := f.queued()
			if len(envs) != 1 {
				t.Fatalf("spool holds %d entries, want 1", len(envs))
			}
			var to []string
			for _, r := range envs[0].Recipients {
				to = append(to, r.Address)
			}
			if envs[0].From != "bob@remote.example" || strings.Join(to, " ") != "carol@far.example dave@far.example" {
				t.Errorf("queued from %q to %q, want the original sender to carol and dave once each", envs[0].From, to)
			}
			if want := "Delivered-To: alice@example.org\n" + sieveMsg; msgs[0] != want {
				t.Errorf("queued message %q, want %q", msgs[0], want)
			}
		})
	}
}

// A redirected message that comes back is a loop, not a second copy.
func TestSieveRedirectLoop(t *testing.T) {
	f := newSieveFixture(t, `redirect "bob@example.org";`)
	m, _ := ReadMessage(strings.NewReader("Delivered-To: alice@example.org\n" + sieveMsg))
	_, err := ToTarget(f.target, m, Options{})
	if Code(err) != sysexits.DataErr {
		t.Errorf("ToTarget(looping message) = %v, want a loop (65)", err)
	}
}

func TestSieveDiscard(t *testing.T) {
	f := newSieveFixture(t, `discard;`)
	d, err := f.deliver(sieveMsg, "bob@remote.example")
	if err != nil || d.Path != "" {
		t.Fatalf("deliver = %v, %v; want nothing stored and no error", d, err)
	}
	if files := f.files(""); len(files) != 0 {
		t.Errorf("INBOX %q, want empty", files)
	}
	if envs, _ := f.queued(); len(envs) != 0 {
		t.Errorf("spool holds %d entries, want none", len(envs))
	}
}

func TestSieveReject(t *testing.T) {
	for _, cmd := range []string{"reject", "ereject"} {
		t.Run(cmd, func(t *testing.T) {
			f := newSieveFixture(t, `require "`+cmd+`"; `+cmd+` "I do not want this.";`)
			if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
				t.Fatal(err)
			}
			if files := f.files(""); len(files) != 0 {
				t.Errorf("INBOX %q, want empty", files)
			}
			envs, msgs := f.queued()
			if len(envs) != 1 || envs[0].From != "" || len(envs[0].Recipients) != 1 || envs[0].Recipients[0].Address != "bob@remote.example" {
				t.Fatalf("spool %+v, want one notice from <> to bob@remote.example", envs)
			}
			for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; alice@example.org",
				"Action: failed", "Status: 5.7.1", "I do not want this.", "Auto-Submitted: auto-replied", "Message-ID: <m1@remote.example>", "\nbody\n"} {
				if !strings.Contains(msgs[0], want) {
					t.Errorf("notice lacks %q:\n%s", want, msgs[0])
				}
			}
		})
	}
	t.Run("null sender", func(t *testing.T) {
		f := newSieveFixture(t, `require "reject"; reject "no";`)
		if _, err := f.deliver(sieveMsg, ""); err != nil {
			t.Fatal(err)
		}
		if envs, _ := f.queued(); len(envs) != 0 || len(f.files("")) != 0 {
			t.Errorf("spool %d entries, INBOX %q; want nothing for a bounce", len(envs), f.files(""))
		}
		if !f.logged("status=no-notice") {
			t.Errorf("log %q does not say why no notice went out", f.log)
		}
	})
}

const vacationScript = `require "vacation"; vacation :days 7 :subject "Away" "I am away until Monday. Grüße";`

func TestSieveVacation(t *testing.T) {
	f := newSieveFixture(t, vacationScript)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	replies := func() []string {
		_, msgs := f.queued()
		return msgs
	}
	if _, err := f.deliverAt(sieveMsg, "bob@remote.example", now); err != nil {
		t.Fatal(err)
	}
	envs, msgs := f.queued()
	if len(envs) != 1 || envs[0].From != "" || envs[0].Recipients[0].Address != "bob@remote.example" {
		t.Fatalf("spool %+v, want one reply from <> to bob", envs)
	}
	for _, want := range []string{"From: <alice@example.org>\n", "To: <bob@remote.example>\n", "Subject: Away\n",
		"In-Reply-To: <m1@remote.example>\n", "References: <m1@remote.example>\n", "Auto-Submitted: auto-replied\n",
		"Content-Transfer-Encoding: quoted-printable\n", "I am away until Monday. Gr=C3=BC=C3=9Fe"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("reply lacks %q:\n%s", want, msgs[0])
		}
	}
	if len(f.files("")) != 1 {
		t.Errorf("INBOX has %d messages, want the message kept", len(f.files("")))
	}
	// The same sender within the period: no second reply.
	if _, err := f.deliverAt(sieveMsg, "Bob@remote.example", now.Add(6*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(replies()); n != 1 {
		t.Errorf("%d replies after a second message within 7 days, want 1", n)
	}
	// Another sender gets one.
	if _, err := f.deliverAt(strings.Replace(sieveMsg, "bob@", "carol@", 1), "carol@remote.example", now); err != nil {
		t.Fatal(err)
	}
	if n := len(replies()); n != 2 {
		t.Errorf("%d replies after carol's message, want 2", n)
	}
	// After the period, the first sender gets another.
	if _, err := f.deliverAt(sieveMsg, "bob@remote.example", now.Add(7*24*time.Hour+time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(replies()); n != 3 {
		t.Errorf("%d replies after 7 days, want 3", n)
	}
	data, err := os.ReadFile(vacationPath(f.target.Maildir))
	if err != nil || strings.Count(string(data), "\n") != 2 || strings.Contains(string(data), "bob") {
		t.Errorf("vacation store %q, %v; want two hashed entries", data, err)
	}
	if len(f.files("")) != 4 {
		t.Errorf("INBOX has %d messages, want 4", len(f.files("")))
	}
}

// Deliveries at the same time from one sender make one reply: the store
// stays locked from the question to the record.
func TestSieveVacationConcurrent(t *testing.T) {
	f := newSieveFixture(t, vacationScript)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := ReadMessage(strings.NewReader(sieveMsg))
			sender, _ := address.Parse("bob@remote.example")
			_, err := filterAt(f.target, maildir.Dir(f.target.Maildir), "alice@example.org", m, Options{Sender: sender}, time.Now())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if envs, _ := f.queued(); len(envs) != 1 || len(f.files("")) != 8 {
		t.Errorf("%d replies and %d messages, want 1 reply and all 8 kept", len(envs), len(f.files("")))
	}
}

func TestSieveVacationNoReply(t *testing.T) {
	for _, tc := range []struct {
		name, msg, sender string
	}{
		{"null sender", sieveMsg, ""},
		{"mailing list", "List-Id: <go.lists.example>\n" + sieveMsg, "bob@remote.example"},
		{"bulk", "Precedence: bulk\n" + sieveMsg, "bob@remote.example"},
		{"auto-submitted", "Auto-Submitted: auto-generated\n" + sieveMsg, "bob@remote.example"},
		{"list owner", sieveMsg, "owner-go@lists.example"},
		{"not addressed to the user", strings.Replace(sieveMsg, "To: alice@", "To: someone@", 1), "bob@remote.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSieveFixture(t, vacationScript)
			if _, err := f.deliver(tc.msg, tc.sender); err != nil {
				t.Fatal(err)
			}
			if envs, _ := f.queued(); len(envs) != 0 {
				t.Errorf("spool holds %d entries, want no reply", len(envs))
			}
			if len(f.files("")) != 1 {
				t.Errorf("INBOX has %d messages, want 1", len(f.files("")))
			}
		})
	}
}

func TestSieveBrokenScriptKeeps(t *testing.T) {
	for _, tc := range []struct {
		name, script, log string
	}{
		{"does not parse", `fileinto "x";`, "status=broken"},
		{"runtime error", `require "variables"; set "a" "not an address"; redirect "${a}";`, "status=failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSieveFixture(t, "")
			dir := filepath.Join(f.target.Maildir, sieve.ScriptsDir)
			os.MkdirAll(dir, 0o700)
			if err := os.WriteFile(filepath.Join(dir, "main.sieve"), []byte(tc.script), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("sieve/main.sieve", filepath.Join(f.target.Maildir, sieve.ActiveLink)); err != nil {
				t.Fatal(err)
			}
			if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
				t.Fatal(err)
			}
			if len(f.files("")) != 1 {
				t.Errorf("INBOX has %d messages, want the message kept", len(f.files("")))
			}
			if envs, _ := f.queued(); len(envs) != 0 {
				t.Errorf("spool holds %d entries, want none", len(envs))
			}
			if !f.logged(tc.log) {
				t.Errorf("log %q lacks %q", f.log, tc.log)
			}
		})
	}
}

func TestSieveBeforeScript(t *testing.T) {
	const user = `require "fileinto"; fileinto "Lists";`
	for _, tc := range []struct {
		name, before, user, msg string
		want                    map[string]int
	}{
		{"before files, user does not run", `require ["fileinto", "mailbox"]; if header :is "X-Spam" "yes" { fileinto :create "Junk"; }`,
			user, "X-Spam: yes\n" + sieveMsg, map[string]int{"Junk": 1}},
		{"before keeps implicitly, user runs", `require ["fileinto", "mailbox"]; if header :is "X-Spam" "yes" { fileinto :create "Junk"; }`,
			user, sieveMsg, map[string]int{"Lists": 1}},
		{"copy from both", `require ["fileinto", "copy", "mailbox"]; fileinto :copy :create "Archive";`,
			user, sieveMsg, map[string]int{"Archive": 1, "Lists": 1}},
		{"before discards", `discard;`, user, sieveMsg, map[string]int{}},
		{"no user script", `require ["fileinto", "copy", "mailbox"]; fileinto :copy :create "Archive";`,
			"", sieveMsg, map[string]int{"Archive": 1, "": 1}},
		{"broken before script", `fileinto "x";`, user, sieveMsg, map[string]int{"Lists": 1}},
		{"before flags do not carry over", `require "imap4flags"; addflag "\\Seen";`, "", sieveMsg, map[string]int{"": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSieveFixture(t, tc.user)
			if err := maildir.Create(f.target.Maildir, "Lists"); err != nil {
				t.Fatal(err)
			}
			f.before(tc.before)
			if _, err := f.deliver(tc.msg, "bob@remote.example"); err != nil {
				t.Fatal(err)
			}
			for _, folder := range []string{"", "Junk", "Lists", "Archive"} {
				if got := len(f.files(folder)); got != tc.want[folder] {
					t.Errorf("folder %q has %d messages, want %d; log %q", folder, got, tc.want[folder], f.log)
				}
			}
			if files := f.files(""); len(files) == 1 && !strings.HasPrefix(files[0], "new/") {
				t.Errorf("INBOX file %s, want it unflagged in new/", files[0])
			}
		})
	}
}

// A message for alice+lists@ goes to the folder lists; so does its keep,
// while fileinto "INBOX" names the INBOX.
func TestSieveKeepUsesDefaultMailbox(t *testing.T) {
	for _, tc := range []struct {
		script       string
		lists, inbox int
	}{
		{`keep;`, 1, 0},
		{`require "fileinto"; fileinto "INBOX";`, 0, 1},
		// Merged with the implicit keep (RFC 5228 §2.10.3): one copy.
		{`require ["fileinto", "copy"]; fileinto :copy "INBOX";`, 1, 0},
		{`require ["fileinto", "copy"]; fileinto :copy "Other";`, 1, 0},
	} {
		f := newSieveFixture(t, tc.script)
		if err := maildir.Create(f.target.Maildir, "lists", "Other"); err != nil {
			t.Fatal(err)
		}
		f.target.Detail = "lists"
		m, _ := ReadMessage(strings.NewReader(sieveMsg))
		if _, err := ToTarget(f.target, m, Options{}); err != nil {
			t.Fatal(err)
		}
		if len(f.files("lists")) != tc.lists || len(f.files("")) != tc.inbox {
			t.Errorf("script %s: lists has %d, INBOX %d messages; want %d and %d", tc.script, len(f.files("lists")), len(f.files("")), tc.lists, tc.inbox)
		}
	}
}

// When the spool cannot take a redirect, the delivery is temporary and
// leaves no local copy behind for the retry to duplicate.
func TestSieveSpoolFailureIsTemporaryWithoutCopies(t *testing.T) {
	f := newSieveFixture(t, `require ["copy", "fileinto", "mailbox"]; fileinto :copy :create "Archive"; redirect "carol@far.example";`)
	if err := os.WriteFile(filepath.Join(f.root, "spool"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.deliver(sieveMsg, "bob@remote.example")
	if Code(err) != sysexits.TempFail {
		t.Fatalf("deliver = %v, want a temporary failure", err)
	}
	for _, folder := range []string{"", "Archive"} {
		if files := f.files(folder); len(files) != 0 {
			t.Errorf("folder %q holds %q after the failure, want nothing", folder, files)
		}
	}
}

func TestFolderCandidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"INBOX", []string{"INBOX"}},
		{"inbox", []string{"INBOX"}},
		{"Lists", []string{"Lists"}},
		{"lists/go", []string{"lists/go"}},
		{"lists.go", []string{"lists/go"}},
		{"INBOX.lists.go", []string{"INBOX/lists/go", "lists/go"}},
		{"Inbox/x", []string{"Inbox/x", "x"}},
		{"INBOX/", []string{"INBOX/"}},
		{"Entwürfe", []string{"Entwürfe"}},
	} {
		if got := folderCandidates(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("folderCandidates(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestVacationStoreFile(t *testing.T) {
	k1, k2 := vacationKey("bob@x.example", "h"), vacationKey("carol@x.example", "h")
	if k1 != vacationKey("BOB@x.example", "h") || k1 == vacationKey("bob@x.example", "other") {
		t.Errorf("vacationKey: case must not matter, the handle must")
	}
	data := fmt.Sprintf("100 %s\nnonsense\n-5 %s\n300 %s\n200 %s\n50 ZZ\n", k1, k2, k2, k1)
	got := parseVacation([]byte(data))
	if len(got) != 2 || got[k1] != 200 || got[k2] != 300 {
		t.Errorf("parseVacation(%q) = %v, want %s:200 %s:300", data, got, k1, k2)
	}
	if out := string(marshalVacation(got, 250)); out != fmt.Sprintf("300 %s\n", k2) {
		t.Errorf("marshalVacation(expired 250) = %q, want only %s", out, k2)
	}
	if out := string(marshalVacation(got, 0)); out != fmt.Sprintf("200 %s\n300 %s\n", k1, k2) {
		t.Errorf("marshalVacation = %q, want oldest first", out)
	}
	many := map[string]int64{}
	for i := range maxVacationEntries + 5 {
		many[vacationKey(fmt.Sprint(i), "")] = int64(i + 1)
	}
	if n := strings.Count(string(marshalVacation(many, 0)), "\n"); n != maxVacationEntries {
		t.Errorf("marshalVacation kept %d entries, want %d", n, maxVacationEntries)
	}
}

func FuzzParseVacation(f *testing.F) {
	f.Add([]byte("1795336972 3f1e0c5a9b7d2e4f6a8c0b1d3e5f7a9c\n"))
	f.Add([]byte("x y\n\n1 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := parseVacation(data)
		again := parseVacation(marshalVacation(entries, -1))
		if len(again) != len(entries) {
			t.Errorf("parse(marshal(parse(%q))) has %d entries, want %d", data, len(again), len(entries))
		}
	})
}

// A vacation store that cannot be used costs the reply, never the message.
func TestSieveVacationStoreUnusable(t *testing.T) {
	f := newSieveFixture(t, vacationScript)
	if err := os.Mkdir(vacationPath(f.target.Maildir), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliver(sieveMsg, "bob@remote.example"); err != nil {
		t.Fatalf("deliver = %v, want success", err)
	}
	if envs, _ := f.queued(); len(envs) != 0 || len(f.files("")) != 1 {
		t.Errorf("spool %d entries, INBOX %d messages; want no reply and the message kept", len(envs), len(f.files("")))
	}
	if !f.logged("action=vacation status=no-reply") {
		t.Errorf("log %q does not say why no reply went out", f.log)
	}
}

// Quarantined mail (Options.Junk) is kept in Junk; the script still runs.
func TestSieveKeepOfJunk(t *testing.T) {
	f := newSieveFixture(t, `require "imap4flags"; keep :flags "\\Seen";`)
	m, _ := ReadMessage(strings.NewReader(sieveMsg))
	if _, err := ToTarget(f.target, m, Options{Junk: true}); err != nil {
		t.Fatal(err)
	}
	if files := f.files(JunkFolder); len(files) != 1 || !strings.HasSuffix(files[0], ":2,S") || len(f.files("")) != 0 {
		t.Errorf("Junk %q, INBOX %q; want one seen message in Junk", files, f.files(""))
	}
}
