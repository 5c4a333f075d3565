package users

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// Hashes of "correct horse" made by Dovecot 2.3.19's `doveadm pw -s SCHEME`.
var dovecotHashes = []string{
	"{BLF-CRYPT}$2y$05$fws3eYfvX7l6xVrHjFTAzeOKjdxOTZ92pYxIpl.PM5HXWzgSIFUIe",
	"{SHA512-CRYPT}$6$x4MJ0Q//X4GVW7lN$Ls4aALxEC9KOsx18Va6XRcvdd..ojaiddQRmB5SViAoRJjgknHPpI4IxOJSD9i57dWZh.TsBY68ZHYniWRNXh.",
	"{SHA256-CRYPT}$5$n8JQ.L693aM0YwS3$Tpu0XYICM/mFdgQ41IJAJfrfdMLEOir/r7nQraO/l54",
	"{CRYPT}$2y$05$ucVQA64zaG8Vn6ITzEdPpesRMQMYOh7WxAYZ6OFTZIUXGNxtNY5We",
	// Without a prefix Dovecot's passwd-file assumes CRYPT.
	"$6$x4MJ0Q//X4GVW7lN$Ls4aALxEC9KOsx18Va6XRcvdd..ojaiddQRmB5SViAoRJjgknHPpI4IxOJSD9i57dWZh.TsBY68ZHYniWRNXh.",
	// The scheme name is case-insensitive in Dovecot.
	"{blf-crypt}$2y$05$fws3eYfvX7l6xVrHjFTAzeOKjdxOTZ92pYxIpl.PM5HXWzgSIFUIe",
}

func TestVerifyDovecotHashes(t *testing.T) {
	for _, h := range dovecotHashes {
		if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
			t.Errorf("VerifyPassword(%q, right) = %v, %v; want true, nil", h, ok, err)
		}
		if ok, err := VerifyPassword(h, "correct horsE"); ok || err != nil {
			t.Errorf("VerifyPassword(%q, wrong) = %v, %v; want false, nil", h, ok, err)
		}
	}
}

// TestVerifyLiveDoveadm checks fresh hashes from the installed Dovecot, and
// that Dovecot accepts ours.
func TestVerifyLiveDoveadm(t *testing.T) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Skip("doveadm (dovecot-core) is not installed")
	}
	const pw = "pässwörd with spaces"
	for _, scheme := range []string{"BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT"} {
		out, err := exec.Command(doveadm, "pw", "-s", scheme, "-p", pw).Output()
		if err != nil {
			t.Fatalf("doveadm pw -s %s: %v", scheme, err)
		}
		h := strings.TrimSpace(string(out))
		if ok, err := VerifyPassword(h, pw); !ok || err != nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want true", h, ok, err)
		}
	}
	ours, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(doveadm, "pw", "-t", ours, "-p", pw).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Errorf("doveadm pw -t %s = %q, %v; want verified", ours, out, err)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "{BLF-CRYPT}$2y$04$") || len(h) != len("{BLF-CRYPT}")+60 {
		t.Errorf("HashPassword = %q, want {BLF-CRYPT}$2y$04$ and 53 more characters", h)
	}
	if ok, err := VerifyPassword(h, "s3cret"); !ok || err != nil {
		t.Errorf("VerifyPassword(own hash) = %v, %v", ok, err)
	}
	if h2, _ := HashPassword("s3cret"); h2 == h {
		t.Errorf("two hashes of one password are equal: no salt")
	}
	if _, err := HashPassword(""); err == nil {
		t.Errorf("HashPassword(\"\") succeeded")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil || !strings.Contains(err.Error(), "72") {
		t.Errorf("HashPassword(73 bytes) = %v, want an error about 72 bytes", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	for _, tc := range []struct {
		hash, mention string
	}{
		{"{SSHA512}abc", "SSHA512"},
		{"{PLAIN}secret", "PLAIN"},
		{"{CRYPT}$1$salt$hash", "CRYPT with $1$"},
		{"{CRYPT}abcdefghijklm", "CRYPT"},
		{"{SHA512-CRYPT}$5$abc$def", "SHA512-CRYPT"},
	} {
		ok, err := VerifyPassword(tc.hash, "secret")
		if ok || !errors.Is(err, ErrUnsupportedScheme) || !strings.Contains(err.Error(), tc.mention) ||
			!strings.Contains(err.Error(), "mkuser passwd") {
			t.Errorf("VerifyPassword(%q) = %v, %v; want ErrUnsupportedScheme naming %s and mkuser passwd", tc.hash, ok, err, tc.mention)
		}
	}
	for _, h := range []string{"{BLF-CRYPT}$2y$05$short", "{SHA512-CRYPT}$6$", "{BLF-CRYPT"} {
		if ok, err := VerifyPassword(h, "x"); ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", h, ok, err)
		}
	}
	if ok, err := VerifyPassword("", ""); ok || err != nil {
		t.Errorf("VerifyPassword(\"\", \"\") = %v, %v; want false, nil", ok, err)
	}
}
