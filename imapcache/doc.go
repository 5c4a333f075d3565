// Package imapcache keeps, per Maildir folder, what IMAP FETCH and SEARCH
// need of each message beyond its file name: the file size, the size with
// CRLF line endings (RFC822.SIZE), the INTERNALDATE, the ENVELOPE and the
// BODYSTRUCTURE. imapd answers FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)
// of a large folder from it without opening a message file. The cache is
// only a cache: a missing, damaged or outdated file costs time, never
// correctness, because every entry can be computed again from the message
// (package imapmsg does that).
//
// # Use
//
// Open a Cache for a folder when it is selected (it reads nothing yet),
// Lookup or Fill entries by the message's file name up to the info
// separator ':' (uidlist.Entry.Base: stable while flags change), and Save
// after a command that filled entries, passing the set of messages still
// in the folder so that entries of expunged messages go.
//
// # File format
//
// The cache of a folder is the file postkit-cache in the folder directory
// (beside cur/, new/ and dovecot-uidlist); postkit-cache.lock next to it is
// the lock file of writers. All integers are little-endian; "uvarint" and
// "varint" are the variable-length encodings of encoding/binary (LEB128;
// varint zig-zag encoded), "string" is a uvarint length and that many
// bytes.
//
//	offset 0   8 bytes   magic "PKIMAPC" and the version byte 0x01
//	offset 8   uint32    N, the number of records
//	offset 12  N uint32  the offset of each record from the start of the file
//	           records   N records, sorted by key (byte-wise), each running
//	                     up to the next record's offset or the checksum
//	end - 4    uint32    CRC-32C (Castagnoli) of everything before it
//
// A record is its key (string: the message file name up to ':') and then
// fields up to its end, each a tag byte, a uvarint payload length and the
// payload:
//
//	tag 1  size            uvarint: bytes in the file
//	tag 2  vsize           uvarint: bytes with CRLF line endings
//	tag 3  internal date   varint seconds since 1970 UTC, uvarint nanoseconds
//	tag 4  envelope        see below
//	tag 5  body structure  see below
//
// A field appears at most once; readers skip tags they do not know. The
// envelope (RFC 3501 §7.4.2) is:
//
//	date        byte 0 (none) or 1, then varint seconds since 1970 UTC and
//	            varint zone offset in seconds east of UTC
//	subject     string
//	addresses   six lists, From, Sender, Reply-To, To, Cc, Bcc: each a
//	            uvarint count, then per address its name, mailbox and host
//	            (strings; group markers as in IMAP: empty host)
//	in-reply-to uvarint count, then the message ids (strings, no brackets)
//	message-id  string (no brackets)
//
// A body structure is one node, in extended form (BODYSTRUCTURE):
//
//	single part byte 'S', type, subtype (strings), parameters, id,
//	            description, encoding (strings), uvarint size, a kind byte
//	            and extension data. Kind 0: nothing more; 1 (text/*):
//	            uvarint lines; 2 (message/rfc822): envelope, body structure
//	            node, uvarint lines.
//	multipart   byte 'M', uvarint count of parts (at least 1), the parts'
//	            nodes, subtype (string), parameters, extension data.
//	parameters  uvarint count, then name and value strings, names sorted
//	extension   disposition: byte 0 (none) or 1, then value (string) and
//	            parameters; language: uvarint count and strings; location:
//	            string. MD5 is not kept (always NIL).
//
// Numbers of items never exceed what the remaining bytes could hold and
// body structures nest at most 256 deep; data that breaks these rules or
// does not decode to its exact length makes that field unknown.
//
// # Validity
//
// A file with another magic or version, a wrong checksum, offsets that are
// not increasing and inside the file, records whose fields run past their
// end, or keys out of order is ignored as a whole and replaced at the next
// Save. Message files never change once delivered and their names are
// unique, so an entry stays right as long as its file exists; in addition
// an entry whose recorded size or vsize contradicts the ",S=" or ",W=" of
// its key is ignored and recomputed.
//
// # Concurrency
//
// Readers take no lock: writers replace the file atomically (a temporary
// file renamed over it), so a reader sees the old file or the new one,
// never a mix. A writer takes an exclusive flock(2) on postkit-cache.lock,
// re-reads the file unless it is still the one it loaded, merges its own
// new entries into it (field by field; its own win), drops the entries of
// messages that are gone, writes and renames, and lets go of the lock:
// concurrent writers, in one process or several, lose no entry. Nothing is
// fsynced, since the cache is only a cache: a crash leaves the old file,
// the new one, or a file that the system did not finish writing, which
// the checksum rejects; and at worst a temporary file ".tmp.*" that
// safefile.RemoveStale cleans.
package imapcache
