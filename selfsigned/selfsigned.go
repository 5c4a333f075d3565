// Package selfsigned makes a self-signed TLS certificate, so that a new
// postkit root (make run, the setup script) can offer STARTTLS and implicit
// TLS before the admin installs a real certificate.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/postkit/postkit/safefile"
)

// Generate returns a PEM certificate and PEM private key (ECDSA P-256) valid
// for validity from now, for the given host names and IP addresses.
func Generate(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("selfsigned: no host name given")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("selfsigned: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("selfsigned: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"postkit self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("selfsigned: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("selfsigned: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// WriteIfMissing writes a new certificate and key to certFile and keyFile
// (key mode 0600) unless certFile already exists. It reports whether it wrote.
func WriteIfMissing(certFile, keyFile string, hosts []string, validity time.Duration) (bool, error) {
	if _, err := os.Stat(certFile); err == nil {
		return false, nil
	}
	certPEM, keyPEM, err := Generate(hosts, validity)
	if err != nil {
		return false, err
	}
	for _, dir := range []string{filepath.Dir(certFile), filepath.Dir(keyFile)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("selfsigned: %w", err)
		}
	}
	// The key first: a certificate without its key would make the daemons
	// refuse to start, a key without certificate is simply regenerated.
	if err := safefile.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return false, err
	}
	if err := safefile.WriteFile(certFile, certPEM, 0o644); err != nil {
		return false, err
	}
	return true, nil
}
