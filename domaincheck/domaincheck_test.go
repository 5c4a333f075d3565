package domaincheck

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/dkimsign"
	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/selfsigned"
)

// setup makes a root for example.org served by mail.example.org at
// 127.0.0.2, with DKIM keys and a certificate, and a test DNS server that
// publishes what Records proposes.
func setup(t *testing.T) (*Config, *dnstest.Server, []string) {
	t.Helper()
	root := control.Root(t.TempDir())
	if _, _, err := dkimsign.Generate(root, "example.org", false); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.Generate([]string{"mail.example.org"}, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(root.Etc("tls"), 0o700)
	os.WriteFile(root.Etc("tls/cert.pem"), certPEM, 0o600)
	os.WriteFile(root.Etc("tls/key.pem"), keyPEM, 0o600)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	cfg := &Config{Root: root, Domain: "example.org", Hostname: "mail.example.org", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")},
		DNSBLs: []string{"zen.test"}, RootCAs: pool, Now: time.Now()}
	dns := dnstest.Start(t)
	cfg.Resolver = dnsquery.New(mx.NewResolver(dns.Addr))
	recs, notes, err := Records(context.Background(), cfg)
	if err != nil || len(notes) != 0 {
		t.Fatalf("Records = %v, %v", notes, err)
	}
	var zone []string
	for _, r := range recs {
		if !r.Optional {
			zone = append(zone, r.String())
		}
	}
	dns.Set(t, zone...)
	cfg.Addrs = nil // from DNS from now on
	return cfg, dns, zone
}

func problems(fs []Finding) string {
	var s []string
	for _, f := range fs {
		if !f.OK {
			s = append(s, fmt.Sprintf("%s: %s [fix: %s]", f.Check, f.Text, f.Fix))
		}
	}
	return strings.Join(s, "\n")
}

func TestCheck(t *testing.T) {
	cfg, dns, zone := setup(t)
	ctx := context.Background()
	all := Check(ctx, cfg)
	if p := problems(all); p != "" {
		t.Fatalf("good setup: problems:\n%s", p)
	}
	checks := map[string]bool{}
	for _, f := range all {
		checks[f.Check] = true
	}
	for _, c := range []string{"mx", "address", "ptr", "spf", "dkim", "dmarc", "mta-sts", "tls", "dnsbl"} {
		if !checks[c] {
			t.Errorf("no finding of check %s", c)
		}
	}

	without := func(drop string, add ...string) []string {
		var out []string
		for _, r := range zone {
			if !strings.Contains(r, drop) {
				out = append(out, r)
			}
		}
		return slices.Concat(out, add)
	}
	otherKeys, _, err := dkimsign.Generate(control.Root(t.TempDir()), "example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := dkimsign.Load(cfg.Root, "example.org")
	wrongDKIM := Record{Name: keys[0].RecordName(), Type: "TXT", Value: quoteTXT(otherKeys[0].Record())}.String()
	for _, tc := range []struct {
		name string
		zone []string
		now  time.Duration
		want []string // substrings of the problems, in order
	}{
		{"missing SPF", without("v=spf1"), 0, []string{`spf: example.org has no SPF record`, `fix: publish  example.org.	3600	IN	TXT	"v=spf1 mx -all"`}},
		{"SPF without this server", without("v=spf1", `example.org. 3600 IN TXT "v=spf1 ip4:192.0.2.1 -all"`), 0, []string{"gives fail for this server's address 127.0.0.2"}},
		{"wrong DKIM key", without(keys[0].RecordName(), wrongDKIM), 0, []string{"holds another key than " + keys[0].Path, "replace it:  " + keys[0].RecordName()}},
		{"missing DKIM", without(keys[1].RecordName()), 0, []string{"no DKIM record at " + keys[1].RecordName()}},
		{"expired certificate", zone, 31 * 24 * time.Hour, []string{"tls: the certificate expired on", "renew it"}},
		{"certificate expires soon", zone, 20 * 24 * time.Hour, []string{"tls: the certificate expires on", "renew it now"}},
		{"listed", slices.Concat(zone, []string{"2.0.0.127.zen.test. A 127.0.0.2"}), 0, []string{"dnsbl: 127.0.0.2 is listed on zen.test"}},
		{"no MX", without("\tMX\t"), 0, []string{"mx: example.org has no MX record"}},
		{"no PTR", without("\tPTR\t"), 0, []string{"ptr: 127.0.0.2 has no PTR record", "2.0.0.127.in-addr.arpa."}},
		{"no DMARC", without("_dmarc"), 0, []string{"dmarc: _dmarc.example.org has 0 DMARC records"}},
		{"MTA-STS unusable", slices.Concat(zone, []string{`_mta-sts.example.org. TXT "v=STSv1; id=a" "b-"`}), 0, []string{"mta-sts: the _mta-sts.example.org record is not usable"}},
	} {
		dns.Set(t, tc.zone...)
		c := *cfg
		c.Now = cfg.Now.Add(tc.now)
		p := problems(Check(ctx, &c))
		rest := p
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: problems\n%s\nwant %q", tc.name, p, w)
				break
			}
			rest = rest[i+len(w):]
		}
		if n := strings.Count(p, "\n") + 1; p == "" || n > 2 {
			t.Errorf("%s: %d problems, want 1 or 2:\n%s", tc.name, n, p)
		}
	}
}

func TestQuoteTXT(t *testing.T) {
	long := strings.Repeat("a", 300)
	if got := quoteTXT(long); got != `"`+long[:255]+`" "`+long[255:]+`"` {
		t.Errorf("quoteTXT of 300 bytes = %s", got)
	}
	if got := quoteTXT(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("quoteTXT = %s", got)
	}
}

func TestLoad(t *testing.T) {
	root := control.Root(t.TempDir())
	os.MkdirAll(root.Etc(""), 0o700)
	os.WriteFile(filepath.Join(root.Etc("check-dnsbls")), []byte("# lists\nbl.test\n"), 0o600)
	cfg, err := Load(root, "example.org", "Mail.Example.org.", []string{"::ffff:192.0.2.1"}, "127.0.0.1:53")
	if err != nil || cfg.Hostname != "mail.example.org" || cfg.Addrs[0] != netip.MustParseAddr("192.0.2.1") || fmt.Sprint(cfg.DNSBLs) != "[bl.test]" || cfg.MTASTSPort != 443 {
		t.Errorf("Load = %+v, %v", cfg, err)
	}
	if _, err := Load(root, "example.org", "h", []string{"not-an-ip"}, ""); err == nil {
		t.Error("Load with a bad --address succeeded")
	}
}
