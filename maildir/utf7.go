package maildir

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mailboxBase64 is the "modified BASE64" of RFC 3501 §5.1.3: RFC 2045's
// alphabet with ',' in place of '/', and no '=' padding.
var mailboxBase64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").
	WithPadding(base64.NoPadding).Strict()

var errUTF7 = errors.New("invalid modified UTF-7")

// encodeUTF7 encodes a UTF-8 string in modified UTF-7 (RFC 3501 §5.1.3):
// printable US-ASCII (0x20-0x7e) represents itself except '&', which becomes
// "&-"; every run of other characters becomes '&', the modified BASE64 of its
// UTF-16BE form, and '-'. s must be valid UTF-8.
func encodeUTF7(s string) string {
	var b strings.Builder
	var run []uint16
	flush := func() {
		if len(run) == 0 {
			return
		}
		raw := make([]byte, 0, 2*len(run))
		for _, u := range run {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mailboxBase64.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = utf16.AppendRune(run, r)
		}
	}
	flush()
	return b.String()
}

// decodeUTF7 decodes modified UTF-7 and accepts only the one encoding that
// encodeUTF7 produces, so that two different directory names never decode to
// the same mailbox name: no raw 8-bit or control bytes, no BASE64 for
// printable ASCII, no unterminated or empty shifts other than "&-", no two
// adjacent shifts, no stray bits, no unpaired UTF-16 surrogates.
func decodeUTF7(s string) (string, error) {
	var b strings.Builder
	afterShift := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			afterShift = false
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errUTF7
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			afterShift = false
			continue
		}
		if afterShift {
			// "&AOQ-&AOQ-" spells what "&AOQA5A-" spells.
			return "", errUTF7
		}
		raw, err := mailboxBase64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 || strings.ContainsAny(enc, "\r\n") {
			return "", errUTF7
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for k := 0; k < len(units); k++ {
			r := rune(units[k])
			if utf16.IsSurrogate(r) {
				if k+1 == len(units) {
					return "", errUTF7
				}
				r = utf16.DecodeRune(r, rune(units[k+1]))
				if r == utf8.RuneError {
					return "", errUTF7
				}
				k++
			} else if r >= 0x20 && r <= 0x7e {
				return "", errUTF7
			}
			b.WriteRune(r)
		}
		afterShift = true
	}
	return b.String(), nil
}
