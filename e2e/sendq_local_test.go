package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/spool"
)

// A message smtpd marked for the Junk folder (DMARC quarantine, a milter's
// verdict) lands in the recipient's Junk when sendq delivers it.
func TestSendqJunkMarkFilesIntoJunk(t *testing.T) {
	root := sqRoot(t, "", nil)
	env := &spool.Envelope{From: "bob@far.example", Junk: "dmarc",
		Recipients: []spool.Recipient{{Address: "alice@example.org"}}}
	if _, err := sqSpool(root).Enqueue(env, strings.NewReader(svMsg)); err != nil {
		t.Fatal(err)
	}
	r := startSendq(t, root)
	sqWait(t, "the marked message delivered", 20*time.Second, func() bool { return sqNoEntries(root) })
	r.stop(t)
	if junk := svFiles(t, root, "alice@example.org", "Junk"); len(junk) != 1 {
		t.Errorf("alice's Junk holds %v, want the marked message", junk)
	}
	if inbox := svFiles(t, root, "alice@example.org", ""); len(inbox) != 0 {
		t.Errorf("alice's INBOX holds %v, want nothing", inbox)
	}
}

// On sendq's path too, Sieve's envelope "to" is the address the sender gave
// (here an alias), not the user's own.
func TestSendqSieveSeesOriginalRecipient(t *testing.T) {
	root := sqRoot(t, "sales@example.org: alice@example.org, bob@example.org\n", nil)
	svActivate(t, root, "alice@example.org", `require ["envelope", "fileinto", "mailbox"];
if envelope :is "to" "sales@example.org" { fileinto :create "Sales"; }
`)
	sqSend(t, root, svMsg, "-f", "bob@far.example", "sales@example.org")
	sqSend(t, root, svMsg, "-f", "bob@far.example", "alice@example.org")
	r := startSendq(t, root)
	sqWait(t, "both messages delivered", 20*time.Second, func() bool { return sqNoEntries(root) })
	r.stop(t)
	if sales := svFiles(t, root, "alice@example.org", "Sales"); len(sales) != 1 {
		t.Errorf("alice's Sales folder holds %v, want the message sent to sales@", sales)
	}
	if inbox := svFiles(t, root, "alice@example.org", ""); len(inbox) != 1 {
		t.Errorf("alice's INBOX holds %v, want the message sent to her own address", inbox)
	}
}
