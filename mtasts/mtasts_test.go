package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postkit/postkit/dnsquery"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
	"github.com/postkit/postkit/selfsigned"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Policy
	}{
		{"rfc example", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			&Policy{Enforce, []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, 604800 * time.Second}},
		{"lf, blanks, extension, case", "version: STSv1\nmode:testing \nmx: MX.Example.COM.\nx-ext: 1\n\nmax_age: 0\n",
			&Policy{Testing, []string{"mx.example.com"}, 0}},
		{"none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n", &Policy{None, nil, 86400 * time.Second}},
		{"max max_age", "version: STSv1\nmode: none\nmax_age: 31557600\n", &Policy{None, nil, MaxMaxAge}},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", nil},
		{"bad version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", nil},
		{"bad mode", "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", nil},
		{"no mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", nil},
		{"max_age too big", "version: STSv1\nmode: none\nmax_age: 31557601\n", nil},
		{"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n", nil},
		{"max_age plus", "version: STSv1\nmode: none\nmax_age: +1\n", nil},
		{"two modes", "version: STSv1\nmode: none\nmode: enforce\nmax_age: 1\n", nil},
		{"no colon", "version: STSv1\nmode enforce\n", nil},
		{"bad pattern", "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", nil},
		{"too big", "version: STSv1\n" + strings.Repeat("x: y\n", MaxPolicySize/5+1), nil},
	} {
		got, err := ParsePolicy([]byte(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: ParsePolicy = %+v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got.Mode != tc.want.Mode || !slices.Equal(got.MX, tc.want.MX) || got.MaxAge != tc.want.MaxAge {
			t.Errorf("%s: ParsePolicy = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net"}}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"mail.example.com", true}, {"MAIL.example.com.", true}, {"mx1.example.net", true},
		{"example.net", false}, {"a.mx1.example.net", false}, {"other.example.com", false},
		{"mail.example.com.evil.test", false}, {".example.net", false},
	} {
		if got := p.Match(tc.host); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestRecordID(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z"},
		{[]string{"v=STSv1;id=abc", "v=spf1 -all"}, "abc"},
		{[]string{"v=STSv1; id=abc; ext=1"}, "abc"},
		{[]string{"v=STSv1; id=a", "v=STSv1; id=b"}, ""},
		{[]string{"v=STSv1; id=bad-id"}, ""},
		{[]string{"v=STSv1; id="}, ""},
		{[]string{"v=STSv1; id=" + strings.Repeat("a", 33)}, ""},
		{[]string{"v=STSv1; ext=1"}, ""},
		{[]string{"v=STSv1; id=a; id=b"}, ""},
		{[]string{"v=STSv1 ; id=a"}, ""},
		{nil, ""},
	} {
		got, err := RecordID(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("RecordID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// policyServer is an HTTPS server on loopback for mta-sts.example.org.
type policyServer struct {
	mu       sync.Mutex
	body     string
	ctype    string
	status   int
	requests int
	port     int
	pool     *x509.CertPool
}

func startPolicyServer(t *testing.T, names ...string) *policyServer {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate(names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{ctype: "text/plain; charset=utf-8", status: 200, pool: x509.NewCertPool()}
	ps.pool.AppendCertsFromPEM(certPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		ps.requests++
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.org" {
			http.NotFound(w, r)
			return
		}
		if ps.status == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", ps.ctype)
		w.WriteHeader(ps.status)
		w.Write([]byte(ps.body))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ps.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return ps
}

func (ps *policyServer) set(body string) {
	ps.mu.Lock()
	ps.body = body
	ps.mu.Unlock()
}

func (ps *policyServer) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.requests
}

const enforcePolicy = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 3600\n"

func TestFetcher(t *testing.T) {
	ps := startPolicyServer(t, "mta-sts.example.org")
	ps.set(enforcePolicy)
	dns := dnstest.Start(t, `_mta-sts.example.org. TXT "v=STSv1; id=one;"`, `mta-sts.example.org. A 127.0.0.1`)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f := &Fetcher{
		Resolver: dnsquery.New(mx.NewResolver(dns.Addr)),
		CacheDir: t.TempDir(),
		RootCAs:  ps.pool,
		Port:     ps.port,
		Now:      func() time.Time { return now },
	}
	ctx := context.Background()
	r := f.Policy(ctx, "Example.ORG")
	if r.Policy == nil || r.Policy.Mode != Enforce || !r.Fetched || r.ID != "one" || r.Note != "" || ps.count() != 1 {
		t.Fatalf("first Policy = %+v, want enforce, fetched", r)
	}
	cache, err := os.ReadFile(filepath.Join(f.CacheDir, "example.org"))
	if want := "id one\nfetched 2026-11-22T10:00:00Z\n\n" + enforcePolicy; err != nil || string(cache) != want {
		t.Errorf("cache file = %q, %v; want %q", cache, err, want)
	}

	step := func(name string, wantMode Mode, wantFetched bool, wantRequests int, wantNote string) {
		t.Helper()
		r := f.Policy(ctx, "example.org")
		mode := None
		if r.Policy != nil {
			mode = r.Policy.Mode
		}
		if mode != wantMode || r.Fetched != wantFetched || ps.count() != wantRequests || !strings.Contains(r.Note, wantNote) {
			t.Errorf("%s: Policy = %+v (mode %s), %d requests; want %s, fetched %v, %d requests, note with %q",
				name, r, mode, ps.count(), wantMode, wantFetched, wantRequests, wantNote)
		}
	}
	step("same id: from the cache", Enforce, false, 1, "")
	ps.set(strings.Replace(enforcePolicy, "enforce", "testing", 1))
	dns.Set(t, `_mta-sts.example.org. TXT "v=STSv1; id=two;"`, `mta-sts.example.org. A 127.0.0.1`)
	step("new id: fetched", Testing, true, 2, "")
	dns.Set(t, `mta-sts.example.org. A 127.0.0.1`)
	step("record gone: cached", Testing, false, 2, "")
	dns.ServFail("_mta-sts.example.org")
	step("lookup fails: cached", Testing, false, 2, "")
	now = now.Add(2 * time.Hour)
	step("expired, lookup fails: none", None, false, 2, "SERVFAIL")

	dns = dnstest.Start(t, `_mta-sts.example.org. TXT "v=STSv1; id=three;"`, `mta-sts.example.org. A 127.0.0.1`)
	f.Resolver = dnsquery.New(mx.NewResolver(dns.Addr))
	ps.set(enforcePolicy)
	step("fetched again", Enforce, true, 3, "")
	dns.Set(t, `_mta-sts.example.org. TXT "v=STSv1; id=four;"`, `mta-sts.example.org. A 127.0.0.1`)
	ps.set("garbage")
	step("bad new policy: cached one stays", Enforce, false, 4, "using the cached policy three")
	ps.set(strings.Replace(enforcePolicy, "enforce", "none", 1))
	step("mode none", None, true, 5, "")

	// Without a cache: failures mean no policy, with a note.
	for _, tc := range []struct {
		name  string
		setup func()
		note  string
	}{
		{"redirect", func() { ps.status = http.StatusFound }, "302"},
		{"not found", func() { ps.status = http.StatusNotFound }, "404"},
		{"media type", func() { ps.ctype = "text/html" }, "text/plain"},
		{"untrusted certificate", func() { f.RootCAs = x509.NewCertPool() }, "certificate"},
	} {
		os.RemoveAll(f.CacheDir)
		ps.set(enforcePolicy)
		ps.mu.Lock()
		ps.status, ps.ctype = 200, "text/plain"
		tc.setup()
		ps.mu.Unlock()
		r := f.Policy(ctx, "example.org")
		if r.Policy != nil || !strings.Contains(r.Note, tc.note) || !strings.Contains(r.Note, "no cached policy") {
			t.Errorf("%s: Policy = %+v, want none with a note on %q", tc.name, r, tc.note)
		}
		f.RootCAs = ps.pool
	}
}

func TestFetcherChecksCertificateName(t *testing.T) {
	ps := startPolicyServer(t, "mta-sts.other.example")
	ps.set(enforcePolicy)
	dns := dnstest.Start(t, `_mta-sts.example.org. TXT "v=STSv1; id=one;"`, `mta-sts.example.org. A 127.0.0.1`)
	f := &Fetcher{Resolver: dnsquery.New(mx.NewResolver(dns.Addr)), CacheDir: t.TempDir(), RootCAs: ps.pool, Port: ps.port}
	if r := f.Policy(context.Background(), "example.org"); r.Policy != nil || !strings.Contains(r.Note, "mta-sts.example.org") {
		t.Errorf("Policy with a certificate for another name = %+v, want none", r)
	}
}

func TestParseCache(t *testing.T) {
	for _, bad := range []string{"", "id one\n", "id one\nfetched x\n\n" + enforcePolicy, "id b-d\nfetched 2026-11-22T10:00:00Z\n\n" + enforcePolicy,
		"id one\nfetched 2026-11-22T10:00:00Z\nmore x\n\n" + enforcePolicy, "id one\nfetched 2026-11-22T10:00:00Z\n\nmode: x\n"} {
		if c, err := parseCache([]byte(bad)); err == nil {
			t.Errorf("parseCache(%q) = %+v, want an error", bad, c)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(enforcePolicy))
	f.Add([]byte("version: STSv1\r\nmode: none\r\nmax_age: 1\r\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.a.example\nmax_age: 31557600\nx: y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge || (p.Mode != None && len(p.MX) == 0) {
			t.Errorf("ParsePolicy(%q) = %+v", data, p)
		}
		for _, m := range p.MX {
			p.Match(m)
		}
	})
}

func FuzzRecordID(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;x=y")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseRecord(s)
		if err == nil && (id == "" || len(id) > 32) {
			t.Errorf("ParseRecord(%q) = %q", s, id)
		}
	})
}

func FuzzParseCache(f *testing.F) {
	f.Add([]byte("id one\nfetched 2026-11-22T10:00:00Z\n\n" + enforcePolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCache(data)
		if err == nil && (c.id == "" || c.policy == nil) {
			t.Errorf("parseCache(%q) = %+v", data, c)
		}
	})
}
