package msgauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/postkit/postkit/mailheader"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
)

// The test key signs for every domain that publishes "sel._domainkey".
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func keyRecord(domain string) string {
	pub := base64.StdEncoding.EncodeToString(testKey.Public().(ed25519.PublicKey))
	return fmt.Sprintf(`sel._domainkey.%s. TXT "v=DKIM1; k=ed25519; p=%s"`, domain, pub)
}

// client is the address every test message comes from.
var client = netip.MustParseAddr("127.0.0.1")

// testDNS serves the records of every test in this file.
func testDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	records := []string{
		// SPF
		`pass.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`fail.test. TXT "v=spf1 -all"`,
		`soft.test. TXT "v=spf1 ~all"`,
		`neutral.test. TXT "v=spf1 ?all"`,
		`perm.test. TXT "v=spf1 nonsense:x -all"`,
		`nospf.test. A 192.0.2.1`,
		// DMARC, with SPF for their bounce domains and DKIM keys
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject"`,
		`_dmarc.quarantine.test. TXT "v=DMARC1; p=quarantine"`,
		`_dmarc.monitor.test. TXT "v=DMARC1; p=none"`,
		`_dmarc.pct.test. TXT "v=DMARC1; p=reject; pct=50"`,
		`_dmarc.org.test. TXT "v=DMARC1; p=reject; sp=quarantine"`,
		`_dmarc.own.org.test. TXT "v=DMARC1; p=none"`,
		`_dmarc.strict.test. TXT "v=DMARC1; p=reject; aspf=s; adkim=s"`,
		`_dmarc.example.co.uk. TXT "v=DMARC1; p=reject"`,
		`_dmarc.bad.test. TXT "v=DMARC1; p=bogus"`,
		`_dmarc.tempspf.test. TXT "v=DMARC1; p=reject"`,
		`reject.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`bounce.reject.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`bounce.strict.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		keyRecord("reject.test"),
		keyRecord("strict.test"),
		keyRecord("mail.strict.test"),
		keyRecord("example.co.uk"),
		keyRecord("other.co.uk"),
		keyRecord("signed.test"),
		`sel._domainkey.revoked.test. TXT "v=DKIM1; k=ed25519; p="`,
	}
	srv := dnstest.Start(t, records...)
	srv.ServFail("temp.test")
	srv.ServFail("_dmarc.temp.test")
	srv.ServFail("sel._domainkey.tempkey.test")
	srv.ServFail("tempspf.test")
	return srv
}

func testChecker(t *testing.T) *Checker {
	return &Checker{Resolver: mx.NewResolver(testDNS(t).Addr).NetResolver()}
}

func TestSPF(t *testing.T) {
	c := testChecker(t)
	tests := []struct {
		name     string
		env      Envelope
		want     authres.ResultValue
		wantDom  string
		wantHelo string
	}{
		{"pass", Envelope{IP: client, Helo: "x.test", MailFrom: "a@pass.test"}, authres.ResultPass, "pass.test", ""},
		{"case and final dot", Envelope{IP: client, Helo: "x.test", MailFrom: "a@PASS.test."}, authres.ResultPass, "pass.test", ""},
		{"fail", Envelope{IP: client, Helo: "x.test", MailFrom: "a@fail.test"}, authres.ResultFail, "fail.test", ""},
		{"softfail", Envelope{IP: client, Helo: "x.test", MailFrom: "a@soft.test"}, authres.ResultSoftFail, "soft.test", ""},
		{"neutral", Envelope{IP: client, Helo: "x.test", MailFrom: "a@neutral.test"}, authres.ResultNeutral, "neutral.test", ""},
		{"none without record", Envelope{IP: client, Helo: "x.test", MailFrom: "a@nospf.test"}, authres.ResultNone, "nospf.test", ""},
		{"none for NXDOMAIN", Envelope{IP: client, Helo: "x.test", MailFrom: "a@nxdomain.test"}, authres.ResultNone, "nxdomain.test", ""},
		{"temperror", Envelope{IP: client, Helo: "x.test", MailFrom: "a@temp.test"}, authres.ResultTempError, "temp.test", ""},
		{"permerror", Envelope{IP: client, Helo: "x.test", MailFrom: "a@perm.test"}, authres.ResultPermError, "perm.test", ""},
		{"other client fails", Envelope{IP: netip.MustParseAddr("192.0.2.9"), Helo: "x.test", MailFrom: "a@pass.test"}, authres.ResultFail, "pass.test", ""},
		{"null sender checks HELO", Envelope{IP: client, Helo: "pass.test"}, authres.ResultPass, "pass.test", "pass.test"},
		{"null sender HELO fails", Envelope{IP: client, Helo: "fail.test"}, authres.ResultFail, "fail.test", "fail.test"},
		{"address literal HELO", Envelope{IP: client, Helo: "[127.0.0.1]"}, authres.ResultNone, "[127.0.0.1]", "[127.0.0.1]"},
		{"single label", Envelope{IP: client, Helo: "x.test", MailFrom: "a@localhost"}, authres.ResultNone, "localhost", ""},
		{"no client address", Envelope{Helo: "x.test", MailFrom: "a@pass.test"}, authres.ResultNone, "pass.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSPF(context.Background(), fqdnResolver{c.Resolver}, tt.env)
			if got.Value != tt.want || got.Domain != tt.wantDom || got.Helo != tt.wantHelo || got.MailFrom != tt.env.MailFrom {
				t.Errorf("checkSPF(%+v) = %+v, want %s for %s (helo %q)", tt.env, got, tt.want, tt.wantDom, tt.wantHelo)
			}
			if (got.Value == authres.ResultTempError || got.Value == authres.ResultPermError) && got.Reason == "" {
				t.Errorf("checkSPF(%+v) = %+v: no reason", tt.env, got)
			}
		})
	}
}

// message returns a test message from the From value.
func message(from string) string {
	return "From: " + from + "\r\nTo: bob@example.org\r\nSubject: test\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <1@x>\r\n\r\nHello,\r\nthere.\r\n"
}

// sign signs msg for domain with the test key, relaxed/relaxed.
func sign(t *testing.T, msg, domain string) string {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: testKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func check(c *Checker, env Envelope, msg string) *Result {
	return c.Check(context.Background(), env, mailheader.ParseHeader([]byte(msg)), strings.NewReader(msg))
}

func TestDKIM(t *testing.T) {
	c := testChecker(t)
	env := Envelope{IP: client, Helo: "x.test", MailFrom: "a@nospf.test"}
	signed := sign(t, message("a@signed.test"), "signed.test")
	tests := []struct {
		name   string
		msg    string
		want   []authres.ResultValue
		domain string
	}{
		{"unsigned", message("a@signed.test"), nil, ""},
		{"pass", signed, []authres.ResultValue{authres.ResultPass}, "signed.test"},
		{"body changed", strings.Replace(signed, "there.", "there!", 1), []authres.ResultValue{authres.ResultFail}, "signed.test"},
		{"signed header changed", strings.Replace(signed, "Subject: test", "Subject: tost", 1), []authres.ResultValue{authres.ResultFail}, "signed.test"},
		{"no key", sign(t, message("a@nokey.test"), "nokey.test"), []authres.ResultValue{authres.ResultPermError}, "nokey.test"},
		{"revoked key", sign(t, message("a@revoked.test"), "revoked.test"), []authres.ResultValue{authres.ResultPermError}, "revoked.test"},
		{"key lookup fails", sign(t, message("a@tempkey.test"), "tempkey.test"), []authres.ResultValue{authres.ResultTempError}, "tempkey.test"},
		{"two signatures", sign(t, signed, "reject.test"), []authres.ResultValue{authres.ResultPass, authres.ResultPass}, "reject.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := check(c, env, tt.msg)
			var got []authres.ResultValue
			for _, d := range res.DKIM {
				got = append(got, d.Value)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(res.DKIM) > 0 && res.DKIM[0].Domain != tt.domain {
				t.Errorf("DKIM results %+v, want %v for %s", res.DKIM, tt.want, tt.domain)
			}
		})
	}
}

func TestDMARC(t *testing.T) {
	tests := []struct {
		name       string
		mailFrom   string
		from       string
		signFor    string // DKIM signing domain, if any
		sample     bool   // what pct sampling draws
		want       authres.ResultValue
		policy     dmarc.Policy // applied
		published  dmarc.Policy
		wantPolicy dmarc.Policy // Result.Policy
	}{
		{"SPF aligned pass", "a@reject.test", "a@reject.test", "", true, authres.ResultPass, "", "reject", ""},
		{"SPF relaxed alignment", "a@bounce.reject.test", "a@reject.test", "", true, authres.ResultPass, "", "reject", ""},
		{"DKIM aligned pass", "a@nospf.test", "a@reject.test", "reject.test", true, authres.ResultPass, "", "reject", ""},
		{"SPF pass not aligned, reject", "a@pass.test", "a@reject.test", "", true, authres.ResultFail, "reject", "reject", "reject"},
		{"DKIM pass not aligned, reject", "a@nospf.test", "a@reject.test", "signed.test", true, authres.ResultFail, "reject", "reject", "reject"},
		{"quarantine", "a@pass.test", "a@quarantine.test", "", true, authres.ResultFail, "quarantine", "quarantine", "quarantine"},
		{"p=none", "a@pass.test", "a@monitor.test", "", true, authres.ResultFail, "none", "none", ""},
		{"no record", "a@pass.test", "a@nospf.test", "", true, authres.ResultNone, "", "", ""},
		{"pct sampled", "a@pass.test", "a@pct.test", "", true, authres.ResultFail, "reject", "reject", "reject"},
		{"pct not sampled", "a@pass.test", "a@pct.test", "", false, authres.ResultFail, "quarantine", "reject", "quarantine"},
		{"organisational record, p", "a@pass.test", "a@org.test", "", true, authres.ResultFail, "reject", "reject", "reject"},
		{"subdomain takes sp", "a@pass.test", "a@sub.org.test", "", true, authres.ResultFail, "quarantine", "quarantine", "quarantine"},
		{"subdomain with its own record", "a@pass.test", "a@own.org.test", "", true, authres.ResultFail, "none", "none", ""},
		{"strict SPF not aligned", "a@bounce.strict.test", "a@strict.test", "", true, authres.ResultFail, "reject", "reject", "reject"},
		{"strict DKIM not aligned", "a@nospf.test", "a@strict.test", "mail.strict.test", true, authres.ResultFail, "reject", "reject", "reject"},
		{"strict DKIM aligned", "a@nospf.test", "a@strict.test", "strict.test", true, authres.ResultPass, "", "reject", ""},
		{"public suffix: same organisation", "a@nospf.test", "a@news.example.co.uk", "example.co.uk", true, authres.ResultPass, "", "reject", ""},
		{"public suffix: other organisation", "a@nospf.test", "a@example.co.uk", "other.co.uk", true, authres.ResultFail, "reject", "reject", "reject"},
		{"record lookup fails", "a@pass.test", "a@temp.test", "", true, authres.ResultTempError, "", "", ""},
		{"aligned SPF check fails", "a@tempspf.test", "a@tempspf.test", "", true, authres.ResultTempError, "", "reject", ""},
		{"invalid record", "a@pass.test", "a@bad.test", "", true, authres.ResultPermError, "", "", ""},
		{"display name and case", "a@reject.test", `"Someone" <A@Reject.TEST>`, "", true, authres.ResultPass, "", "reject", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testChecker(t)
			c.sample = func(pct int) bool {
				if pct != 50 {
					t.Errorf("sampled with pct %d, want 50", pct)
				}
				return tt.sample
			}
			msg := message(tt.from)
			if tt.signFor != "" {
				msg = sign(t, msg, tt.signFor)
			}
			res := check(c, Envelope{IP: client, Helo: "x.test", MailFrom: tt.mailFrom}, msg)
			if len(res.DMARC) != 1 {
				t.Fatalf("DMARC results %+v, want one", res.DMARC)
			}
			d := res.DMARC[0]
			if d.Value != tt.want || d.Policy != tt.policy || d.Published != tt.published || res.Policy() != tt.wantPolicy {
				t.Errorf("DMARC %+v (policy %q), want %s with policy %q published %q (policy %q)", d, res.Policy(), tt.want, tt.policy, tt.published, tt.wantPolicy)
			}
			if res.DMARCPass() != (tt.want == authres.ResultPass) {
				t.Errorf("DMARCPass() = %v for %+v", res.DMARCPass(), d)
			}
		})
	}
}

func TestDMARCSeveralFromDomains(t *testing.T) {
	c := testChecker(t)
	// Adding an address of a domain without policy does not escape the
	// other domain's reject, nor does a From field that does not parse.
	for _, from := range []string{"a@nospf.test, b@reject.test", "a@nospf.test\r\nFrom: b@reject.test", "<b@reject.test> (unclosed"} {
		res := check(c, Envelope{IP: client, Helo: "x.test", MailFrom: "a@pass.test"}, message(from))
		if res.Policy() != dmarc.PolicyReject {
			t.Errorf("From: %q: policy %q (%+v), want reject", from, res.Policy(), res.DMARC)
		}
	}
	res := check(c, Envelope{IP: client, Helo: "x.test", MailFrom: "a@pass.test"}, "Subject: no From\r\n\r\nx\r\n")
	if len(res.DMARC) != 0 || res.Policy() != "" || res.DMARCPass() {
		t.Errorf("no From: DMARC %+v", res.DMARC)
	}
}

func TestOrganizationalDomain(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"example.org", "example.org"},
		{"a.b.example.org", "example.org"},
		{"Mail.Example.co.uk.", "example.co.uk"},
		{"co.uk", "co.uk"},
		{"x.sub.test", "sub.test"},
		{"localhost", "localhost"},
	} {
		if got := OrganizationalDomain(tt.in); got != tt.want {
			t.Errorf("OrganizationalDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestField(t *testing.T) {
	r := &Result{
		SPF:   SPFResult{Value: authres.ResultPass, Domain: "example.com", MailFrom: "alice@example.com"},
		DKIM:  []DKIMResult{{Value: authres.ResultPass, Domain: "example.com", Identifier: "@example.com"}, {Value: authres.ResultFail, Domain: "x.test", Reason: `bad "sig"; \`}},
		DMARC: []DMARCResult{{Value: authres.ResultFail, Domain: "example.com", Published: "reject", Policy: "quarantine"}},
	}
	want := "Authentication-Results: mx.example.org;\r\n" +
		"\tspf=pass smtp.mailfrom=alice@example.com;\r\n" +
		"\tdkim=pass header.d=example.com header.i=@example.com;\r\n" +
		"\tdkim=fail reason=\"bad 'sig', '\" header.d=x.test;\r\n" +
		"\tdmarc=fail (p=reject applied=quarantine) header.from=example.com\r\n"
	if got := r.Field("mx.example.org"); got != want {
		t.Errorf("Field:\n%s\nwant:\n%s", got, want)
	}
	null := &Result{SPF: SPFResult{Value: authres.ResultNone, Helo: "[192.0.2.1]"}}
	want = "Authentication-Results: mx.example.org;\r\n\tspf=none;\r\n\tdkim=none;\r\n\tdmarc=none reason=\"no From domain\"\r\n"
	if got := null.Field("mx.example.org"); got != want {
		t.Errorf("Field:\n%s\nwant:\n%s", got, want)
	}
}

// The field a real check writes parses back with go-msgauth's parser to
// the same results.
func TestFieldParses(t *testing.T) {
	c := testChecker(t)
	msg := sign(t, message("a@reject.test"), "reject.test")
	res := check(c, Envelope{IP: client, Helo: "x.test", MailFrom: "a@pass.test"}, msg)
	field := res.Field("mx.example.org")
	h := mailheader.ParseHeader([]byte(field + "\r\n"))
	if len(h.Fields) != 1 || !h.Fields[0].Is(FieldName) {
		t.Fatalf("Field %q is not one header field", field)
	}
	id, results, err := authres.Parse(h.Fields[0].Value())
	if err != nil || id != "mx.example.org" || len(results) != 3 {
		t.Fatalf("authres.Parse(%q) = %q, %d results, %v", h.Fields[0].Value(), id, len(results), err)
	}
	spfRes, ok1 := results[0].(*authres.SPFResult)
	dkimRes, ok2 := results[1].(*authres.DKIMResult)
	dmarcRes, ok3 := results[2].(*authres.DMARCResult)
	if !ok1 || !ok2 || !ok3 || spfRes.Value != authres.ResultPass || spfRes.From != "a@pass.test" ||
		dkimRes.Value != authres.ResultPass || dkimRes.Domain != "reject.test" ||
		dmarcRes.Value != authres.ResultPass || dmarcRes.From != "reject.test" {
		t.Errorf("parsed %+v %+v %+v from %q", results[0], results[1], results[2], field)
	}
}
