package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/selfsigned"
)

func TestMkuserDomainAddDelList(t *testing.T) {
	root := t.TempDir()
	mkuserOK(t, root, "pw-alice-1\n", "add", "alice@example.org")
	mkuserOK(t, root, "", "domain", "add", "New.Example")
	if code, _, errOut := mkuser(t, root, "", "domain", "add", "new.example"); code != 73 {
		t.Errorf("domain add twice: exit %d (%s), want 73", code, errOut)
	}
	mkuserOK(t, root, "", "domain", "dkim-keygen", "new.example")
	want := "example.org\tusers=1 aliases=0 listed=false dkim=\nnew.example\tusers=0 aliases=0 listed=true dkim=ed25519,rsa\n"
	if out := mkuserOK(t, root, "", "domain", "list"); out != want {
		t.Errorf("domain list = %q, want %q", out, want)
	}
	// Mail to an unknown user of a listed domain is refused, not relayed.
	if code, _ := runDeliver(t, "Subject: x\n\nx\n", "--root", root, "nobody@new.example"); code != 67 {
		t.Errorf("deliver to nobody@new.example: exit %d, want 67 (unknown user of a local domain)", code)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"domain", "del", "example.org"}, 65},
		{[]string{"domain", "del", "remote.example"}, 67},
		{[]string{"domain", "dkim-keygen", "remote.example"}, 67},
		{[]string{"domain", "add", "[127.0.0.1]"}, 65},
		{[]string{"domain", "dns"}, 64},
	} {
		if code, _, errOut := mkuser(t, root, "", tc.args...); code != tc.code {
			t.Errorf("mkuser %q: exit %d (%s), want %d", tc.args, code, errOut, tc.code)
		}
	}
	code, _, errOut := mkuser(t, root, "", "domain", "del", "new.example")
	if code != 0 || !strings.Contains(errOut, "kept the DKIM keys in") {
		t.Errorf("domain del: exit %d, %q", code, errOut)
	}
	if out := mkuserOK(t, root, "", "domain", "list"); out != "example.org\tusers=1 aliases=0 listed=false dkim=\n" {
		t.Errorf("domain list after del = %q", out)
	}
}

// domainSetup makes a root whose domain example.org is served by
// mail.example.org at 127.0.0.1, with DKIM keys, a certificate from a
// trusted (test) issuer, and a test DNS server publishing exactly what
// mkuser domain dns proposes; block lists are asked at zen.test.
func domainSetup(t *testing.T) (root string, dns *dnstest.Server, zone []string) {
	t.Helper()
	root = t.TempDir()
	mkuserOK(t, root, "pw-alice-1\n", "add", "alice@example.org")
	mkuserOK(t, root, "", "domain", "dkim-keygen", "example.org")
	domainCert(t, root, time.Hour*24*90)
	writeFile(t, filepath.Join(root, "etc", "hostname"), "mail.example.org\n")
	writeFile(t, filepath.Join(root, "etc", "check-dnsbls"), "zen.test\n")
	dns = dnstest.Start(t)
	zone = dkimZone(t, root, "--address", "127.0.0.1", "--dns", dns.Addr, "example.org")
	dns.Set(t, zone...)
	return root, dns, zone
}

// domainCert installs a certificate for mail.example.org valid for
// validity from an hour ago (negative: expired), and trusts it.
func domainCert(t *testing.T, root string, validity time.Duration) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate([]string{"mail.example.org"}, validity)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc", "tls", "cert.pem"), string(certPEM))
	writeFile(t, filepath.Join(root, "etc", "tls", "key.pem"), string(keyPEM))
	writeFile(t, filepath.Join(root, "etc", "tls-roots.pem"), string(certPEM))
}

// domainFails returns the FAIL lines (with their fix lines) of a check.
func domainFails(out string) string {
	return strings.Join(regexp.MustCompile(`(?m)^FAIL.*\n +fix: .*$`).FindAllString(out, -1), "\n")
}

func TestMkuserDomainCheck(t *testing.T) {
	root, dns, zone := domainSetup(t)
	check := func() (int, string) {
		t.Helper()
		code, out, errOut := mkuser(t, root, "", "domain", "check", "--dns", dns.Addr, "example.org")
		if code > 1 {
			t.Fatalf("domain check: exit %d: %s", code, errOut)
		}
		return code, out
	}
	code, out := check()
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("check of a good setup: exit %d\n%s", code, out)
	}
	for _, c := range []string{"mx", "address", "ptr", "spf", "dkim", "dmarc", "mta-sts", "tls", "dnsbl"} {
		if !regexp.MustCompile(`(?m)^ok +` + c + ` `).MatchString(out) {
			t.Errorf("no ok line for %s:\n%s", c, out)
		}
	}

	// Missing SPF.
	dns.Set(t, slices.DeleteFunc(slices.Clone(zone), func(r string) bool { return strings.Contains(r, "v=spf1") })...)
	code, out = check()
	if fails := domainFails(out); code != 1 || !strings.Contains(fails, "spf") || !strings.Contains(fails, `fix: publish  example.org.	3600	IN	TXT	"v=spf1 mx -all"`) || strings.Count(fails, "FAIL") != 1 {
		t.Errorf("check without SPF: exit %d, problems:\n%s", code, fails)
	}

	// A wrong DKIM key: the records of another root's keys.
	other := t.TempDir()
	mkuserOK(t, other, "", "domain", "add", "example.org")
	mkuserOK(t, other, "", "domain", "dkim-keygen", "example.org")
	otherZone := dkimZone(t, other, "--hostname", "mail.example.org", "--address", "127.0.0.1", "--dns", dns.Addr, "example.org")
	wrong := slices.Clone(zone)
	for i, r := range wrong {
		if strings.Contains(r, "k=ed25519") {
			name, _, _ := strings.Cut(r, "\t")
			for _, o := range otherZone {
				if strings.Contains(o, "k=ed25519") {
					_, rest, _ := strings.Cut(o, "\t")
					wrong[i] = name + "\t" + rest
				}
			}
		}
	}
	dns.Set(t, wrong...)
	code, out = check()
	if fails := domainFails(out); code != 1 || !regexp.MustCompile(`FAIL  dkim +the DKIM record at ed25519-[0-9a-f]{8}\._domainkey\.example\.org holds another key than .*ed25519\.key.*\n +fix: replace it:  ed25519-`).MatchString(fails) || strings.Count(fails, "FAIL") != 1 {
		t.Errorf("check with a wrong DKIM key: exit %d, problems:\n%s", code, fails)
	}

	// An expired certificate.
	dns.Set(t, zone...)
	domainCert(t, root, -time.Minute)
	code, out = check()
	if fails := domainFails(out); code != 1 || !regexp.MustCompile(`FAIL  tls +the certificate expired on \d{4}-\d\d-\d\d\n +fix: renew it: get a certificate for mail.example.org`).MatchString(fails) || strings.Count(fails, "FAIL") != 1 {
		t.Errorf("check with an expired certificate: exit %d, problems:\n%s", code, fails)
	}

	// On a block list.
	domainCert(t, root, time.Hour*24*90)
	dns.Set(t, append(slices.Clone(zone), "1.0.0.127.zen.test. A 127.0.0.2")...)
	code, out = check()
	if fails := domainFails(out); code != 1 || !strings.Contains(fails, "127.0.0.1 is listed on zen.test (127.0.0.2)") || strings.Count(fails, "FAIL") != 1 {
		t.Errorf("check when listed: exit %d, problems:\n%s", code, fails)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "domains")); err == nil {
		t.Error("domain check or dns wrote etc/domains")
	}
}
