package smtpd

import (
	"strings"
	"testing"

	"github.com/postkit/postkit/control"
)

// TestRcptPostmaster checks RFC 5321 §4.1.1.3: "RCPT TO:<Postmaster>", in
// any case and with parameters, is postmaster@ the host name when that is a
// local domain, else @ the alphabetically first local domain; without any
// local domain it is 550 5.1.1. Other paths go through the usual checks.
func TestRcptPostmaster(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, root control.Root)
		rcpt     string
		code     int
		wantTo   string // the envelope recipient after a 250
		wantNote string // its NOTIFY
	}{
		{
			name: "host name is local",
			setup: func(t *testing.T, root control.Root) {
				writeEtc(t, root, "aliases", testAliases+"postmaster@mx.example.org: bob@example.org\n")
			},
			rcpt: "<Postmaster>", code: 250, wantTo: "postmaster@mx.example.org",
		},
		{
			name: "host name listed in etc/domains, any case, parameters",
			setup: func(t *testing.T, root control.Root) {
				writeEtc(t, root, "domains", "MX.example.org\n")
				writeEtc(t, root, "aliases", testAliases+"postmaster@mx.example.org: bob@example.org\n")
			},
			rcpt: "<POSTMASTER> NOTIFY=SUCCESS", code: 250, wantTo: "postmaster@mx.example.org", wantNote: "SUCCESS",
		},
		{
			name: "first local domain when the host name is not local",
			// catchall.test sorts before example.org; its catch-all
			// takes postmaster.
			rcpt: "<postmaster>", code: 250, wantTo: "postmaster@catchall.test",
		},
		{
			name: "first local domain without postmaster",
			setup: func(t *testing.T, root control.Root) {
				writeEtc(t, root, "aliases", "")
			},
			rcpt: "<PostMaster>", code: 550,
		},
		{
			name: "no local domain",
			setup: func(t *testing.T, root control.Root) {
				writeEtc(t, root, "users", "")
				writeEtc(t, root, "aliases", "")
			},
			rcpt: "<Postmaster>", code: 550,
		},
		{
			name: "postmaster with a domain",
			setup: func(t *testing.T, root control.Root) {
				writeEtc(t, root, "aliases", testAliases+"postmaster@example.org: bob@example.org\n")
			},
			rcpt: "<Postmaster@example.org>", code: 250, wantTo: "Postmaster@example.org",
		},
		{name: "postmaster with a remote domain", rcpt: "<postmaster@remote.test>", code: 554},
		{name: "longer local part", rcpt: "<postmasterx>", code: 501},
		{name: "without angle brackets", rcpt: "Postmaster", code: 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			if tc.setup != nil {
				tc.setup(t, ts.root)
			}
			c := ts.dial()
			c.cmd("EHLO client.test", 250)
			c.cmd("MAIL FROM:<someone@remote.test>", 250)
			c.send("RCPT TO:" + tc.rcpt + "\r\n")
			code, text := c.reply()
			if code != tc.code {
				t.Fatalf("RCPT TO:%s: %d %q, want %d", tc.rcpt, code, text, tc.code)
			}
			if code == 550 && !strings.HasPrefix(text, "5.1.1 ") {
				t.Errorf("RCPT TO:%s: %d %q, want 550 5.1.1", tc.rcpt, code, text)
			}
			if code != 250 {
				return
			}
			if code, text := c.message(testMessage); code != 250 {
				t.Fatalf("end of data: %d %q, want 250", code, text)
			}
			envs, _ := ts.queued()
			if len(envs) != 1 || len(envs[0].Recipients) != 1 {
				t.Fatalf("spool holds %+v, want one entry with one recipient", envs)
			}
			if r := envs[0].Recipients[0]; r.Address != tc.wantTo || r.Notify != tc.wantNote {
				t.Errorf("RCPT TO:%s queued for %q notify %q, want %q notify %q", tc.rcpt, r.Address, r.Notify, tc.wantTo, tc.wantNote)
			}
		})
	}
}
