package pop3

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxUID is the longest unique-id RFC 1939 §7 allows.
const maxUID = 70

// UID returns the unique-id listing value (UIDL) of the message stored in
// the Maildir file filename. It is the one place that decides UIDLs.
//
// The value is the file name up to its first ':', that is without the info
// part (":2,FLAGS"), so it survives flag changes and moving from new/ to
// cur/; it keeps the ",S=" and ",W=" size fields, which never change. RFC 1939
// §7 allows only 1 to 70 octets in 0x21-0x7E, so:
//
//   - a key of such octets, without '%', of at most 70 octets is used as is;
//   - otherwise '%' and every octet outside 0x21-0x7E are written as %XX
//     (upper-case hex), and the result is used if it has at most 70 octets;
//   - otherwise the value is "%%" followed by the 64 hex digits of the
//     SHA-256 of the key.
//
// The first two forms are reversible, so distinct keys give distinct values,
// and never contain "%%", so they cannot meet the third form. postkit's own
// names (SECONDS.M<usec>P<pid>Q<n>R<16 hex>.HOST,S=..,W=..) exceed 70 octets
// with most host names and take the third form.
func UID(filename string) string {
	key, _, _ := strings.Cut(filename, ":")
	return uidFromKey(key)
}

func uidFromKey(key string) string {
	plain := key != "" && len(key) <= maxUID
	for i := 0; plain && i < len(key); i++ {
		plain = key[i] > 0x20 && key[i] < 0x7f && key[i] != '%'
	}
	if plain {
		return key
	}
	var b strings.Builder
	for i := 0; i < len(key) && b.Len() <= maxUID; i++ {
		c := key[i]
		if c <= 0x20 || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	if key != "" && b.Len() <= maxUID {
		return b.String()
	}
	sum := sha256.Sum256([]byte(key))
	return "%%" + hex.EncodeToString(sum[:])
}
