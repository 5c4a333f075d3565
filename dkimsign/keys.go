// Package dkimsign signs outgoing mail with DKIM (RFC 6376) and keeps the
// signing keys: an Ed25519 key (RFC 8463) and an RSA-2048 key per domain,
// used side by side, since not every verifier knows Ed25519 yet.
//
// # Key files
//
//	ROOT/etc/dkim/DOMAIN/ed25519.key   Ed25519 private key, PEM "PRIVATE KEY" (PKCS #8)
//	ROOT/etc/dkim/DOMAIN/rsa.key       RSA-2048 private key, PEM "PRIVATE KEY" (PKCS #8)
//
// DOMAIN is the domain in lower-case ASCII (A-labels). The files are mode
// 0600, their directories 0700: only the user postkit runs as reads them.
// A missing file means no signature of that kind; a domain without either is
// not signed.
//
// # Selectors
//
// The selector of a key is derived from the key itself, so it needs no file
// of its own and changes whenever the key does: the algorithm name, a dash
// and the first 8 hex digits of the SHA-256 of the public key's DER
// SubjectPublicKeyInfo, as in "ed25519-3f2a9c01" and "rsa-b71e0d44". A new
// key (mkuser domain dkim-keygen --force) thus gets a new DNS name, and the
// record of the old key can stay published while mail signed with it is
// still in transit.
package dkimsign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/safefile"
)

// The key algorithms, which are also the key files' base names.
const (
	Ed25519 = "ed25519"
	RSA     = "rsa"
)

// Algorithms are the kinds of key a domain has, in signing order.
var Algorithms = []string{Ed25519, RSA}

// RSABits is the size of new RSA keys: RFC 8301 §3.2 asks for at least 1024
// bits and recommends 2048, the most a single-string TXT record at many DNS
// providers holds comfortably.
const RSABits = 2048

// ErrExist is wrapped by Generate's error when a key exists and replace was
// not asked for.
var ErrExist = errors.New("dkimsign: key exists")

// Key is one signing key of a domain.
type Key struct {
	Domain    string // lower-case ASCII
	Algorithm string // Ed25519 or RSA
	Selector  string
	Signer    crypto.Signer
	Path      string // the key file
}

// Dir returns the directory of domain's keys, ROOT/etc/dkim/DOMAIN, with
// the domain normalised; a domain that cannot be a path element is refused.
func Dir(root control.Root, domain string) (string, string, error) {
	d, err := address.ParseDomain(domain)
	if err != nil {
		return "", "", fmt.Errorf("dkimsign: %q is not a domain: %w", domain, err)
	}
	if address.IsLiteral(d) {
		return "", "", fmt.Errorf("dkimsign: %s is an address literal, not a domain", d)
	}
	if err := control.SafeElement(d); err != nil {
		return "", "", fmt.Errorf("dkimsign: %w", err)
	}
	return root.Etc(filepath.Join("dkim", d)), d, nil
}

// Load returns domain's keys, Ed25519 first; none (and no error) when it has
// none.
func Load(root control.Root, domain string) ([]*Key, error) {
	dir, d, err := Dir(root, domain)
	if err != nil {
		return nil, err
	}
	var keys []*Key
	for _, alg := range Algorithms {
		path := filepath.Join(dir, alg+".key")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dkimsign: %w", err)
		}
		signer, err := ParseKey(data)
		if err != nil {
			return nil, fmt.Errorf("dkimsign: %s: %w", path, err)
		}
		if got := algorithm(signer.Public()); got != alg {
			return nil, fmt.Errorf("dkimsign: %s holds a %s key, want %s", path, got, alg)
		}
		k, err := newKey(d, signer)
		if err != nil {
			return nil, err
		}
		k.Path = path
		keys = append(keys, k)
	}
	return keys, nil
}

// Generate makes the keys domain lacks (all of them when replace is set)
// and writes them durably. It returns every key of the domain afterwards
// and which of them are new.
func Generate(root control.Root, domain string, replace bool) (keys []*Key, created []string, err error) {
	dir, d, err := Dir(root, domain)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("dkimsign: %w", err)
	}
	for _, alg := range Algorithms {
		path := filepath.Join(dir, alg+".key")
		if _, err := os.Stat(path); err == nil && !replace {
			continue
		}
		var signer crypto.Signer
		switch alg {
		case Ed25519:
			_, signer, err = ed25519.GenerateKey(rand.Reader)
		case RSA:
			signer, err = rsa.GenerateKey(rand.Reader, RSABits)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dkimsign: generating a %s key: %w", alg, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(signer)
		if err != nil {
			return nil, nil, fmt.Errorf("dkimsign: %w", err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := safefile.WriteFile(path, data, 0o600); err != nil {
			return nil, nil, fmt.Errorf("dkimsign: %w", err)
		}
		created = append(created, alg)
	}
	keys, err = Load(root, d)
	return keys, created, err
}

// ParseKey reads a PEM private key: PKCS #8 ("PRIVATE KEY"), or PKCS #1
// ("RSA PRIVATE KEY") as other tools write RSA keys. Only Ed25519 and RSA
// keys of at least 1024 bits (RFC 8301 §3.2) are accepted.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is no private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("RSA key of %d bits is too short (RFC 8301: at least 1024)", k.N.BitLen())
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (want Ed25519 or RSA)", key)
}

func algorithm(pub crypto.PublicKey) string {
	switch pub.(type) {
	case ed25519.PublicKey:
		return Ed25519
	case *rsa.PublicKey:
		return RSA
	}
	return fmt.Sprintf("%T", pub)
}

func newKey(domain string, signer crypto.Signer) (*Key, error) {
	alg := algorithm(signer.Public())
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("dkimsign: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Key{Domain: domain, Algorithm: alg, Selector: alg + "-" + hex.EncodeToString(sum[:4]), Signer: signer}, nil
}

// RecordName is the DNS name of the key's record (RFC 6376 §3.6.2.1):
// SELECTOR._domainkey.DOMAIN, without the final dot.
func (k *Key) RecordName() string { return k.Selector + "._domainkey." + k.Domain }

// PublicKeyData is the p= value of the key's record: base64 of the DER
// SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), of the raw 32-byte key for
// Ed25519 (RFC 8463 §4).
func (k *Key) PublicKeyData() string {
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		return base64.StdEncoding.EncodeToString(pub)
	default:
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return base64.StdEncoding.EncodeToString(der)
	}
}

// Record is the text of the key's TXT record.
func (k *Key) Record() string {
	return "v=DKIM1; k=" + k.Algorithm + "; p=" + k.PublicKeyData()
}
