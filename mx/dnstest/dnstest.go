// Package dnstest runs a small authoritative-looking DNS server on loopback
// for tests of MX lookups: it answers from a fixed list of records, says
// NXDOMAIN for names it has no record for, and SERVFAIL for names marked so.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	Addr string // 127.0.0.1:PORT (UDP and TCP)

	mu       sync.Mutex
	records  []dns.RR
	servfail map[string]bool
	queries  []string
}

// Start serves records, given in zone file syntax ("example.org. MX 10
// mx.example.org."), on a free loopback port until the test ends.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	s := &Server{servfail: map[string]bool{}}
	s.Set(t, records...)
	pc, ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	started := make(chan struct{}, 2)
	udp.NotifyStartedFunc = func() { started <- struct{}{} }
	tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return s
}

// listen opens a UDP socket on a free loopback port and a TCP listener on
// the same port. The port the system picks for UDP may be taken for TCP (by
// any client connection's local end, say): then it tries another.
func listen() (net.PacketConn, net.Listener, error) {
	var err error
	for range 100 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, err
}

// Set replaces the records served.
func (s *Server) Set(t testing.TB, records ...string) {
	t.Helper()
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("dnstest: record %q: %v", r, err)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	s.records = rrs
	s.mu.Unlock()
}

// ServFail makes every query for name (with or without the final dot)
// fail with SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	s.servfail[dns.Fqdn(strings.ToLower(name))] = true
	s.mu.Unlock()
}

// Queries returns the questions asked so far, as "NAME TYPE".
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries = append(s.queries, strings.TrimSuffix(name, ".")+" "+dns.TypeToString[q.Qtype])
	known := false
	for _, rr := range s.records {
		h := rr.Header()
		if strings.ToLower(h.Name) != name {
			continue
		}
		known = true
		if h.Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	fail := s.servfail[name]
	s.mu.Unlock()
	switch {
	case fail:
		m.Answer = nil
		m.Rcode = dns.RcodeServerFailure
	case !known:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
