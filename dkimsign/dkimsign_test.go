package dkimsign

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/postkit/postkit/control"
)

func TestGenerateAndLoad(t *testing.T) {
	root := control.Root(t.TempDir())
	if keys, err := Load(root, "example.org"); err != nil || len(keys) != 0 {
		t.Fatalf("Load before Generate = %v, %v; want none", keys, err)
	}
	keys, created, err := Generate(root, "Example.ORG", false)
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	if fmt.Sprint(created) != "[ed25519 rsa]" || len(keys) != 2 {
		t.Fatalf("Generate created %v, keys %d; want both", created, len(keys))
	}
	selector := regexp.MustCompile(`^(ed25519|rsa)-[0-9a-f]{8}$`)
	for i, k := range keys {
		if k.Algorithm != Algorithms[i] || k.Domain != "example.org" || !selector.MatchString(k.Selector) || !strings.HasPrefix(k.Selector, k.Algorithm+"-") {
			t.Errorf("key %d = %s %s %s", i, k.Algorithm, k.Domain, k.Selector)
		}
		fi, err := os.Stat(k.Path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", k.Path, err, fi.Mode().Perm())
		}
		if k.Path != root.Etc("dkim/example.org/"+k.Algorithm+".key") {
			t.Errorf("key path %s", k.Path)
		}
	}
	again, created, err := Generate(root, "example.org", false)
	if err != nil || len(created) != 0 || again[0].Selector != keys[0].Selector || again[1].Selector != keys[1].Selector {
		t.Errorf("Generate again = %v created, %v; want the same keys", created, err)
	}
	replaced, created, err := Generate(root, "example.org", true)
	if err != nil || len(created) != 2 || replaced[0].Selector == keys[0].Selector || replaced[1].Selector == keys[1].Selector {
		t.Errorf("Generate with replace = %v created, %v; want new keys with new selectors", created, err)
	}
	for _, bad := range []string{"", "..", "a/b", "[127.0.0.1]", "exa mple.org"} {
		if _, _, err := Generate(root, bad, false); err == nil {
			t.Errorf("Generate(%q) succeeded", bad)
		}
	}
	os.WriteFile(root.Etc("dkim/example.org/rsa.key"), []byte("junk"), 0o600)
	if _, err := Load(root, "example.org"); err == nil {
		t.Errorf("Load with a broken key file succeeded")
	}
}

// lookupFor serves the records of keys to dkim.Verify.
func lookupFor(keys []*Key) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		for _, k := range keys {
			if name == k.RecordName() {
				return []string{k.Record()}, nil
			}
		}
		return nil, errors.New("no such record")
	}
}

const testMessage = "From: Alice <alice@example.org>\n" +
	"To: bob@remote.test,\n carol@remote.test\n" +
	"Subject: a test of\n  folding\n" +
	"Date: Mon, 23 Nov 2026 10:00:00 +0000\n" +
	"Message-ID: <1@example.org>\n" +
	"X-Unsigned: yes\n" +
	"\n" +
	"Hello Bob,  \n\n.leading dot\nbye\n\n\n"

func signedMessage(t *testing.T, root control.Root, msg string) string {
	t.Helper()
	fields, domain, err := SignFor(root, strings.NewReader(msg))
	if err != nil || domain != "example.org" {
		t.Fatalf("SignFor = %q, %v", domain, err)
	}
	var b bytes.Buffer
	w := &crlfWriter{w: &b}
	w.Write([]byte(msg))
	return fields + b.String()
}

func verify(t *testing.T, keys []*Key, msg string) []error {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookupFor(keys)})
	if err != nil {
		t.Fatalf("Verify = %v", err)
	}
	var errs []error
	for _, v := range vs {
		errs = append(errs, v.Err)
	}
	return errs
}

func TestSignVerifies(t *testing.T) {
	root := control.Root(t.TempDir())
	keys, _, err := Generate(root, "example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	signed := signedMessage(t, root, testMessage)
	if n := strings.Count(signed, "DKIM-Signature:"); n != 2 {
		t.Fatalf("%d DKIM-Signature fields, want 2:\n%s", n, signed)
	}
	for _, want := range []string{"a=ed25519-sha256", "a=rsa-sha256", "c=relaxed/relaxed", "s=" + keys[0].Selector, "s=" + keys[1].Selector} {
		if !strings.Contains(signed, want) {
			t.Errorf("signature has no %s:\n%s", want, signed)
		}
	}
	unfolded := strings.ReplaceAll(signed, "\r\n ", " ")
	h := regexp.MustCompile(`[; ]h=([^;]*);`).FindStringSubmatch(unfolded)
	if h == nil || strings.Join(strings.Fields(h[1]), "") != "From:From:Subject:Date:To:Message-ID" {
		t.Errorf("h= %q, want From oversigned and only the present fields", h)
	}
	for i, err := range verify(t, keys, signed) {
		if err != nil {
			t.Errorf("signature %d: %v", i, err)
		}
	}

	// Relaxed canonicalization: re-folding, changed white space and
	// trailing blanks still verify.
	refolded := strings.NewReplacer(
		"To: bob@remote.test,\r\n carol@remote.test", "To:   bob@remote.test,  carol@remote.test",
		"Subject: a test of\r\n  folding", "Subject: a test\r\n\tof folding",
		"Hello Bob,  \r\n", "Hello   Bob,\r\n",
		"bye\r\n\r\n\r\n", "bye \r\n",
	).Replace(signed)
	if refolded == signed {
		t.Fatal("the re-fold changed nothing")
	}
	for i, err := range verify(t, keys, refolded) {
		if err != nil {
			t.Errorf("re-folded, signature %d: %v", i, err)
		}
	}

	for name, change := range map[string]func(string) string{
		"body changed":    func(s string) string { return strings.Replace(s, "bye", "Bye", 1) },
		"subject changed": func(s string) string { return strings.Replace(s, "a test of", "a test for", 1) },
		"second From added": func(s string) string {
			return strings.Replace(s, "\r\nSubject: a", "\r\nFrom: mallory@evil.test\r\nSubject: a", 1)
		},
		"From domain spoofed": func(s string) string {
			return strings.Replace(s, "<alice@example.org>", "<alice@example.org.evil.test>", 1)
		},
	} {
		for i, err := range verify(t, keys, change(signed)) {
			if err == nil {
				t.Errorf("%s: signature %d still verifies", name, i)
			}
		}
	}
}

func TestSignForWithoutKeys(t *testing.T) {
	root := control.Root(t.TempDir())
	fields, domain, err := SignFor(root, strings.NewReader(testMessage))
	if fields != "" || domain != "example.org" || err != nil {
		t.Errorf("SignFor without keys = %q, %q, %v; want nothing", fields, domain, err)
	}
}

func TestReadHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("x", 200000) + "\n"
	for _, tc := range []struct {
		name, in, rest string
		fields         int
		err            bool
	}{
		{"lf", "A: 1\nB: 2\n\nbody\n", "body\n", 2, false},
		{"crlf folded", "A: 1\r\n 2\r\nB: 2\r\n\r\nbody", "body", 2, false},
		{"long line", long + "A: 1\n\nb", "b", 2, false},
		{"empty body", "A: 1\n\n", "", 1, false},
		{"no header end", "A: 1\nB: 2\n", "", 0, true},
		{"empty", "", "", 0, true},
		{"too large", strings.Repeat(long, 6) + "\n", "", 0, true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		h, err := ReadHeader(br)
		if (err != nil) != tc.err {
			t.Errorf("%s: ReadHeader = %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		restBytes, _ := io.ReadAll(br)
		rest := string(restBytes)
		if len(h.fields) != tc.fields || rest != tc.rest || string(h.raw)+rest != tc.in {
			t.Errorf("%s: %d fields, rest %q; want %d, %q", tc.name, len(h.fields), rest, tc.fields, tc.rest)
		}
	}
}

func TestFromDomain(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"From: alice@Example.ORG\n", "example.org"},
		{"From: \"Alice\" <alice@example.org>\n", "example.org"},
		{"From: =?x-unknown?q?Al=E9?= <alice@bücher.example>\n", "xn--bcher-kva.example"},
		{"From: a@example.org, b@example.org\n", "example.org"},
		{"from:\n alice@example.org\n", "example.org"},
		{"From: a@example.org, b@other.example\n", ""},
		{"From: a@example.org\nFrom: b@example.org\n", ""},
		{"To: a@example.org\n", ""},
		{"From: nobody\n", ""},
		{"From: a@[127.0.0.1]\n", ""},
	} {
		h, err := ReadHeader(bufio.NewReader(strings.NewReader(tc.header + "\n")))
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.FromDomain()
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("FromDomain(%q) = %q, %v; want %q", tc.header, got, err, tc.want)
		}
	}
}

func TestParseRecordMatches(t *testing.T) {
	root := control.Root(t.TempDir())
	keys, _, err := Generate(root, "example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := Generate(control.Root(t.TempDir()), "example.org", false)
	for i, k := range keys {
		r, err := ParseRecord(k.Record())
		if err != nil || !r.Matches(k) || r.Matches(other[i]) || r.Matches(keys[1-i]) {
			t.Errorf("ParseRecord(%q) = %+v, %v; want it to match its key only", k.Record(), r, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want Record
		err  bool
	}{
		{"v=DKIM1; k=rsa; p=AAAA", Record{"rsa", "AAAA"}, false},
		{"p=AA AA;", Record{"rsa", "AAAA"}, false},
		{"v=DKIM1; p=", Record{"rsa", ""}, false},
		{"k=ed25519; v=DKIM1; p=AAAA", Record{}, true},
		{"v=DKIM2; p=AAAA", Record{}, true},
		{"v=DKIM1; k=rsa", Record{}, true},
		{"v=DKIM1; p=AAAA; p=BBBB", Record{}, true},
		{"v=DKIM1; p=!!!!", Record{}, true},
		{"v=DKIM1; junk; p=AAAA", Record{}, true},
	} {
		got, err := ParseRecord(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseRecord(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"not pem", "hello"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{"bad der", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
	} {
		if _, err := ParseKey([]byte(tc.in)); err == nil {
			t.Errorf("ParseKey(%s) succeeded", tc.name)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=DKIM1; k=rsa; p=AAAA", "p=", "v=DKIM1;;p=A A A A", "k=ed25519;p=x", "=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil && r.KeyType == "" {
			t.Errorf("ParseRecord(%q) = %+v with no key type", s, r)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{testMessage, "From: a@b.example\r\n\r\n", "From: x\n", "\n", " a\nFrom: <a@b>\n\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		br := bufio.NewReader(strings.NewReader(s))
		h, err := ReadHeader(br)
		if err != nil {
			return
		}
		restBytes, _ := io.ReadAll(br)
		rest := string(restBytes)
		if string(h.raw)+rest != s {
			t.Errorf("ReadHeader(%q) lost bytes: header %q, rest %q", s, h.raw, rest)
		}
		h.FromDomain()
		h.headerKeys()
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParseKey(data); err == nil && k == nil {
			t.Errorf("ParseKey returned no key and no error")
		}
	})
}
