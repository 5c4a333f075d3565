package dnsquery

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/mx/dnstest"
)

func TestQueries(t *testing.T) {
	srv := dnstest.Start(t,
		`example.org. TXT "v=spf1 " "mx -all"`,
		`example.org. TXT "other"`,
		`1.2.0.192.in-addr.arpa. PTR Mail.Example.org.`,
		`2.0.0.127.zen.test. A 127.0.0.2`,
	)
	srv.ServFail("broken.example")
	r := New(mx.NewResolver(srv.Addr))
	ctx := context.Background()
	txt, err := r.TXT(ctx, "example.org")
	slices.Sort(txt)
	if err != nil || !slices.Equal(txt, []string{"other", "v=spf1 mx -all"}) {
		t.Errorf("TXT(example.org) = %q, %v", txt, err)
	}
	if txt, err := r.TXT(ctx, "1.2.0.192.in-addr.arpa"); err != nil || len(txt) != 0 {
		t.Errorf("TXT of a name without TXT = %q, %v; want none, no error", txt, err)
	}
	if _, err := r.TXT(ctx, "nx.example"); !errors.Is(err, mx.ErrNotFound) {
		t.Errorf("TXT(nx.example) = %v, want ErrNotFound", err)
	}
	if _, err := r.TXT(ctx, "broken.example"); err == nil || mx.Permanent(err) {
		t.Errorf("TXT(broken.example) = %v, want a temporary error", err)
	}
	if ptr, err := r.PTR(ctx, netip.MustParseAddr("192.0.2.1")); err != nil || !slices.Equal(ptr, []string{"mail.example.org"}) {
		t.Errorf("PTR(192.0.2.1) = %q, %v", ptr, err)
	}
	if a, err := r.A(ctx, "2.0.0.127.zen.test"); err != nil || len(a) != 1 || a[0] != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("A = %v, %v", a, err)
	}
	if _, err := New(&mx.Resolver{}).TXT(ctx, "example.org"); err == nil {
		t.Error("TXT without servers succeeded")
	}
}
