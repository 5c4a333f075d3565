package lda

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/postkit/postkit/address"
)

// FuzzReadMessage reads any input as a message and checks that the stored
// form is the input with each CRLF line ending made LF and nothing else
// changed (so it is never longer), that every Delivered-To address found
// is a lower-case piece of the header section, and that a message carrying
// the Delivered-To field lda itself writes for an address (traceHeader,
// SpoolForwarder) is a loop for that address, the way ToAddress and
// ToTarget check it.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"), "alice@example.org")
	f.Add([]byte("Delivered-To: Alice@Example.ORG\nSubject: x\n\nbody\n"), "alice@example.org")
	f.Add([]byte("Subject: x\nDelivered-To:\n\t<carol@example.org>\n\n"), "carol@example.org")
	f.Add([]byte("Delivered-To: a@x.org\r\nDelivered-To: b@x.org\r\n\r\nDelivered-To: c@x.org\r\n"), "b@x.org")
	f.Add([]byte("line\r\r\nbare\rcr\n\r\n"), "BOB@example.org")
	f.Add([]byte(" folded first\n\n"), `"a b"@example.org`)
	f.Add([]byte("To: x\n\n"), "δοκιμή@παράδειγμα.δοκιμή")
	f.Add([]byte("No header at all"), "ſam@example.org")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, data []byte, addr string) {
		msg, err := ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("ReadMessage(%q) = %v", data, err)
		}
		// The documented conversion, written out line by line.
		pieces := bytes.Split(data, []byte("\n"))
		for i := range pieces[:len(pieces)-1] {
			pieces[i] = bytes.TrimSuffix(pieces[i], []byte("\r"))
		}
		if want := bytes.Join(pieces, []byte("\n")); !bytes.Equal(msg.Bytes(), want) {
			t.Fatalf("ReadMessage(%q).Bytes() = %q, want %q", data, msg.Bytes(), want)
		}
		if len(data)-len(msg.Bytes()) != bytes.Count(data, []byte("\r\n")) {
			t.Fatalf("ReadMessage(%q) kept %d of %d bytes", data, len(msg.Bytes()), len(data))
		}

		// The header section unfolded, as deliveredTo reads it: lines
		// without trailing CRs, a continuation line appended as it is.
		var unfolded strings.Builder
		for _, line := range strings.Split(string(msg.Bytes()), "\n") {
			line = strings.TrimRight(line, "\r")
			if line == "" {
				break
			}
			if line[0] != ' ' && line[0] != '\t' {
				unfolded.WriteByte('\n')
			}
			unfolded.WriteString(strings.ToLower(line))
		}
		for a := range msg.deliveredTo {
			if a != strings.ToLower(a) || !strings.Contains(unfolded.String(), a) {
				t.Fatalf("ReadMessage(%q) found Delivered-To %q, not a lower-case part of the header", data, a)
			}
		}

		rcpt, err := address.Parse(addr)
		if err != nil {
			rcpt = address.Address{Local: "alice", Domain: "example.org"}
		}
		if len(data) > 0 && (data[0] == ' ' || data[0] == '\t') {
			// The first line would continue the trace field.
			data = append([]byte("Subject: x\n"), data...)
		}
		traced := append(Options{}.traceHeader(rcpt.String()), data...)
		msg, err = ReadMessage(bytes.NewReader(traced))
		if err != nil {
			t.Fatalf("ReadMessage(%q) = %v", traced, err)
		}
		if !msg.deliveredBefore(rcpt) {
			t.Fatalf("ReadMessage(%q): no loop for %s, whose Delivered-To it carries (found %v)", traced, rcpt, msg.deliveredTo)
		}
	})
}

// TestLoopForAddressesWhoseKeyDiffers is the regression test for what
// FuzzReadMessage found: ToAddress looked the recipient up by its key
// only, which is not the form lda writes into Delivered-To for a quoted
// local part or one that folds differently from strings.ToLower, so a
// forwarding alias with such a name never saw its own loop.
func TestLoopForAddressesWhoseKeyDiffers(t *testing.T) {
	for _, addr := range []string{`"a b"@example.org`, `"x@y"@example.org`, "ſam@example.org", "Alice@example.org"} {
		a, err := address.Parse(addr)
		if err != nil {
			t.Fatalf("address.Parse(%q) = %v", addr, err)
		}
		msg, err := ReadMessage(strings.NewReader(fmt.Sprintf("Delivered-To: %s\nSubject: x\n\nbody\n", a)))
		if err != nil {
			t.Fatal(err)
		}
		if !msg.deliveredBefore(a) {
			t.Errorf("deliveredBefore(%s) = false for a message with its Delivered-To (found %v)", a, msg.deliveredTo)
		}
	}
}
