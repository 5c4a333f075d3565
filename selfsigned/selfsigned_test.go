package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGenerateLoadsAndVerifies(t *testing.T) {
	certPEM, keyPEM, err := Generate([]string{"mail.example.org", "127.0.0.1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, name := range []string{"mail.example.org", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("Verify(%s) = %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.example.org", Roots: pool}); err == nil {
		t.Error("Verify(other.example.org) succeeded, want a name mismatch")
	}
	if d := time.Until(cert.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("NotAfter in %v, want about 24h", d)
	}
	if _, _, err := Generate(nil, time.Hour); err == nil {
		t.Error("Generate(no hosts) succeeded")
	}
}

func TestWriteIfMissing(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	wrote, err := WriteIfMissing(cert, key, []string{"localhost"}, time.Hour)
	if err != nil || !wrote {
		t.Fatalf("WriteIfMissing = %v, %v; want true, nil", wrote, err)
	}
	if info, _ := os.Stat(key); info.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v, want 0600", info.Mode().Perm())
	}
	before, _ := os.ReadFile(cert)
	wrote, err = WriteIfMissing(cert, key, []string{"localhost"}, time.Hour)
	if err != nil || wrote {
		t.Fatalf("second WriteIfMissing = %v, %v; want false, nil", wrote, err)
	}
	after, _ := os.ReadFile(cert)
	if string(before) != string(after) {
		t.Error("second WriteIfMissing replaced the certificate")
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		t.Errorf("LoadX509KeyPair: %v", err)
	}
}
