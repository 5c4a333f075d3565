package remote

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/mx"
	"github.com/postkit/postkit/remote/smtptest"
)

// fixedPolicy is a PolicySource with one answer.
type fixedPolicy struct{ res mtasts.Result }

func (p fixedPolicy) Policy(context.Context, string) mtasts.Result { return p.res }

func TestMTASTS(t *testing.T) {
	tlsConfig, pool := certs(t) // valid for mx1.rcpt.example
	good := smtptest.Start(t, smtptest.Options{TLS: tlsConfig})
	plain := smtptest.Start(t, smtptest.Options{})
	enforce := &mtasts.Policy{Mode: mtasts.Enforce, MX: []string{"*.rcpt.example"}}
	testing_ := &mtasts.Policy{Mode: mtasts.Testing, MX: []string{"mx1.rcpt.example"}}
	for _, tc := range []struct {
		name    string
		mxs     []string // MX host names in order; mx1 and other are the good server, mx2 the plain one
		policy  *mtasts.Policy
		trusted bool
		status  Status
		reply   string // part of the result's reply
		note    string // part of a note
		dialed  string
	}{
		{"enforce, verified", []string{"mx1.rcpt.example"}, enforce, true, Delivered, "250 ", "", "192.0.2.1:25"},
		{"enforce, untrusted certificate", []string{"mx1.rcpt.example"}, enforce, false, TempFail, "MTA-STS policy of rcpt.example is enforce", "", "192.0.2.1:25"},
		{"enforce, no STARTTLS", []string{"mx2.rcpt.example"}, enforce, true, TempFail, "does not offer STARTTLS (the MTA-STS policy", "", "192.0.2.2:25"},
		{"enforce, MX not in the policy", []string{"mx.other.example"}, enforce, true, TempFail, "allows MX hosts *.rcpt.example", "", ""},
		{"enforce skips a host not in the policy", []string{"mx.other.example", "mx1.rcpt.example"}, enforce, true, Delivered, "250 ", "", "192.0.2.1:25"},
		{"testing, untrusted: delivered, noted", []string{"mx1.rcpt.example"}, testing_, false, Delivered, "250 ", "(testing): mx1.rcpt.example[192.0.2.1]:25: certificate not valid", "192.0.2.1:25"},
		{"testing, MX not in the policy: delivered, noted", []string{"mx.other.example"}, testing_, true, Delivered, "250 ", "does not match mx1.rcpt.example", "192.0.2.3:25"},
		{"no policy, untrusted: delivered", []string{"mx1.rcpt.example"}, nil, false, Delivered, "250 ", "", "192.0.2.1:25"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeNet{
				mxs: map[string][]mx.Host{"rcpt.example": nil},
				addrs: map[string][]netip.Addr{
					"mx1.rcpt.example": {netip.MustParseAddr("192.0.2.1")},
					"mx2.rcpt.example": {netip.MustParseAddr("192.0.2.2")},
					"mx.other.example": {netip.MustParseAddr("192.0.2.3")},
				},
				listen: map[string]string{"192.0.2.1:25": good.Addr, "192.0.2.2:25": plain.Addr, "192.0.2.3:25": good.Addr},
			}
			for i, name := range tc.mxs {
				f.mxs["rcpt.example"] = append(f.mxs["rcpt.example"], mx.Host{Name: name, Preference: 10 * (i + 1)})
			}
			c := newClient(f)
			c.MTASTS = fixedPolicy{mtasts.Result{Policy: tc.policy, ID: "id1"}}
			if tc.trusted {
				c.RootCAs = pool
			}
			rep := c.Deliver(context.Background(), "rcpt.example", nil, message(body, "a@rcpt.example"))
			r := rep.Results[0]
			if r.Status != tc.status || !strings.Contains(r.Reply, tc.reply) {
				t.Errorf("Deliver = %+v, want %s with %q", r, tc.status, tc.reply)
			}
			notes := strings.Join(rep.Notes, "\n")
			if (tc.note == "") != (notes == "") || !strings.Contains(notes, tc.note) {
				t.Errorf("notes = %q, want %q", notes, tc.note)
			}
			dialed := strings.Join(f.Dialed(), ",")
			if dialed != tc.dialed && !strings.HasSuffix(dialed, ","+tc.dialed) {
				t.Errorf("dialed %q, want %q last", dialed, tc.dialed)
			}
			if tc.name == "enforce skips a host not in the policy" && dialed != "192.0.2.1:25" {
				t.Errorf("dialed %q, want only the host in the policy", dialed)
			}
		})
	}
}

func TestMTASTSNotForRoutes(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	f := &fakeNet{listen: map[string]string{"192.0.2.1:25": srv.Addr}}
	c := newClient(f)
	c.MTASTS = fixedPolicy{mtasts.Result{Policy: &mtasts.Policy{Mode: mtasts.Enforce, MX: []string{"nothing.example"}}}}
	rep := c.Deliver(context.Background(), "rcpt.example", route(t, "rcpt.example 192.0.2.1", nil), message(body, "a@rcpt.example"))
	if rep.Results[0].Status != Delivered {
		t.Errorf("Deliver through a route = %+v, want delivered whatever the policy", rep.Results[0])
	}
}
