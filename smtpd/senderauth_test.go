package smtpd

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postkit/postkit/mx/dnstest"
)

var dkimKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))

// authDNS serves SPF, DKIM and DMARC records for the test domains, and
// lists 127.0.0.1 in bl.test.
func authDNS(t *testing.T) *dnstest.Server {
	t.Helper()
	pub := base64.StdEncoding.EncodeToString(dkimKey.Public().(ed25519.PublicKey))
	return dnstest.Start(t,
		`pass.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.reject.test. TXT "v=DMARC1; p=reject"`,
		`_dmarc.quarantine.test. TXT "v=DMARC1; p=quarantine"`,
		`fail.test. TXT "v=spf1 -all"`,
		fmt.Sprintf(`sel._domainkey.reject.test. TXT "v=DKIM1; k=ed25519; p=%s"`, pub),
		"1.0.0.127.bl.test. A 127.0.0.2",
		`1.0.0.127.bl.test. TXT "Listed for testing"`,
	)
}

func withDNS(srv *dnstest.Server) serverOption {
	return withConfig(func(c *Config) { c.DNS = srv.Addr })
}

func authMessage(from string) string {
	return "From: " + from + "\r\nTo: alice@example.org\r\nSubject: auth\r\n\r\nHello.\r\n"
}

func dkimSign(t *testing.T, msg, domain string) string {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: dkimKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sendMX sends msg from mailFrom to alice in MX mode and returns the final
// reply.
func sendMX(ts *testServer, mailFrom, msg string) (int, string) {
	c := ts.dial()
	c.mx(mailFrom, "alice@example.org")
	code, text := c.message(msg)
	c.cmd("QUIT", 221)
	return code, text
}

func TestSenderAuthPolicies(t *testing.T) {
	dns := authDNS(t)
	tests := []struct {
		name     string
		etc      map[string]string
		mailFrom string
		msg      string
		code     int
		enhanced string // of a refusal
		junk     string
		field    []string // in the Authentication-Results field
	}{
		{"DMARC reject refused", nil, "a@pass.test", authMessage("a@reject.test"), 550, "5.7.1", "",
			nil},
		{"DMARC reject to Junk", map[string]string{"dmarc-reject": "junk\n"}, "a@pass.test", authMessage("a@reject.test"), 250, "", "dmarc",
			[]string{"spf=pass smtp.mailfrom=a@pass.test", "dkim=none", "dmarc=fail (p=reject) header.from=reject.test"}},
		{"DMARC quarantine", nil, "a@pass.test", authMessage("a@quarantine.test"), 250, "", "dmarc",
			[]string{"dmarc=fail (p=quarantine) header.from=quarantine.test"}},
		{"DMARC pass through DKIM", nil, "a@pass.test", dkimSign(t, authMessage("a@reject.test"), "reject.test"), 250, "", "",
			[]string{"dkim=pass header.d=reject.test", "dmarc=pass (p=reject) header.from=reject.test"}},
		{"SPF fail accepted by default", nil, "a@fail.test", authMessage("a@fail.test"), 250, "", "",
			[]string{"spf=fail smtp.mailfrom=a@fail.test", "dmarc=none header.from=fail.test"}},
		{"SPF fail refused", map[string]string{"spf-fail": "refuse"}, "a@fail.test", authMessage("a@fail.test"), 550, "5.7.23", "",
			nil},
		{"SPF fail to Junk", map[string]string{"spf-fail": "Junk"}, "a@fail.test", authMessage("a@fail.test"), 250, "", "spf",
			[]string{"spf=fail"}},
		{"SPF fail but DMARC pass", map[string]string{"spf-fail": "refuse"}, "a@fail.test", dkimSign(t, authMessage("a@reject.test"), "reject.test"), 250, "", "",
			[]string{"spf=fail", "dmarc=pass"}},
		{"unknown choice means the default", map[string]string{"dmarc-reject": "bounce"}, "a@pass.test", authMessage("a@reject.test"), 550, "5.7.1", "",
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, withDNS(dns))
			for name, content := range tt.etc {
				writeEtc(t, ts.root, name, content)
			}
			code, text := sendMX(ts, tt.mailFrom, tt.msg)
			if code != tt.code || tt.enhanced != "" && !strings.HasPrefix(text, tt.enhanced+" ") {
				t.Fatalf("end of data: %d %q, want %d %s", code, text, tt.code, tt.enhanced)
			}
			envs, msgs := ts.queued()
			if code != 250 {
				if len(envs) != 0 {
					t.Errorf("refused message is in the spool")
				}
				ts.waitLog("refused conn=")
				return
			}
			if len(envs) != 1 || envs[0].Junk != tt.junk {
				t.Fatalf("spool %+v, want one entry with junk %q", envs, tt.junk)
			}
			field := authResults(t, msgs[0])
			for _, want := range tt.field {
				if !strings.Contains(field, want) {
					t.Errorf("Authentication-Results %q lacks %q", field, want)
				}
			}
			if !strings.HasSuffix(msgs[0], "\r\n"+tt.msg) {
				t.Errorf("stored message does not end with the message sent:\n%s", msgs[0])
			}
			ts.waitLog("checked conn=")
		})
	}
}

// authResults returns the Authentication-Results fields of msg that the
// server added: the field right after its Received field.
func authResults(t *testing.T, msg string) string {
	t.Helper()
	i := strings.Index(msg, "\r\nAuthentication-Results: "+testHostname+";\r\n")
	received := strings.Index(msg, "Received: ")
	if i < 0 || received != 0 {
		t.Fatalf("no Authentication-Results field of ours after the Received field:\n%s", msg)
	}
	field := msg[i+2:]
	end := strings.Index(field, "\r\n")
	for end >= 0 && end+2 < len(field) && (field[end+2] == '\t' || field[end+2] == ' ') {
		next := strings.Index(field[end+2:], "\r\n")
		if next < 0 {
			break
		}
		end += 2 + next
	}
	field = field[:end]
	if n := strings.Count(msg, "Authentication-Results: "+testHostname); n != 1 {
		t.Errorf("%d Authentication-Results fields of ours, want 1:\n%s", n, msg)
	}
	return field
}

func TestForgedAuthResultsStripped(t *testing.T) {
	dns := authDNS(t)
	forged := "Authentication-Results: " + testHostname + "; spf=pass smtp.mailfrom=boss@example.org\r\n" +
		"Authentication-Results: (x) \"MX.EXAMPLE.ORG\"; dmarc=pass header.from=example.org\r\n" +
		"Authentication-Results: other.example; spf=pass smtp.mailfrom=a@pass.test\r\n"
	msg := forged + authMessage("a@pass.test")
	wantKept := "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@pass.test\r\n" + authMessage("a@pass.test")

	t.Run("MX", func(t *testing.T) {
		ts := startServer(t, withDNS(dns))
		if code, text := sendMX(ts, "a@pass.test", msg); code != 250 {
			t.Fatalf("end of data: %d %q", code, text)
		}
		_, msgs := ts.queued()
		field := authResults(t, msgs[0])
		if !strings.Contains(field, "spf=pass smtp.mailfrom=a@pass.test") || strings.Contains(msgs[0], "boss@") || strings.Contains(msgs[0], `"MX.EXAMPLE.ORG"`) {
			t.Errorf("stored message:\n%s", msgs[0])
		}
		if !strings.HasSuffix(msgs[0], "\r\n"+wantKept) {
			t.Errorf("stored message does not end with the foreign field and the message:\n%s", msgs[0])
		}
		if l := ts.waitLog("stripped conn="); !strings.Contains(l, "count=2") {
			t.Errorf("log line %q", l)
		}
	})
	t.Run("authenticated", func(t *testing.T) {
		ts := startServer(t, withDNS(dns), submission)
		c := ts.dial()
		c.cmd("EHLO client.test", 250)
		c.startTLS()
		c.cmd("EHLO client.test", 250)
		c.authPlain("alice@example.org", alicePassword, 235)
		c.cmd("MAIL FROM:<alice@example.org>", 250)
		c.cmd("RCPT TO:<someone@pass.test>", 250)
		if code, text := c.message(forged + authMessage("alice@example.org")); code != 250 {
			t.Fatalf("end of data: %d %q", code, text)
		}
		_, msgs := ts.queued()
		if strings.Contains(msgs[0], "Authentication-Results: "+testHostname) || strings.Contains(msgs[0], `"MX.EXAMPLE.ORG"`) ||
			!strings.Contains(msgs[0], "Authentication-Results: other.example;") {
			t.Errorf("stored message (authenticated users get no field, and lose forged ones):\n%s", msgs[0])
		}
	})
}

func TestRelayClientsAreNotChecked(t *testing.T) {
	ts := startServer(t, withDNS(authDNS(t)))
	writeEtc(t, ts.root, "relay-clients", "127.0.0.1\n")
	writeEtc(t, ts.root, "dnsbl-zones", "bl.test\n")
	if code, text := sendMX(ts, "a@pass.test", authMessage("a@reject.test")); code != 250 {
		t.Fatalf("end of data: %d %q, want 250: relay clients are trusted", code, text)
	}
	_, msgs := ts.queued()
	if strings.Contains(msgs[0], "Authentication-Results:") {
		t.Errorf("message of a relay client got a field:\n%s", msgs[0])
	}
}

func TestDNSBL(t *testing.T) {
	dns := authDNS(t)
	t.Run("listed", func(t *testing.T) {
		ts := startServer(t, withDNS(dns))
		writeEtc(t, ts.root, "dnsbl-zones", "# spam lists\nclean.test\nbad zone\nbl.test\n")
		c := ts.dial()
		c.cmd("EHLO client.test", 250)
		text := c.cmd("MAIL FROM:<a@pass.test>", 554)
		if want := "5.7.1 Service refused: 127.0.0.1 is listed in bl.test: Listed for testing"; text != want {
			t.Errorf("MAIL refused with %q, want %q", text, want)
		}
		c.cmd("QUIT", 221)
		ts.waitLog("dnsbl-listed conn=")
		ts.waitLog("reason=dnsbl zone=bl.test")
		ts.waitLog(`value="bad zone" error="is no DNS zone; skipped"`)
	})
	t.Run("authenticated users pass", func(t *testing.T) {
		ts := startServer(t, withDNS(dns))
		writeEtc(t, ts.root, "dnsbl-zones", "bl.test\n")
		c := ts.dial()
		c.cmd("EHLO client.test", 250)
		c.startTLS()
		c.cmd("EHLO client.test", 250)
		c.authPlain("alice@example.org", alicePassword, 235)
		c.cmd("MAIL FROM:<alice@example.org>", 250)
		c.cmd("RCPT TO:<bob@example.org>", 250)
		if code, text := c.message(authMessage("alice@example.org")); code != 250 {
			t.Errorf("end of data: %d %q", code, text)
		}
	})
	t.Run("not listed", func(t *testing.T) {
		ts := startServer(t, withDNS(dns))
		writeEtc(t, ts.root, "dnsbl-zones", "clean.test\n")
		if code, text := sendMX(ts, "a@pass.test", authMessage("a@pass.test")); code != 250 {
			t.Errorf("end of data: %d %q", code, text)
		}
	})
}

// A message over memoryLimit is checked from its temporary file and stored
// whole.
func TestLargeMessageChecked(t *testing.T) {
	ts := startServer(t, withDNS(authDNS(t)))
	line := strings.Repeat("0123456789", 10) + "\r\n"
	msg := dkimSign(t, authMessage("a@reject.test")+strings.Repeat(line, 2*memoryLimit/len(line)), "reject.test")
	if code, text := sendMX(ts, "a@pass.test", msg); code != 250 {
		t.Fatalf("end of data: %d %q", code, text)
	}
	_, msgs := ts.queued()
	if field := authResults(t, msgs[0]); !strings.Contains(field, "dkim=pass header.d=reject.test") {
		t.Errorf("Authentication-Results %q: no DKIM pass", field)
	}
	if !strings.HasSuffix(msgs[0], "\r\n"+msg) {
		t.Errorf("stored message of %d bytes does not end with the %d sent", len(msgs[0]), len(msg))
	}
}

func TestHeaderTooLarge(t *testing.T) {
	ts := startServer(t)
	field := "X-Big: " + strings.Repeat("x", 900) + "\r\n"
	msg := strings.Repeat(field, maxHeaderBytes/len(field)+1) + "\r\nbody\r\n"
	c := ts.dial()
	c.mx("a@pass.test", "alice@example.org")
	if code, text := c.message(msg); code != 552 || !strings.HasPrefix(text, "5.3.4 ") {
		t.Errorf("end of data: %d %q, want 552 5.3.4", code, text)
	}
	c.cmd("NOOP", 250)
	if envs, _ := ts.queued(); len(envs) != 0 {
		t.Errorf("spool has %d entries", len(envs))
	}
}
