package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/remote/smtptest"
	"github.com/postkit/postkit/routes"
	"github.com/postkit/postkit/selfsigned"
)

// fakeNet is a resolver and dialer: MX hosts and addresses come from maps,
// and "IP:PORT" is dialled at the loopback address mapped to it.
type fakeNet struct {
	mu     sync.Mutex
	mxs    map[string][]mx.Host
	mxErr  map[string]error
	addrs  map[string][]netip.Addr
	listen map[string]string // "IP:PORT" -> real address
	dialed []string
}

func (f *fakeNet) Hosts(_ context.Context, domain string) ([]mx.Host, error) {
	if err := f.mxErr[domain]; err != nil {
		return nil, err
	}
	return f.mxs[domain], nil
}

func (f *fakeNet) Addrs(_ context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if a, ok := f.addrs[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("%w: %s", mx.ErrNotFound, host)
}

func (f *fakeNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.dialed = append(f.dialed, addr)
	real, ok := f.listen[addr]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

func (f *fakeNet) Dialed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dialed...)
}

func newClient(f *fakeNet) *Client {
	return &Client{Hostname: "mx.sender.example", Resolver: f, Dial: f.Dial, Timeouts: Timeouts{Connect: 2 * time.Second, Command: 2 * time.Second, DataBlock: 2 * time.Second, DataEnd: 2 * time.Second}}
}

func message(body string, rcpts ...string) *Message {
	m := &Message{From: "alice@sender.example", Open: func() (io.ReadSeekCloser, error) {
		return nopCloser{strings.NewReader(body)}, nil
	}}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Address: r})
	}
	return m
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func certs(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1", "::1", "mx1.rcpt.example"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pool
}

func statuses(rep Report) string {
	var s []string
	for _, r := range rep.Results {
		s = append(s, r.Status.String())
	}
	return strings.Join(s, " ")
}

const body = "From: alice@sender.example\nSubject: hi\n\n.leading dot\nline two\n"

func TestDeliverOneTransactionWithSTARTTLS(t *testing.T) {
	tlsConfig, _ := certs(t)
	srv := smtptest.Start(t, smtptest.Options{TLS: tlsConfig})
	f := &fakeNet{
		mxs:    map[string][]mx.Host{"rcpt.example": {{Name: "mx1.rcpt.example", Preference: 10}}},
		addrs:  map[string][]netip.Addr{"mx1.rcpt.example": {netip.MustParseAddr("192.0.2.1")}},
		listen: map[string]string{"192.0.2.1:25": srv.Addr},
	}
	rep := newClient(f).Deliver(context.Background(), "rcpt.example", nil, message(body, "a@rcpt.example", "b@rcpt.example"))
	if got := statuses(rep); got != "delivered delivered" || !rep.Connected {
		t.Fatalf("Deliver = %s (%+v), want both delivered", got, rep.Results)
	}
	if r := rep.Results[0]; r.Relay != "mx1.rcpt.example[192.0.2.1]:25" || !strings.HasPrefix(r.Reply, "250 ") || r.Code[0] != '2' {
		t.Errorf("result = %+v, want relay mx1.rcpt.example[192.0.2.1]:25 and a 250 reply", r)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d transactions, want 1 carrying both recipients", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.Helo != "mx.sender.example" || m.From != "alice@sender.example" || strings.Join(m.To, ",") != "a@rcpt.example,b@rcpt.example" {
		t.Errorf("server saw TLS=%v helo=%q from=%q to=%q; want STARTTLS, our hostname, both recipients", m.TLS, m.Helo, m.From, m.To)
	}
	if want := strings.ReplaceAll(body, "\n", "\r\n"); string(m.Data) != want {
		t.Errorf("data = %q, want %q", m.Data, want)
	}
	if m.MailOpts.Size != int64(len(body)+strings.Count(body, "\n")) {
		t.Errorf("SIZE = %d, want the CRLF size %d", m.MailOpts.Size, len(body)+strings.Count(body, "\n"))
	}
}

func TestHeaderSentInFront(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := &fakeNet{listen: map[string]string{"192.0.2.9:25": srv.Addr}}
	msg := message(body, "a@[192.0.2.9]")
	msg.Header = "DKIM-Signature: v=1; a=ed25519-sha256;\r\n b=abc\r\n"
	rep := newClient(f).Deliver(context.Background(), "[192.0.2.9]", nil, msg)
	if statuses(rep) != "delivered" {
		t.Fatalf("Deliver = %+v", rep.Results)
	}
	m := srv.Messages()[0]
	want := msg.Header + strings.ReplaceAll(body, "\n", "\r\n")
	if string(m.Data) != want {
		t.Errorf("data = %q, want %q", m.Data, want)
	}
	if m.MailOpts.Size != int64(len(want)) {
		t.Errorf("SIZE = %d, want %d with the header counted", m.MailOpts.Size, len(want))
	}
}

func TestPlainTextOnlyWithoutSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := &fakeNet{listen: map[string]string{"192.0.2.9:25": srv.Addr}}
	rep := newClient(f).Deliver(context.Background(), "[192.0.2.9]", nil, message(body, "a@[192.0.2.9]"))
	if statuses(rep) != "delivered" {
		t.Fatalf("Deliver = %+v", rep.Results)
	}
	if m := srv.Messages()[0]; m.TLS || m.Helo != "mx.sender.example" {
		t.Errorf("server saw TLS=%v helo=%q, want plain text and our hostname", m.TLS, m.Helo)
	}
}

// A plain-text session says EHLO once: go-smtp's own EHLO is answered with
// the server's reply to ours, whose extensions it then uses (SIZE, 8BITMIME).
// Over STARTTLS the second EHLO goes to the server, inside TLS (RFC 3207
// §4.2): the plain text holds one.
func TestOneEHLOPerPlainTextSession(t *testing.T) {
	tlsConfig, _ := certs(t)
	for _, tt := range []struct {
		name string
		opts smtptest.Options
	}{
		{"plain text", smtptest.Options{MaxSize: 1 << 20}},
		{"STARTTLS", smtptest.Options{MaxSize: 1 << 20, TLS: tlsConfig}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts)
			f := &fakeNet{listen: map[string]string{"192.0.2.9:25": srv.Addr}}
			rep := newClient(f).Deliver(context.Background(), "[192.0.2.9]", nil, message(body, "a@[192.0.2.9]"))
			if statuses(rep) != "delivered" {
				t.Fatalf("Deliver = %+v", rep.Results)
			}
			in := srv.Input(0)
			if n := strings.Count(in, "EHLO "); n != 1 {
				t.Errorf("client sent EHLO %d times in plain text (%q), want once", n, in)
			}
			m := srv.Messages()[0]
			if m.TLS != (tt.opts.TLS != nil) || m.Helo != "mx.sender.example" {
				t.Errorf("server saw TLS=%v helo=%q, want TLS=%v and our hostname", m.TLS, m.Helo, tt.opts.TLS != nil)
			}
			if m.MailOpts.Size == 0 || m.MailOpts.Body != "8BITMIME" {
				t.Errorf("MAIL had SIZE=%d BODY=%q, want both: the client must know the server's extensions", m.MailOpts.Size, m.MailOpts.Body)
			}
		})
	}
}

func TestResultPerRecipient(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		switch {
		case strings.HasPrefix(to, "gone@"):
			return smtptest.Refuse(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
		case strings.HasPrefix(to, "full@"):
			return smtptest.Refuse(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full")
		}
		return nil
	}})
	f := &fakeNet{
		mxs:    map[string][]mx.Host{"rcpt.example": {{Name: "mx1.rcpt.example"}}},
		addrs:  map[string][]netip.Addr{"mx1.rcpt.example": {netip.MustParseAddr("192.0.2.1")}},
		listen: map[string]string{"192.0.2.1:25": srv.Addr},
	}
	rep := newClient(f).Deliver(context.Background(), "rcpt.example", nil, message(body, "gone@rcpt.example", "ok@rcpt.example", "full@rcpt.example"))
	if got := statuses(rep); got != "bounced delivered deferred" {
		t.Fatalf("Deliver = %s, want bounced delivered deferred (%+v)", got, rep.Results)
	}
	if r := rep.Results[0]; r.Code != "5.1.1" || !strings.Contains(r.Reply, "550 5.1.1 no such user") {
		t.Errorf("refused recipient: %+v, want 550 5.1.1 no such user", r)
	}
	if r := rep.Results[2]; r.Code != "4.2.2" {
		t.Errorf("deferred recipient: %+v, want code 4.2.2", r)
	}
	if m := srv.Messages(); len(m) != 1 || strings.Join(m[0].To, ",") != "ok@rcpt.example" {
		t.Errorf("server got %+v, want one message for ok@", m)
	}
}

func TestNextMX(t *testing.T) {
	greylist := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 7, 1}, "greylisted")
	}})
	dataFail := smtptest.Start(t, smtptest.Options{Data: func(int) error {
		return smtptest.Refuse(451, smtp.EnhancedCode{4, 3, 0}, "try later")
	}})
	good := smtptest.Start(t, smtptest.Options{})
	// A server that accepts the connection and never greets.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	f := &fakeNet{
		mxs: map[string][]mx.Host{"rcpt.example": {
			{Name: "down.rcpt.example", Preference: 5},
			{Name: "silent.rcpt.example", Preference: 10},
			{Name: "grey.rcpt.example", Preference: 20},
			{Name: "datafail.rcpt.example", Preference: 30},
			{Name: "good.rcpt.example", Preference: 40},
		}},
		addrs: map[string][]netip.Addr{
			"down.rcpt.example":     {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")},
			"silent.rcpt.example":   {netip.MustParseAddr("192.0.2.2")},
			"grey.rcpt.example":     {netip.MustParseAddr("192.0.2.3")},
			"datafail.rcpt.example": {netip.MustParseAddr("192.0.2.4")},
			"good.rcpt.example":     {netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("192.0.2.5")},
		},
		listen: map[string]string{
			"192.0.2.2:25":     silent.Addr().String(),
			"192.0.2.3:25":     greylist.Addr,
			"192.0.2.4:25":     dataFail.Addr,
			"[2001:db8::5]:25": good.Addr,
			"192.0.2.5:25":     good.Addr,
		},
	}
	c := newClient(f)
	c.Timeouts.Command = 300 * time.Millisecond
	rep := c.Deliver(context.Background(), "rcpt.example", nil, message(body, "a@rcpt.example"))
	if statuses(rep) != "delivered" || rep.Results[0].Relay != "good.rcpt.example[2001:db8::5]:25" {
		t.Fatalf("Deliver = %+v, want delivered by good.rcpt.example over IPv6", rep.Results)
	}
	want := "[2001:db8::1]:25 192.0.2.1:25 192.0.2.2:25 192.0.2.3:25 192.0.2.4:25 [2001:db8::5]:25"
	if got := strings.Join(f.Dialed(), " "); got != want {
		t.Errorf("dialled %s, want %s (MX order, IPv6 first)", got, want)
	}
	if len(good.Messages()) != 1 {
		t.Errorf("good MX got %d messages, want 1", len(good.Messages()))
	}
}

func TestPermanentRefusalStopsAtFirstHost(t *testing.T) {
	refuse := smtptest.Start(t, smtptest.Options{Mail: func(string) error {
		return smtptest.Refuse(554, smtp.EnhancedCode{5, 7, 1}, "go away")
	}})
	good := smtptest.Start(t, smtptest.Options{})
	f := &fakeNet{
		mxs:    map[string][]mx.Host{"rcpt.example": {{Name: "a.rcpt.example", Preference: 1}, {Name: "b.rcpt.example", Preference: 2}}},
		addrs:  map[string][]netip.Addr{"a.rcpt.example": {netip.MustParseAddr("192.0.2.1")}, "b.rcpt.example": {netip.MustParseAddr("192.0.2.2")}},
		listen: map[string]string{"192.0.2.1:25": refuse.Addr, "192.0.2.2:25": good.Addr},
	}
	rep := newClient(f).Deliver(context.Background(), "rcpt.example", nil, message(body, "a@rcpt.example", "b@rcpt.example"))
	if statuses(rep) != "bounced bounced" || rep.Results[0].Code != "5.7.1" {
		t.Errorf("Deliver = %+v, want both bounced with 5.7.1", rep.Results)
	}
	if len(good.Messages()) != 0 {
		t.Error("the next MX got the message after a 5xx to MAIL")
	}
}

func TestDNSOutcomes(t *testing.T) {
	f := &fakeNet{mxErr: map[string]error{
		"null.example":   fmt.Errorf("%w: null.example", mx.ErrNullMX),
		"nx.example":     fmt.Errorf("%w: nx.example", mx.ErrNotFound),
		"broken.example": fmt.Errorf("mx: SERVFAIL"),
	}}
	tests := []struct {
		domain, status, code string
	}{
		{"null.example", "bounced", "5.1.10"},
		{"nx.example", "bounced", "5.1.2"},
		{"broken.example", "deferred", "4.4.3"},
	}
	for _, tt := range tests {
		rep := newClient(f).Deliver(context.Background(), tt.domain, nil, message(body, "a@"+tt.domain))
		if r := rep.Results[0]; r.Status.String() != tt.status || r.Code != tt.code || rep.Connected {
			t.Errorf("Deliver to %s = %+v, want %s %s", tt.domain, r, tt.status, tt.code)
		}
	}
	if len(f.Dialed()) != 0 {
		t.Errorf("dialled %v, want nothing", f.Dialed())
	}
}

func TestSizeLimit(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{MaxSize: 50})
	f := &fakeNet{listen: map[string]string{"192.0.2.1:25": srv.Addr}}
	big := body + strings.Repeat("x", 100) + "\n"
	rep := newClient(f).Deliver(context.Background(), "[192.0.2.1]", nil, message(big, "a@[192.0.2.1]"))
	if r := rep.Results[0]; r.Status != PermFail || r.Code != "5.3.4" {
		t.Errorf("Deliver of a too big message = %+v, want bounced 5.3.4", r)
	}
	if len(srv.Messages()) != 0 {
		t.Error("the server got the too big message")
	}
}

func route(t *testing.T, line string, pool *x509.CertPool) *routes.Route {
	t.Helper()
	table, err := routes.Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	r := table.Routes()[0]
	r.RootCAs = pool
	if r.AuthFile != "" {
		r.Username, r.Password = "me", "secret"
	}
	return r
}

func TestSmarthost(t *testing.T) {
	tlsConfig, pool := certs(t)
	_, otherPool := certs(t)
	starttls := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, Users: map[string]string{"me": "secret"}})
	implicit := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, Implicit: true, Users: map[string]string{"me": "secret"}})
	plain := smtptest.Start(t, smtptest.Options{})
	c := newClient(&fakeNet{})
	c.Dial = nil // routes name real loopback addresses
	tests := []struct {
		name   string
		route  *routes.Route
		status Status
		reply  string
	}{
		{"auth over STARTTLS", route(t, "* "+starttls.Addr+" auth=f", pool), Delivered, "250 "},
		{"auth over implicit TLS", route(t, "* "+implicit.Addr+" tls=implicit auth=f", pool), Delivered, "250 "},
		{"untrusted certificate", route(t, "* "+starttls.Addr+" auth=f", otherPool), TempFail, "TLS handshake"},
		{"no STARTTLS offered", route(t, "* "+plain.Addr+" tls=require", pool), TempFail, "does not offer STARTTLS"},
		{"no AUTH offered", route(t, "* "+plain.Addr+" tls=may", pool), Delivered, "250 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := c.Deliver(context.Background(), "far.example", tt.route, message(body, "x@far.example", "y@other.example"))
			for _, r := range rep.Results {
				if r.Status != tt.status || !strings.Contains(r.Reply, tt.reply) {
					t.Errorf("Deliver via %s = %+v, want %v with %q", tt.route, r, tt.status, tt.reply)
				}
			}
		})
	}
	for _, srv := range []*smtptest.Server{starttls, implicit} {
		m := srv.Messages()
		if len(m) != 1 || m[0].AuthUser != "me" || !m[0].TLS || len(m[0].To) != 2 {
			t.Errorf("smarthost %s got %+v, want one authenticated TLS transaction with both recipients", srv.Addr, m)
		}
	}
}

func TestRequireTLS(t *testing.T) {
	tlsConfig, pool := certs(t)
	withExt := smtptest.Start(t, smtptest.Options{TLS: tlsConfig, RequireTLS: true})
	plain := smtptest.Start(t, smtptest.Options{RequireTLS: true})
	f := &fakeNet{
		mxs:    map[string][]mx.Host{"rcpt.example": {{Name: "mx1.rcpt.example", Preference: 10}}},
		addrs:  map[string][]netip.Addr{"mx1.rcpt.example": {netip.MustParseAddr("192.0.2.1")}},
		listen: map[string]string{"192.0.2.1:25": withExt.Addr, "192.0.2.2:25": plain.Addr},
	}
	msg := message(body, "a@rcpt.example")
	msg.RequireTLS = true
	// Not verifiable: the certificate's issuer is unknown.
	c := newClient(f)
	if r := c.Deliver(context.Background(), "rcpt.example", nil, msg).Results[0]; r.Status != PermFail || r.Code != "5.7.30" {
		t.Errorf("REQUIRETLS to an unverified host = %+v, want bounced 5.7.30", r)
	}
	if r := c.Deliver(context.Background(), "[192.0.2.2]", nil, msg).Results[0]; r.Status != PermFail || r.Code != "5.7.30" {
		t.Errorf("REQUIRETLS to a host without STARTTLS = %+v, want bounced 5.7.30", r)
	}
	c.RootCAs = pool
	if r := c.Deliver(context.Background(), "rcpt.example", nil, msg).Results[0]; r.Status != Delivered {
		t.Errorf("REQUIRETLS to a verified host = %+v, want delivered", r)
	}
	if m := withExt.Messages(); len(m) != 1 || !m[0].MailOpts.RequireTLS {
		t.Errorf("server got %+v, want one message with REQUIRETLS", m)
	}
	if len(plain.Messages()) != 0 {
		t.Error("a REQUIRETLS message went out in plain text")
	}
}

func TestDSNParametersPassedOn(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{DSN: true})
	f := &fakeNet{listen: map[string]string{"192.0.2.1:25": srv.Addr}}
	msg := message(body, "a@[192.0.2.1]")
	msg.Recipients[0].Notify = "SUCCESS,FAILURE"
	msg.Recipients[0].ORCPT = "rfc822;orig@example.org"
	msg.Ret, msg.EnvID = "HDRS", "env-1"
	rep := newClient(f).Deliver(context.Background(), "[192.0.2.1]", nil, msg)
	if r := rep.Results[0]; r.Status != Delivered || !r.DSN {
		t.Fatalf("Deliver = %+v, want delivered with DSN", r)
	}
	m := srv.Messages()[0]
	o := m.RcptOpts[0]
	if fmt.Sprint(o.Notify) != "[SUCCESS FAILURE]" || o.OriginalRecipient != "orig@example.org" || m.MailOpts.EnvelopeID != "env-1" || m.MailOpts.Return != smtp.DSNReturnHeaders {
		t.Errorf("server saw notify=%v orcpt=%q envid=%q ret=%q", o.Notify, o.OriginalRecipient, m.MailOpts.EnvelopeID, m.MailOpts.Return)
	}
}

func TestSTARTTLSInjectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "220 x\r\n")
		buf := make([]byte, 512)
		c.Read(buf)
		io.WriteString(c, "250-x\r\n250 STARTTLS\r\n")
		c.Read(buf)
		// The reply and an injected command in one packet.
		io.WriteString(c, "220 go ahead\r\n250 injected\r\n")
		c.Read(buf)
	}()
	f := &fakeNet{listen: map[string]string{"192.0.2.1:25": ln.Addr().String()}}
	r := newClient(f).Deliver(context.Background(), "[192.0.2.1]", nil, message(body, "a@[192.0.2.1]")).Results[0]
	if r.Status != TempFail || !strings.Contains(r.Reply, "after its STARTTLS reply") {
		t.Errorf("Deliver to an injecting server = %+v, want a deferral naming the injection", r)
	}
}

func TestIsEnhancedCode(t *testing.T) {
	for s, want := range map[string]bool{"2.0.0": true, "5.1.10": true, "3.0.0": false, "2.0": false, "Ok:": false, "4.x.1": false} {
		if got := isEnhancedCode(s); got != want {
			t.Errorf("isEnhancedCode(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestDataBlockTimeout: a server that stops reading in the middle of the
// data must not hold the delivery beyond the data block timeout.
func TestDataBlockTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		io.WriteString(c, "220 x\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"):
				io.WriteString(c, "250 x\r\n")
			case cmd == "DATA":
				io.WriteString(c, "354 go on\r\n")
				<-release // and never read again
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	}()
	f := &fakeNet{listen: map[string]string{"192.0.2.1:25": ln.Addr().String()}}
	c := newClient(f)
	c.Timeouts.DataBlock = 200 * time.Millisecond
	big := body + strings.Repeat(strings.Repeat("x", 999)+"\n", 32<<10) // 32 MB: more than socket buffers hold
	done := make(chan Result, 1)
	go func() {
		done <- c.Deliver(context.Background(), "[192.0.2.1]", nil, message(big, "a@[192.0.2.1]")).Results[0]
	}()
	select {
	case r := <-done:
		if r.Status != TempFail || !strings.Contains(r.Reply, "timeout") {
			t.Errorf("Deliver to a server that stopped reading = %+v, want a timeout deferral", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Deliver still blocked 20s after the server stopped reading (data block timeout 200ms)")
	}
}
