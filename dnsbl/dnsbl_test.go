package dnsbl

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
)

func TestQuery(t *testing.T) {
	tests := []struct{ ip, zone, want string }{
		{"192.0.2.99", "bl.example", "99.2.0.192.bl.example."},
		{"::ffff:192.0.2.99", "bl.example.", "99.2.0.192.bl.example."},
		// RFC 5782 §2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "ugly.example.com", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."},
	}
	for _, tt := range tests {
		if got := Query(netip.MustParseAddr(tt.ip), tt.zone); got != tt.want {
			t.Errorf("Query(%s, %q) = %q, want %q", tt.ip, tt.zone, got, tt.want)
		}
	}
}

func TestValidZone(t *testing.T) {
	for zone, want := range map[string]bool{
		"zen.spamhaus.org": true, "bl.test.": true, "b_l.test": true, "": false, ".": false,
		"a..b": false, "bad zone": false, "x/y": false, strings.Repeat("a", 64) + ".test": false,
	} {
		if got := ValidZone(zone); got != want {
			t.Errorf("ValidZone(%q) = %v, want %v", zone, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	v6 := strings.TrimSuffix(Query(netip.MustParseAddr("2001:db8::1"), "bl.test"), ".")
	srv := dnstest.Start(t,
		"1.0.0.127.bl.test. A 127.0.0.2",
		`1.0.0.127.bl.test. TXT "Listed for spam, see https://bl.test/q?127.0.0.1"`,
		"2.0.0.127.bl.test. A 127.0.0.2",
		"2.0.0.127.bl.test. TXT \"bad\\010reason\\\"; x\"",
		"1.0.0.127.notxt.test. A 127.0.0.4",
		"1.0.0.127.wild.test. A 192.0.2.1",
		"1.0.0.127.refused.test. A 127.255.255.254",
		"1.0.0.127.txtonly.test. TXT \"no address\"",
		v6+". A 127.0.0.2",
		v6+`. TXT "IPv6 listed"`,
	)
	srv.ServFail("1.0.0.127.broken.test")
	c := &Checker{Resolver: mx.NewResolver(srv.Addr).NetResolver()}
	tests := []struct {
		name    string
		ip      string
		zones   []string
		zone    string // of the listing, "" for none
		reason  string
		wantErr string
	}{
		{"listed with reason", "127.0.0.1", []string{"bl.test"}, "bl.test", "Listed for spam, see https://bl.test/q?127.0.0.1", ""},
		{"reason made printable", "127.0.0.2", []string{"bl.test"}, "bl.test", `bad reason"; x`, ""},
		{"not listed", "127.0.0.3", []string{"bl.test"}, "", "", ""},
		{"first zone in order", "127.0.0.1", []string{"clean.test", "notxt.test", "bl.test"}, "notxt.test", "", ""},
		{"answer outside 127/8", "127.0.0.1", []string{"wild.test"}, "", "", ""},
		{"no address record", "127.0.0.1", []string{"txtonly.test"}, "", "", ""},
		{"list refuses the query", "127.0.0.1", []string{"refused.test"}, "", "", "refused.test"},
		{"list fails", "127.0.0.1", []string{"broken.test", "bl.test"}, "bl.test", "Listed for spam, see https://bl.test/q?127.0.0.1", "broken.test"},
		{"IPv6", "2001:db8::1", []string{"bl.test"}, "bl.test", "IPv6 listed", ""},
		{"no zones", "127.0.0.1", nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := c.Check(context.Background(), netip.MustParseAddr(tt.ip), tt.zones)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Check(%s, %q) error %v, want %q", tt.ip, tt.zones, err, tt.wantErr)
			}
			switch {
			case tt.zone == "" && l != nil:
				t.Errorf("Check(%s, %q) = %+v, want not listed", tt.ip, tt.zones, l)
			case tt.zone != "" && (l == nil || l.Zone != tt.zone || l.Reason != tt.reason || !l.Answer.IsLoopback()):
				t.Errorf("Check(%s, %q) = %+v, want listed in %s with reason %q", tt.ip, tt.zones, l, tt.zone, tt.reason)
			}
		})
	}
}
