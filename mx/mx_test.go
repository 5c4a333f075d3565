package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/mx/dnstest"
)

func names(hosts []Host) string {
	var s []string
	for _, h := range hosts {
		s = append(s, fmt.Sprintf("%d:%s", h.Preference, h.Name))
	}
	return strings.Join(s, " ")
}

func TestHosts(t *testing.T) {
	srv := dnstest.Start(t,
		"ordered.test. MX 20 b.ordered.test.",
		"ordered.test. MX 10 A.ordered.test.",
		"ordered.test. MX 30 c.ordered.test.",
		"implicit.test. A 127.0.0.1",
		"implicit6.test. AAAA ::1",
		"null.test. MX 0 .",
		"nullmixed.test. MX 0 .",
		"nullmixed.test. MX 10 mx.nullmixed.test.",
		"noaddr.test. TXT \"v=spf1 -all\"",
	)
	srv.ServFail("broken.test")
	r := NewResolver(srv.Addr)
	tests := []struct {
		domain string
		want   string // hosts, or "error: " and a substring
		perm   bool
	}{
		{"ordered.test", "10:a.ordered.test 20:b.ordered.test 30:c.ordered.test", false},
		{"implicit.test", "0:implicit.test", false},
		{"implicit6.test", "0:implicit6.test", false},
		{"null.test", "error: null MX", true},
		{"nullmixed.test", "10:mx.nullmixed.test", false},
		{"noaddr.test", "error: no IPv6 or IPv4", true},
		{"nxdomain.test", "error: NXDOMAIN", true},
		{"broken.test", "error: SERVFAIL", false},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			hosts, err := r.Hosts(context.Background(), tt.domain)
			if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) || Permanent(err) != tt.perm {
					t.Errorf("Hosts(%q) = %v, %v; want an error with %q, permanent %v", tt.domain, names(hosts), err, want, tt.perm)
				}
				return
			}
			if err != nil || names(hosts) != tt.want {
				t.Errorf("Hosts(%q) = %q, %v; want %q", tt.domain, names(hosts), err, tt.want)
			}
			if implicit := strings.HasPrefix(tt.domain, "implicit"); len(hosts) > 0 && hosts[0].Implicit != implicit {
				t.Errorf("Hosts(%q)[0].Implicit = %v, want %v", tt.domain, hosts[0].Implicit, implicit)
			}
		})
	}
	if !errors.Is(func() error { _, err := r.Hosts(context.Background(), "null.test"); return err }(), ErrNullMX) {
		t.Error("null MX error does not wrap ErrNullMX")
	}
}

// TestEqualPreferenceIsShuffled checks RFC 5321 §5.1's load spreading: both
// hosts of equal preference come first sometimes, and the less preferred
// host never does.
func TestEqualPreferenceIsShuffled(t *testing.T) {
	srv := dnstest.Start(t,
		"eq.test. MX 10 a.eq.test.",
		"eq.test. MX 10 b.eq.test.",
		"eq.test. MX 5 first.eq.test.",
		"eq.test. MX 50 z.eq.test.",
	)
	r := NewResolver(srv.Addr)
	second := map[string]int{}
	for range 100 {
		hosts, err := r.Hosts(context.Background(), "eq.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 4 || hosts[0].Name != "first.eq.test" || hosts[3].Name != "z.eq.test" {
			t.Fatalf("Hosts = %q, want first.eq.test, a/b in some order, z.eq.test", names(hosts))
		}
		second[hosts[1].Name]++
	}
	// Each order has probability 1/2; both missing in 100 tries is 2^-99.
	if second["a.eq.test"] == 0 || second["b.eq.test"] == 0 {
		t.Errorf("second place over 100 lookups: %v, want both a and b", second)
	}
}

func TestAddrs(t *testing.T) {
	srv := dnstest.Start(t,
		"both.test. A 127.0.0.1",
		"both.test. AAAA ::1",
		"alias.test. CNAME both.test.",
	)
	r := NewResolver(srv.Addr)
	got, err := r.Addrs(context.Background(), "both.test")
	if want := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}; err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Addrs(both.test) = %v, %v; want %v (IPv6 first)", got, err, want)
	}
	if got, err := r.Addrs(context.Background(), "192.0.2.1"); err != nil || len(got) != 1 || got[0].String() != "192.0.2.1" {
		t.Errorf("Addrs(IP) = %v, %v; want the IP itself", got, err)
	}
	if _, err := r.Addrs(context.Background(), "missing.test"); !Permanent(err) {
		t.Errorf("Addrs(missing) = %v, want a permanent error", err)
	}
}

func TestUnreachableServerIsTemporary(t *testing.T) {
	r := NewResolver("127.0.0.1:1")
	r.Timeout = 200 * time.Millisecond
	_, err := r.Hosts(context.Background(), "example.org")
	if err == nil || Permanent(err) {
		t.Errorf("Hosts with no server = %v, want a temporary error", err)
	}
}

func TestSystemResolver(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("nameserver 192.0.2.53\nnameserver ::1\n"), 0o600)
	r, err := SystemResolver(conf)
	if err != nil || strings.Join(r.Servers, " ") != "192.0.2.53:53 [::1]:53" {
		t.Errorf("SystemResolver = %v, %v", r, err)
	}
	if r := NewResolver("[::1]:5353"); r.Servers[0] != "[::1]:5353" {
		t.Errorf("NewResolver([::1]:5353) = %v", r.Servers)
	}
	if r := NewResolver("::1"); r.Servers[0] != "[::1]:53" {
		t.Errorf("NewResolver(::1) = %v", r.Servers)
	}
}

func TestNetResolver(t *testing.T) {
	srv := dnstest.Start(t, `spf.test. TXT "v=spf1 -all"`, "host.test. A 192.0.2.1")
	srv.ServFail("broken.test")
	nr := NewResolver(srv.Addr).NetResolver()
	ctx := context.Background()
	txt, err := nr.LookupTXT(ctx, "spf.test.")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" {
		t.Errorf("LookupTXT(spf.test.) = %q, %v", txt, err)
	}
	var de *net.DNSError
	if _, err := nr.LookupTXT(ctx, "nxdomain.test."); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupTXT(nxdomain.test.) error %v, want IsNotFound", err)
	}
	if _, err := nr.LookupTXT(ctx, "host.test."); !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupTXT(host.test.) (no TXT) error %v, want IsNotFound", err)
	}
	if _, err := nr.LookupTXT(ctx, "broken.test."); !errors.As(err, &de) || !de.Temporary() {
		t.Errorf("LookupTXT(broken.test.) error %v, want a temporary error", err)
	}
}

func TestNetResolverTakesServersInTurn(t *testing.T) {
	a := dnstest.Start(t, `spf.test. TXT "v=spf1 -all"`)
	b := dnstest.Start(t, `spf.test. TXT "v=spf1 -all"`)
	nr := (&Resolver{Servers: []string{a.Addr, b.Addr}}).NetResolver()
	for range 4 {
		if _, err := nr.LookupTXT(context.Background(), "spf.test."); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb := len(a.Queries()), len(b.Queries()); na != 2 || nb != 2 {
		t.Errorf("servers got %d and %d queries, want 2 and 2", na, nb)
	}
}
