package remote

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/remote/smtptest"
)

// oneMX is a fakeNet where each of domains has the MX host mx1.rcpt.example
// at 192.0.2.1, served by srv.
func oneMX(srv *smtptest.Server, domains ...string) *fakeNet {
	f := &fakeNet{
		mxs:    map[string][]mx.Host{},
		addrs:  map[string][]netip.Addr{"mx1.rcpt.example": {netip.MustParseAddr("192.0.2.1")}},
		listen: map[string]string{"192.0.2.1:25": srv.Addr},
	}
	for _, d := range domains {
		f.mxs[d] = []mx.Host{{Name: "mx1.rcpt.example", Preference: 10}}
	}
	return f
}

// cachingClient is newClient with an idle time no test waits out unless
// it means to, closed at the end of the test.
func cachingClient(t *testing.T, f *fakeNet) *Client {
	c := newClient(f)
	c.Cache.IdleTime = time.Minute
	t.Cleanup(func() { c.Close() })
	return c
}

// deliver sends msg (by default one message to a@domain) and fails the
// test unless it is delivered to all; it returns the report.
func deliver(t *testing.T, c *Client, domain string, msg *Message) Report {
	t.Helper()
	if msg == nil {
		msg = message(body, "a@"+domain)
	}
	rep := c.Deliver(context.Background(), domain, nil, msg)
	if got := statuses(rep); strings.Trim(strings.ReplaceAll(got, "delivered", ""), " ") != "" {
		t.Fatalf("Deliver to %s = %+v, want delivered", domain, rep.Results)
	}
	return rep
}

func TestConnectionReused(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	if rep := deliver(t, c, "rcpt.example", nil); rep.Reused {
		t.Error("first delivery: Reused = true, want a fresh connection")
	}
	if rep := deliver(t, c, "rcpt.example", nil); !rep.Reused {
		t.Error("second delivery: Reused = false, want the cached connection")
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("server accepted %d connections for two messages, want 1", n)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Fatalf("server got %d messages, want 2", n)
	}
	in := srv.Input(0)
	// RFC 5321 §4.1.1.5: RSET after each transaction before the connection
	// waits; the next transaction starts with MAIL, without a new EHLO.
	first, second, ok := strings.Cut(in, "\r\n.\r\n")
	if !ok || strings.Count(first, "EHLO") != 1 || !strings.HasPrefix(second, "RSET\r\nMAIL FROM:") || strings.Contains(second, "EHLO") {
		t.Errorf("client sent %q, want one session start, then RSET and MAIL for the second message", in)
	}
	c.Close()
	if in := srv.Input(0); !strings.HasSuffix(in, "RSET\r\nQUIT\r\n") {
		t.Errorf("after Close the client sent %q, want RSET then QUIT at the end", in)
	}
}

func TestIdleConnectionExpires(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	c.Cache.IdleTime = 20 * time.Millisecond
	deliver(t, c, "rcpt.example", nil)
	time.Sleep(60 * time.Millisecond)
	if rep := deliver(t, c, "rcpt.example", nil); rep.Reused {
		t.Error("delivery after the idle time: Reused = true, want a fresh connection")
	}
	if n := srv.Conns(); n != 2 {
		t.Errorf("server accepted %d connections, want 2: the first expired", n)
	}
	// The reaper (or the take that found it expired) says QUIT.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(srv.Input(0), "QUIT\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("expired connection: client sent %q, want QUIT at the end", srv.Input(0))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for !strings.HasSuffix(srv.Input(1), "QUIT\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("connection left idle: client sent %q, want the reaper's QUIT at the end", srv.Input(1))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectionKeptPerDomain(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "a.example", "b.example"))
	for i, tc := range []struct {
		domain string
		reused bool
		conns  int
	}{
		{"a.example", false, 1},
		{"b.example", false, 2}, // same MX host and address, other domain
		{"a.example", true, 2},
		{"b.example", true, 2},
	} {
		rep := deliver(t, c, tc.domain, nil)
		if rep.Reused != tc.reused || srv.Conns() != tc.conns {
			t.Errorf("delivery %d to %s: Reused = %v with %d connections, want %v with %d", i, tc.domain, rep.Reused, srv.Conns(), tc.reused, tc.conns)
		}
	}
	for i := range 2 {
		if n := strings.Count(srv.Input(i), "MAIL FROM:"); n != 2 {
			t.Errorf("connection %d carried %d transactions, want 2", i, n)
		}
	}
}

func TestRequireTLSConnectionReuse(t *testing.T) {
	tlsConfig, pool := certs(t) // valid for mx1.rcpt.example
	requireTLS := func() *Message {
		m := message(body, "a@rcpt.example")
		m.RequireTLS = true
		return m
	}
	t.Run("plain connection not taken", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{RequireTLS: true})
		c := cachingClient(t, oneMX(srv, "rcpt.example"))
		c.RootCAs = pool
		deliver(t, c, "rcpt.example", nil)
		rep := c.Deliver(context.Background(), "rcpt.example", nil, requireTLS())
		if r := rep.Results[0]; r.Status != PermFail || r.Code != "5.7.30" || rep.Reused {
			t.Errorf("REQUIRETLS after a plain-text delivery = %+v (reused %v), want bounced 5.7.30 on a fresh connection", r, rep.Reused)
		}
		if n, m := srv.Conns(), len(srv.Messages()); n != 2 || m != 1 {
			t.Errorf("server accepted %d connections and %d messages, want 2 and 1", n, m)
		}
	})
	t.Run("unverified connection not taken", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, RequireTLS: true})
		c := cachingClient(t, oneMX(srv, "rcpt.example"))
		deliver(t, c, "rcpt.example", nil) // encrypted, certificate not verified
		rep := c.Deliver(context.Background(), "rcpt.example", nil, requireTLS())
		if r := rep.Results[0]; r.Status != PermFail || r.Code != "5.7.30" || rep.Reused {
			t.Errorf("REQUIRETLS after an unverified delivery = %+v (reused %v), want bounced 5.7.30 on a fresh connection", r, rep.Reused)
		}
		if n := srv.Conns(); n != 2 {
			t.Errorf("server accepted %d connections, want 2", n)
		}
	})
	t.Run("verified connection taken", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, RequireTLS: true})
		c := cachingClient(t, oneMX(srv, "rcpt.example"))
		c.RootCAs = pool
		deliver(t, c, "rcpt.example", nil)
		if rep := deliver(t, c, "rcpt.example", requireTLS()); !rep.Reused {
			t.Error("REQUIRETLS after a verified delivery: Reused = false, want the verified connection")
		}
		m := srv.Messages()
		if n := srv.Conns(); n != 1 || len(m) != 2 || !m[1].MailOpts.RequireTLS || !m[1].TLS {
			t.Errorf("server accepted %d connections and %+v, want 1 and the second message with REQUIRETLS over TLS", n, m)
		}
	})
}

func TestClosedIdleConnection(t *testing.T) {
	var mails atomic.Int32
	for _, tc := range []struct {
		name  string
		opts  smtptest.Options
		close bool
	}{
		{"server closed it", smtptest.Options{}, true},
		{"421 to MAIL", smtptest.Options{Mail: func(string) error {
			if mails.Add(1) == 2 {
				return smtptest.Refuse(421, smtp.EnhancedCode{4, 4, 2}, "idle too long, closing")
			}
			return nil
		}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.opts)
			f := oneMX(srv, "rcpt.example")
			c := cachingClient(t, f)
			deliver(t, c, "rcpt.example", nil)
			if tc.close {
				srv.CloseConns()
			}
			rep := deliver(t, c, "rcpt.example", message(body, "a@rcpt.example", "b@rcpt.example"))
			if r := rep.Results[1]; r.Status != Delivered || r.Relay != "mx1.rcpt.example[192.0.2.1]:25" || rep.Reused || !rep.Connected {
				t.Errorf("Deliver after the cached connection died = %+v (reused %v), want delivered on a fresh connection", rep, rep.Reused)
			}
			if n, m := srv.Conns(), len(srv.Messages()); n != 2 || m != 2 {
				t.Errorf("server accepted %d connections and %d messages, want 2 and 2", n, m)
			}
			if got := strings.Join(f.Dialed(), " "); got != "192.0.2.1:25 192.0.2.1:25" {
				t.Errorf("dialled %s, want the same address again", got)
			}
		})
	}
}

func TestReuseLimit(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	c.Cache.ReuseLimit = 2
	for range 4 {
		deliver(t, c, "rcpt.example", nil)
	}
	if n := srv.Conns(); n != 2 {
		t.Fatalf("server accepted %d connections for 4 messages with 2 reuses allowed, want 2", n)
	}
	if in := srv.Input(0); strings.Count(in, "MAIL FROM:") != 3 || !strings.HasSuffix(in, "\r\n.\r\nQUIT\r\n") {
		t.Errorf("first connection: client sent %q, want 3 transactions and QUIT after the last", in)
	}
}

func TestSmarthostConnectionReused(t *testing.T) {
	tlsConfig, pool := certs(t)
	srv := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, Implicit: true, Users: map[string]string{"me": "secret"}})
	c := newClient(&fakeNet{})
	c.Dial = nil
	t.Cleanup(func() { c.Close() })
	r := route(t, "* "+srv.Addr+" tls=implicit auth=f", pool)
	for i := range 3 {
		rep := c.Deliver(context.Background(), fmt.Sprintf("d%d.example", i), r, message(body, "x@far.example"))
		if statuses(rep) != "delivered" || rep.Reused != (i > 0) {
			t.Errorf("delivery %d via %s = %+v (reused %v), want delivered, reused after the first", i, r, rep.Results, rep.Reused)
		}
	}
	m := srv.Messages()
	if n := srv.Conns(); n != 1 || len(m) != 3 || m[2].AuthUser != "me" {
		t.Errorf("smarthost accepted %d connections and %+v, want 1 connection carrying 3 authenticated transactions", n, m)
	}
}

func TestCacheDisabled(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	c.Cache.Disabled = true
	deliver(t, c, "rcpt.example", nil)
	deliver(t, c, "rcpt.example", nil)
	if n := srv.Conns(); n != 2 || !strings.HasSuffix(srv.Input(0), "\r\n.\r\nQUIT\r\n") {
		t.Errorf("server accepted %d connections, first sent %q; want 2, each ending with QUIT after the data", n, srv.Input(0))
	}
}

func TestCloseThenDeliver(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	deliver(t, c, "rcpt.example", nil)
	c.Close()
	deliver(t, c, "rcpt.example", nil)
	if n := srv.Conns(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
	for i := range 2 {
		if in := srv.Input(i); !strings.HasSuffix(in, "QUIT\r\n") {
			t.Errorf("connection %d: client sent %q, want QUIT at the end", i, in)
		}
	}
}

func TestConcurrentDeliveriesShareConnections(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	c := cachingClient(t, oneMX(srv, "rcpt.example"))
	const workers, each = 8, 5
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range workers {
		wg.Go(func() {
			for range each {
				if statuses(c.Deliver(context.Background(), "rcpt.example", nil, message(body, "a@rcpt.example"))) != "delivered" {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d deliveries failed", n)
	}
	if m := len(srv.Messages()); m != workers*each {
		t.Errorf("server got %d messages, want %d", m, workers*each)
	}
	if n := srv.Conns(); n > workers {
		t.Errorf("server accepted %d connections for %d concurrent senders, want at most %d", n, workers, workers)
	}
}

func TestOneReply(t *testing.T) {
	for _, tc := range []struct {
		name, read string
		want       bool
	}{
		{"single line", "250 2.0.0 Ok\r\n", true},
		{"multiline", "250-a\r\n250-b\r\n250 c\r\n", true},
		{"nothing", "", false},
		{"incomplete", "250 2.0.0 Ok", false},
		{"two replies", "250 2.0.0 Ok\r\n421 bye\r\n", false},
		{"continuation last", "250-a\r\n", false},
		{"codes differ", "250-a\r\n251 b\r\n", false},
		{"short line", "250\r\n", false},
	} {
		c := &replyConn{read: []byte(tc.read)}
		if got := c.oneReply(); got != tc.want {
			t.Errorf("%s: oneReply(%q) = %v, want %v", tc.name, tc.read, got, tc.want)
		}
	}
}
