package e2e

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/remote/smtptest"
)

// dkimZone runs mkuser domain dns and returns the records it prints (not
// the comments, nor the optional records, which are commented out).
func dkimZone(t *testing.T, root string, args ...string) []string {
	t.Helper()
	out := mkuserOK(t, root, "", append([]string{"domain", "dns"}, args...)...)
	var zone []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, ";") {
			zone = append(zone, line)
		}
	}
	return zone
}

// dkimVerify verifies the signatures of msg against the DNS server at
// addr and returns one error (or nil) per signature.
func dkimVerify(t *testing.T, addr, msg string) []error {
	t.Helper()
	r := dnsquery.New(mx.NewResolver(addr))
	vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.TXT(context.Background(), name) },
	})
	if err != nil {
		t.Fatalf("dkim.Verify = %v", err)
	}
	var errs []error
	for _, v := range vs {
		errs = append(errs, v.Err)
	}
	return errs
}

// dkimRefold re-wraps the header as a relaxed-canonicalization-safe
// relay might: every field unfolded, runs of white space widened, and long
// fields folded again at other places.
func dkimRefold(msg string) string {
	header, body, _ := strings.Cut(msg, "\r\n\r\n")
	unfolded := regexp.MustCompile(`\r\n[ \t]+`).ReplaceAllString(header, " ")
	var out []string
	for _, f := range strings.Split(unfolded, "\r\n") {
		name, value, _ := strings.Cut(f, ":")
		words := strings.Fields(value)
		var b strings.Builder
		b.WriteString(name + ":  ")
		line := len(name) + 3
		for i, w := range words {
			if i > 0 && line+len(w) > 40 {
				b.WriteString("\r\n\t")
				line = 1
			} else if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(w)
			line += len(w) + 2
		}
		out = append(out, b.String())
	}
	body = strings.ReplaceAll(body, " bye\r\n", "   bye   \r\n")
	return strings.Join(out, "\r\n") + "\r\n\r\n" + body
}

func TestDKIMSubmissionSignedAndVerified(t *testing.T) {
	root, pool := smtpRoot(t) // alice and bob of example.org
	keygen := mkuserOK(t, root, "", "domain", "dkim-keygen", "example.org")
	if !regexp.MustCompile(`(?m)^ed25519\tnew\tselector ed25519-[0-9a-f]{8}\t`).MatchString(keygen) ||
		!regexp.MustCompile(`(?m)^rsa\tnew\tselector rsa-[0-9a-f]{8}\t`).MatchString(keygen) {
		t.Fatalf("dkim-keygen printed:\n%s", keygen)
	}
	for _, alg := range []string{"ed25519", "rsa"} {
		if fi, err := os.Stat(filepath.Join(root, "etc", "dkim", "example.org", alg+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s key: %v, mode %v; want 0600", alg, err, fi.Mode().Perm())
		}
	}
	mxServer := smtptest.Start(t, smtptest.Options{})
	_, port, _ := strings.Cut(mxServer.Addr, ":")
	zone := dkimZone(t, root, "--hostname", "mail.example.org", "--address", "127.0.0.1", "example.org")
	dns := dnstest.Start(t, append(zone, "remote.test. MX 10 mx.remote.test.", "mx.remote.test. A 127.0.0.1")...)
	for name, value := range map[string]string{"dns": dns.Addr, "smtp-port": port, "retry-min": "200ms", "retry-max": "1s"} {
		smtpWriteEtc(t, root, name, value+"\n")
	}
	srv := startSMTPd(t, root, "--submission")
	sq := startSendq(t, root)

	c, err := smtp.DialStartTLS(srv.addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
		t.Fatal(err)
	}
	// A large body: signing streams it (and the spool file is read twice).
	body := strings.Repeat("a line of the long body of the message, to sign as it streams by\r\n", 40000) + "the end, bye\r\n"
	msg := "From: Alice <alice@example.org>\r\nTo: someone@remote.test\r\nSubject: a signed message whose subject is long enough to fold\r\n\r\n" + body
	if err := smtpSend(c, "alice@example.org", []string{"someone@remote.test"}, msg); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := mxServer.Wait(t, 1, 20*time.Second)[0]
	data := string(got.Data)
	if n := strings.Count(data, "DKIM-Signature:"); n != 2 {
		t.Fatalf("delivered message has %d DKIM-Signature fields, want 2:\n%.2000s", n, data)
	}
	for _, want := range []string{"a=ed25519-sha256", "a=rsa-sha256", "c=relaxed/relaxed", "d=example.org"} {
		if !strings.Contains(data, want) {
			t.Errorf("signatures lack %s", want)
		}
	}
	errs := dkimVerify(t, dns.Addr, data)
	if len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Errorf("verification of the delivered message: %v, want two passes", errs)
	}
	refolded := dkimRefold(data)
	if refolded == data {
		t.Fatal("re-folding changed nothing")
	}
	errs = dkimVerify(t, dns.Addr, refolded)
	if len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Errorf("verification after re-folding: %v, want two passes", errs)
	}
	tampered := strings.Replace(data, "the end, bye", "the end, BYE", 1)
	for i, err := range dkimVerify(t, dns.Addr, tampered) {
		if err == nil {
			t.Errorf("signature %d of a changed body verifies", i)
		}
	}
	sqWait(t, "the signing log line", 10*time.Second, func() bool { return sq.count(`event=dkim status=signed domain=example.org signatures=2`) == 1 })
}
