package inetd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/urfave/cli/v2"
)

// writeCert writes a throwaway self-signed certificate for localhost and
// 127.0.0.1 to certFile and keyFile and returns a pool that trusts it.
func writeCert(t testing.TB, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.MkdirAll(filepath.Dir(f.name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.name, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	goodCert, goodKey := filepath.Join(dir, "good/cert.pem"), filepath.Join(dir, "good/key.pem")
	writeCert(t, goodCert, goodKey)
	otherCert, otherKey := filepath.Join(dir, "other/cert.pem"), filepath.Join(dir, "other/key.pem")
	writeCert(t, otherCert, otherKey)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name       string
		cert, key  string
		wantConfig bool
		wantErr    string
	}{
		{"neither exists", missing, missing + "2", false, ""},
		{"both exist", goodCert, goodKey, true, ""},
		{"only the certificate", goodCert, missing, false, "does not"},
		{"only the key", missing, goodKey, false, "does not"},
		{"garbage certificate", garbage, goodKey, false, "loading TLS certificate"},
		{"key of another certificate", goodCert, otherKey, false, "loading TLS certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := Config{CertFile: tt.cert, KeyFile: tt.key}.TLSConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("TLSConfig() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("TLSConfig() error = %v", err)
			}
			if (conf != nil) != tt.wantConfig {
				t.Fatalf("TLSConfig() = %v, want a config: %v", conf, tt.wantConfig)
			}
			if conf != nil && (conf.MinVersion != tls.VersionTLS12 || len(conf.Certificates) != 1) {
				t.Errorf("TLSConfig() MinVersion = %x with %d certificates, want TLS 1.2 with 1", conf.MinVersion, len(conf.Certificates))
			}
		})
	}
}

// runFlags runs a cli.App with Flags on args and returns what
// ConfigFromContext made of them.
func runFlags(t *testing.T, root control.Root, args ...string) Config {
	t.Helper()
	var got Config
	app := &cli.App{
		Name:   "test",
		Flags:  Flags(),
		Action: func(c *cli.Context) error { got = ConfigFromContext(c, root); return nil },
	}
	if err := app.Run(append([]string{"test"}, args...)); err != nil {
		t.Fatalf("Run(%q): %v", args, err)
	}
	return got
}

func TestConfigFromContext(t *testing.T) {
	root := control.Root("/srv/postkit")
	t.Run("defaults", func(t *testing.T) {
		got := runFlags(t, root)
		want := Config{CertFile: "/srv/postkit/etc/tls/cert.pem", KeyFile: "/srv/postkit/etc/tls/key.pem", Grace: DefaultGrace}
		if got.CertFile != want.CertFile || got.KeyFile != want.KeyFile || got.Grace != want.Grace ||
			len(got.Listen) != 0 || got.TLSImplicit || got.User != "" {
			t.Errorf("ConfigFromContext() = %+v, want %+v", got, want)
		}
	})
	t.Run("flags", func(t *testing.T) {
		got := runFlags(t, root, "--listen", "127.0.0.1:2525", "--listen", "[::1]:2525", "--tls-implicit",
			"--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--user", "mail", "--grace", "5s")
		want := Config{Listen: []string{"127.0.0.1:2525", "[::1]:2525"}, TLSImplicit: true,
			CertFile: "/c.pem", KeyFile: "/k.pem", User: "mail", Grace: 5 * time.Second}
		if !slices.Equal(got.Listen, want.Listen) || got.TLSImplicit != want.TLSImplicit || got.CertFile != want.CertFile ||
			got.KeyFile != want.KeyFile || got.User != want.User || got.Grace != want.Grace {
			t.Errorf("ConfigFromContext() = %+v, want %+v", got, want)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("POSTKIT_LISTEN", "127.0.0.1:25,:587")
		t.Setenv("POSTKIT_TLS_IMPLICIT", "true")
		t.Setenv("POSTKIT_TLS_CERT", "/e/c.pem")
		t.Setenv("POSTKIT_TLS_KEY", "/e/k.pem")
		t.Setenv("POSTKIT_USER", "postkit")
		got := runFlags(t, root)
		if !slices.Equal(got.Listen, []string{"127.0.0.1:25", ":587"}) || !got.TLSImplicit ||
			got.CertFile != "/e/c.pem" || got.KeyFile != "/e/k.pem" || got.User != "postkit" {
			t.Errorf("ConfigFromContext() from the environment = %+v", got)
		}
	})
}

func TestServeRefusesImplicitTLSWithoutCertificate(t *testing.T) {
	cfg := Config{Listen: []string{"127.0.0.1:0"}, TLSImplicit: true, CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	serve := func(net.Listener) error { t.Error("serve called"); return nil }
	err := Serve(cfg, nil, serve, nil)
	if err == nil || !strings.Contains(err.Error(), "--tls-implicit needs a certificate") {
		t.Errorf("Serve(--tls-implicit, no certificate) = %v, want an error about the certificate", err)
	}
}

func TestServeListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serve := func(net.Listener) error { t.Error("serve called"); return nil }
	for _, addr := range []string{l.Addr().String(), "127.0.0.1:notaport"} {
		cfg := Config{Listen: []string{"127.0.0.1:0", addr}}
		if err := Serve(cfg, nil, serve, nil); err == nil || !strings.HasPrefix(err.Error(), "inetd: ") {
			t.Errorf("Serve(--listen %s) = %v, want an inetd: error", addr, err)
		}
	}
}

// TestServeStopsWhenServeReturns checks that a serve returning on its own
// (an accept failure) stops every listener, calls shutdown once, and that
// Serve reports the error unless it is net.ErrClosed.
func TestServeStopsWhenServeReturns(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name    string
		err     error
		wantErr error
	}{
		{"failure", boom, boom},
		{"closed", net.ErrClosed, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := make(chan struct{}, 1)
			first <- struct{}{}
			serve := func(l net.Listener) error {
				select {
				case <-first:
					return tt.err
				default:
				}
				// The other listener: accept until Serve closes it.
				for {
					c, err := l.Accept()
					if err != nil {
						return err
					}
					c.Close()
				}
			}
			shutdowns := 0
			shutdown := func(ctx context.Context) error { shutdowns++; return nil }
			cfg := Config{Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}}
			err := Serve(cfg, nil, serve, shutdown)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Serve() = %v, want %v", err, tt.wantErr)
			}
			if shutdowns != 1 {
				t.Errorf("shutdown called %d times, want 1", shutdowns)
			}
		})
	}
}
