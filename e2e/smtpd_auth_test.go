package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/postkit/postkit/mailheader"
	"github.com/postkit/postkit/mx/dnstest"
)

// The sender authentication tests: smtpd in MX mode with --dns pointing at
// a DNS server on loopback that publishes SPF, DKIM and DMARC records for
// the sending domains, and lists 127.0.0.1 in bl.test.

var saKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func saDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	pub := base64.StdEncoding.EncodeToString(saKey.Public().(ed25519.PublicKey))
	key := func(domain string) string {
		return fmt.Sprintf(`sel._domainkey.%s. TXT "v=DKIM1; k=ed25519; p=%s"`, domain, pub)
	}
	return dnstest.Start(t,
		`pass.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`fail.test. TXT "v=spf1 -all"`,
		`soft.test. TXT "v=spf1 ~all"`,
		`helo.test. TXT "v=spf1 a:helo.test -all"`,
		"helo.test. A 127.0.0.1",
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject"`,
		`_dmarc.quarantine.test. TXT "v=DMARC1; p=quarantine"`,
		`_dmarc.monitor.test. TXT "v=DMARC1; p=none"`,
		`_dmarc.signed.test. TXT "v=DMARC1; p=reject"`,
		key("signed.test"),
		"1.0.0.127.bl.test. A 127.0.0.2",
		`1.0.0.127.bl.test. TXT "Listed in the e2e blocklist"`,
	)
}

func saMsg(from string) string {
	return "From: " + from + "\r\nTo: alice@example.org\r\nSubject: sender authentication\r\n\r\nHello.\r\n"
}

func saSign(t *testing.T, msg, domain string) string {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: saKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// saSend sends msg to alice over a raw SMTP dialog and returns the reply
// to the end of the data.
func saSend(t *testing.T, addr, helo, mailFrom, msg string) (int, string) {
	t.Helper()
	c := smtpDial(t, addr)
	c.cmd("EHLO "+helo, 250)
	c.cmd("MAIL FROM:<"+mailFrom+">", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	c.cmd("DATA", 354)
	c.send(msg + ".\r\n")
	code, text := c.reply()
	c.cmd("QUIT", 221)
	return code, text
}

// saResults returns the results of the Authentication-Results field of
// mx.test in the stored message, parsed with go-msgauth.
func saResults(t *testing.T, stored string) []authres.Result {
	t.Helper()
	var found []authres.Result
	n := 0
	for _, f := range mailheader.ParseHeader([]byte(stored)).Fields {
		if !f.Is("Authentication-Results") {
			continue
		}
		id, results, err := authres.Parse(f.Value())
		if err != nil {
			t.Fatalf("authres.Parse(%q): %v", f.Value(), err)
		}
		if id == "mx.test" {
			n++
			found = results
		}
	}
	if n != 1 {
		t.Fatalf("%d Authentication-Results fields of mx.test, want 1:\n%s", n, stored)
	}
	return found
}

// saSummary writes results as "spf=pass smtp.mailfrom=... dkim=... dmarc=...".
func saSummary(results []authres.Result) string {
	var parts []string
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			parts = append(parts, fmt.Sprintf("spf=%s mailfrom=%s helo=%s", r.Value, r.From, r.Helo))
		case *authres.DKIMResult:
			parts = append(parts, fmt.Sprintf("dkim=%s d=%s", r.Value, r.Domain))
		case *authres.DMARCResult:
			parts = append(parts, fmt.Sprintf("dmarc=%s from=%s", r.Value, r.From))
		default:
			parts = append(parts, fmt.Sprintf("%T", r))
		}
	}
	return strings.Join(parts, "; ")
}

func TestSMTPdAuthenticationResults(t *testing.T) {
	dns := saDNS(t)
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root, "--dns", dns.Addr)
	signed := saSign(t, saMsg("a@signed.test"), "signed.test")
	tests := []struct {
		name, helo, mailFrom, msg string
		want                      string
	}{
		{"SPF pass, no DMARC record", "client.test", "a@pass.test", saMsg("a@pass.test"),
			"spf=pass mailfrom=a@pass.test helo=; dkim=none d=; dmarc=none from=pass.test"},
		{"SPF fail", "client.test", "a@fail.test", saMsg("a@fail.test"),
			"spf=fail mailfrom=a@fail.test helo=; dkim=none d=; dmarc=none from=fail.test"},
		{"SPF softfail", "client.test", "a@soft.test", saMsg("a@soft.test"),
			"spf=softfail mailfrom=a@soft.test helo=; dkim=none d=; dmarc=none from=soft.test"},
		{"SPF none", "client.test", "a@nothing.test", saMsg("a@nothing.test"),
			"spf=none mailfrom=a@nothing.test helo=; dkim=none d=; dmarc=none from=nothing.test"},
		{"null sender: HELO checked", "helo.test", "", saMsg("mailer-daemon@helo.test"),
			"spf=pass mailfrom= helo=helo.test; dkim=none d=; dmarc=none from=helo.test"},
		{"DKIM pass, DMARC pass", "client.test", "bounce@pass.test", signed,
			"spf=pass mailfrom=bounce@pass.test helo=; dkim=pass d=signed.test; dmarc=pass from=signed.test"},
		{"DKIM fail, DMARC fail with p=none", "client.test", "bounce@pass.test", strings.Replace(saSign(t, saMsg("a@monitor.test"), "signed.test"), "Hello.", "Hello!", 1),
			"spf=pass mailfrom=bounce@pass.test helo=; dkim=fail d=signed.test; dmarc=fail from=monitor.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(smtpSpool(t, root))
			if code, text := saSend(t, srv.addr, tt.helo, tt.mailFrom, tt.msg); code != 250 {
				t.Fatalf("end of data: %d %q, want 250", code, text)
			}
			envs := smtpSpool(t, root)
			if len(envs) != before+1 {
				t.Fatalf("spool has %d entries, want %d", len(envs), before+1)
			}
			stored := smtpSpoolMessage(t, root, envs[len(envs)-1].ID)
			if got := saSummary(saResults(t, stored)); got != tt.want {
				t.Errorf("Authentication-Results: %s\nwant %s\nstored:\n%s", got, tt.want, stored)
			}
			if !strings.HasPrefix(stored, "Received: ") || !strings.HasSuffix(stored, "\r\n"+tt.msg) {
				t.Errorf("stored message:\n%s", stored)
			}
		})
	}
}

func TestSMTPdDMARCPolicies(t *testing.T) {
	dns := saDNS(t)
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root, "--dns", dns.Addr)

	// p=reject: refused at the end of the data, nothing stored.
	code, text := saSend(t, srv.addr, "client.test", "a@pass.test", saMsg("ceo@reject.test"))
	if code != 550 || !strings.HasPrefix(text, "5.7.1 ") || !strings.Contains(text, "reject.test") {
		t.Errorf("p=reject: %d %q, want 550 5.7.1 naming reject.test", code, text)
	}
	if n := len(smtpSpool(t, root)); n != 0 {
		t.Fatalf("p=reject: spool has %d entries", n)
	}
	srv.waitContains(t, "checked conn=")

	// p=quarantine: stored, marked for the Junk folder.
	if code, text := saSend(t, srv.addr, "client.test", "a@pass.test", saMsg("ceo@quarantine.test")); code != 250 {
		t.Fatalf("p=quarantine: %d %q, want 250", code, text)
	}
	envs := smtpSpool(t, root)
	if len(envs) != 1 || envs[0].Junk != "dmarc" {
		t.Fatalf("p=quarantine: spool %+v, want one entry with junk dmarc", envs)
	}
	if got := saSummary(saResults(t, smtpSpoolMessage(t, root, envs[0].ID))); !strings.Contains(got, "dmarc=fail from=quarantine.test") {
		t.Errorf("p=quarantine: Authentication-Results %s", got)
	}
	srv.waitContains(t, "junk=dmarc")

	// p=none: stored as usual.
	if code, text := saSend(t, srv.addr, "client.test", "a@pass.test", saMsg("ceo@monitor.test")); code != 250 {
		t.Fatalf("p=none: %d %q, want 250", code, text)
	}
	envs = smtpSpool(t, root)
	if len(envs) != 2 || envs[1].Junk != "" {
		t.Fatalf("p=none: spool %+v, want a second entry without junk", envs)
	}

	// etc/dmarc-reject junk: p=reject goes to Junk instead, from the next
	// message on.
	smtpWriteEtc(t, root, "dmarc-reject", "junk\n")
	if code, text := saSend(t, srv.addr, "client.test", "a@pass.test", saMsg("ceo@reject.test")); code != 250 {
		t.Fatalf("p=reject with dmarc-reject junk: %d %q, want 250", code, text)
	}
	envs = smtpSpool(t, root)
	if len(envs) != 3 || envs[2].Junk != "dmarc" {
		t.Fatalf("p=reject with dmarc-reject junk: spool %+v", envs)
	}
}

func TestSMTPdForgedAuthenticationResults(t *testing.T) {
	dns := saDNS(t)
	root, _ := smtpRoot(t)
	srv := startSMTPd(t, root, "--dns", dns.Addr)
	forged := "Authentication-Results: mx.test; dmarc=pass header.from=example.org\r\n" +
		"Authentication-Results: MX.TEST (copied);\r\n\tdkim=pass header.d=example.org\r\n"
	foreign := "Authentication-Results: mx.elsewhere.test; spf=pass smtp.mailfrom=a@pass.test\r\n"
	msg := forged + foreign + saMsg("a@pass.test")
	if code, text := saSend(t, srv.addr, "client.test", "a@pass.test", msg); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	envs := smtpSpool(t, root)
	if len(envs) != 1 {
		t.Fatalf("spool has %d entries", len(envs))
	}
	stored := smtpSpoolMessage(t, root, envs[0].ID)
	if got := saSummary(saResults(t, stored)); got != "spf=pass mailfrom=a@pass.test helo=; dkim=none d=; dmarc=none from=pass.test" {
		t.Errorf("our Authentication-Results: %s", got)
	}
	if strings.Contains(stored, "header.from=example.org") || strings.Contains(stored, "MX.TEST") {
		t.Errorf("forged fields kept:\n%s", stored)
	}
	if !strings.HasSuffix(stored, "\r\n"+foreign+saMsg("a@pass.test")) {
		t.Errorf("the foreign field or the message changed:\n%s", stored)
	}
	srv.waitContains(t, "stripped conn=")
}

func TestSMTPdDNSBL(t *testing.T) {
	dns := saDNS(t)
	root, _ := smtpRoot(t)
	smtpWriteEtc(t, root, "dnsbl-zones", "bl.test\n")
	srv := startSMTPd(t, root, "--dns", dns.Addr)
	c := smtpDial(t, srv.addr)
	c.cmd("EHLO client.test", 250)
	text := c.cmd("MAIL FROM:<a@pass.test>", 554)
	if want := "5.7.1 Service refused: 127.0.0.1 is listed in bl.test: Listed in the e2e blocklist"; text != want {
		t.Errorf("MAIL: %q, want %q", text, want)
	}
	c.cmd("QUIT", 221)
	if n := len(smtpSpool(t, root)); n != 0 {
		t.Errorf("spool has %d entries", n)
	}
	srv.waitContains(t, "reason=dnsbl zone=bl.test")
}

// A message being checked is held in memory, and past 1 MiB in a
// temporary file that has no name: smtpd killed with it leaves nothing,
// neither in the spool nor in $TMPDIR.
func TestSMTPdKilledWhileHoldingLeavesNothing(t *testing.T) {
	dns := saDNS(t)
	root, _ := smtpRoot(t)
	tmp := t.TempDir()
	cmd := exec.Command(Bin(t, "smtpd"), "--root", root, "--listen", "127.0.0.1:0", "--hostname", "mx.test", "--dns", dns.Addr)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	srv := runDaemon(t, cmd, listenAddr)
	c := smtpDial(t, srv.addr)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<a@pass.test>", 250)
	c.cmd("RCPT TO:<alice@example.org>", 250)
	c.cmd("DATA", 354)
	c.send(saMsg("a@pass.test") + strings.Repeat("some of the message\r\n", 100000))
	// smtpd holds the file open, already unlinked.
	deadline := time.Now().Add(30 * time.Second)
	for !holdsDeletedFile(t, cmd.Process.Pid, tmp) {
		if time.Now().After(deadline) {
			t.Fatal("smtpd holds no unlinked file in $TMPDIR")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	if envs := smtpSpool(t, root); len(envs) != 0 {
		t.Errorf("spool shows %d entries after kill -9 mid-DATA", len(envs))
	}
	for _, dir := range []string{tmp, filepath.Join(root, "spool", "queue")} {
		if names, _ := os.ReadDir(dir); len(names) != 0 {
			t.Errorf("%s holds %v after kill -9 mid-DATA", dir, names)
		}
	}
}

// holdsDeletedFile reports whether process pid has a file of dir open that
// is unlinked, as /proc/PID/fd shows.
func holdsDeletedFile(t *testing.T, pid int, dir string) bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc to look at open files: %v", err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			return true
		}
	}
	return false
}
