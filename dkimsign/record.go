package dkimsign

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
)

// Record is a DKIM key record as published in DNS (RFC 6376 §3.6.1).
type Record struct {
	KeyType   string // k=, "rsa" when absent
	PublicKey string // p=, base64 without white space; empty: revoked
}

// ParseRecord parses the text of a DKIM key record (the TXT record's
// strings joined): a tag list (RFC 6376 §3.2) in which v=, if present, comes
// first and is DKIM1, and p= is present.
func ParseRecord(txt string) (Record, error) {
	tags, err := parseTags(txt)
	if err != nil {
		return Record{}, err
	}
	if v, ok := tags["v"]; ok && (v != "DKIM1" || tags[""] != "v") {
		return Record{}, fmt.Errorf("dkimsign: record version %q, want v=DKIM1 first", v)
	}
	p, ok := tags["p"]
	if !ok {
		return Record{}, fmt.Errorf("dkimsign: record has no p= tag")
	}
	r := Record{KeyType: tags["k"], PublicKey: strings.Join(strings.Fields(p), "")}
	if r.KeyType == "" {
		r.KeyType = "rsa"
	}
	if r.PublicKey != "" {
		if _, err := base64.StdEncoding.DecodeString(r.PublicKey); err != nil {
			return Record{}, fmt.Errorf("dkimsign: p= is not base64: %w", err)
		}
	}
	return r, nil
}

// Matches reports whether the record publishes k's public key.
func (r Record) Matches(k *Key) bool {
	if r.KeyType != k.Algorithm {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(r.PublicKey)
	if err != nil {
		return false
	}
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		return pub.Equal(ed25519.PublicKey(got))
	case *rsa.PublicKey:
		// §3.6.1 says SubjectPublicKeyInfo; verifiers also take PKCS #1.
		if p, err := x509.ParsePKIXPublicKey(got); err == nil {
			rp, ok := p.(*rsa.PublicKey)
			return ok && rp.Equal(pub)
		}
		if p, err := x509.ParsePKCS1PublicKey(got); err == nil {
			return p.Equal(pub)
		}
	}
	return false
}

// parseTags splits a tag list "a=1; b = 2;" (RFC 6376 §3.2). Tag names are
// case-sensitive; a duplicate tag is an error. The key "" holds the name of
// the first tag.
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, spec := range strings.Split(s, ";") {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("dkimsign: tag %q has no '='", strings.TrimSpace(spec))
		}
		name = strings.TrimSpace(name)
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return nil, fmt.Errorf("dkimsign: bad tag name %q", name)
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("dkimsign: tag %s appears twice", name)
		}
		if _, seen := tags[""]; !seen {
			tags[""] = name
		}
		tags[name] = strings.TrimSpace(value)
	}
	return tags, nil
}
