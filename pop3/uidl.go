package pop3

import (
	"math"
	"strconv"

	"github.com/postkit/postkit/maildir/uidlist"
)

// UIDL returns the unique-id listing value (RFC 1939 §7) of the message with
// IMAP UID uid in a mailbox with UIDVALIDITY validity, in the form of
// Dovecot's default pop3_uidl_format "%08Xu%08Xv": both numbers as 8
// hexadecimal digits. Despite the X, the digits are lower-case: Dovecot's
// %X is its "hex" modifier, printf's "%llx" (lib/var-expand.c), as Dovecot
// 2.3.19 answers. Dovecot's pop3 and postkit's pop3d thus give the same
// message the same value, so a client never fetches a message again
// because the mailbox moved from one server to the other.
//
// A UID is never reused within a UIDVALIDITY (RFC 3501 §2.3.1.1) and survives
// flag changes and the move from new/ to cur/, so the value is unique in the
// mailbox and stable for the message's lifetime. It changes only when the
// dovecot-uidlist file is lost or corrupt and the messages are numbered anew
// under a greater UIDVALIDITY; clients then fetch them again, which is
// better than risking one value naming two messages.
func UIDL(uid, validity uint32) string {
	// fmt.Sprintf("%08x%08x") by hand: a login lists every message.
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i], b[i+8] = hexDigits[uid&0xf], hexDigits[validity&0xf]
		uid, validity = uid>>4, validity>>4
	}
	return string(b[:])
}

const hexDigits = "0123456789abcdef"

// entryUIDL returns the UIDL of a message of the dovecot-uidlist, as
// Dovecot's pop3 does: a mailbox migrated to Dovecot from another server may
// carry each message's old UIDL in the record's P field, used as it is, or
// an empty P meaning the file's base name (Dovecot's maildir_mail_get_special
// for MAIL_FETCH_UIDL_BACKEND); all other messages get UIDL(uid, validity).
//
// A saved value is used only if all its octets are in 0x21-0x7E, the only
// ones a UIDL may have (RFC 1939 §7); like Dovecot we do not enforce the 70
// octet limit on it, because such a value is what the previous server gave
// the client, and changing it would make the client fetch everything again.
func entryUIDL(e uidlist.Entry, validity uint32) string {
	for _, f := range e.Ext {
		if f.Key != 'P' {
			continue
		}
		saved := f.Value
		if saved == "" {
			saved = e.Base
		}
		if printable(saved) {
			return saved
		}
		break
	}
	return UIDL(e.UID, validity)
}

// printable reports whether s is a valid unique-id apart from its length:
// not empty, octets 0x21-0x7E only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// pop3Order returns the key a message is listed by: its record's O field
// (the POP3 order of a migrated mailbox, a decimal number), or, without a
// usable one, a value after every 32-bit order, so that such messages
// follow in UID order, as Dovecot's MAIL_SORT_POP3_ORDER sorts them.
func pop3Order(e uidlist.Entry) uint64 {
	for _, f := range e.Ext {
		if f.Key == 'O' {
			if n, err := strconv.ParseUint(f.Value, 10, 64); err == nil {
				return n
			}
			break
		}
	}
	return math.MaxUint32
}
