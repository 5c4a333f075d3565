// Package imapmsg reads stored messages the way IMAP FETCH and SEARCH see
// them: ENVELOPE, BODYSTRUCTURE, BODY[section], BINARY[section] and the
// SEARCH keys that look at contents (RFC 3501, RFC 9051, RFC 3516). imapd
// uses it for every message it serves; package imapcache keeps what it
// computes so that most FETCHes never open a file.
//
// # Stored form and wire form
//
// Maildir files hold messages with LF line endings (package maildir);
// clients see them with CRLF. Every size and offset this package reports
// (RFC822.SIZE, section sizes, BODYSTRUCTURE octets and lines, <partial>
// origins) is exact for that CRLF form, which is what maildir.NewCRLFReader
// produces: each LF not preceded by CR becomes CRLF, everything else (a
// bare CR, NUL bytes, 8-bit bytes) passes unchanged. Sections are streamed
// from the file, never built in memory, and their size is known before the
// first byte is written, as an IMAP literal requires.
//
// # Parsing
//
// The MIME structure (RFC 2045, RFC 2046) is found in one pass over the
// file that keeps the file offset, the CRLF offset and the line count of
// every entity. go-message parses no offsets, so only that pass is done
// here; charsets, RFC 2047 words and address semantics come from
// go-message and the standard library. The rules, which follow Dovecot
// where the RFCs leave room:
//
//   - The header ends at the first empty line, which belongs to it. A
//     message without one is all header and has an empty body; a bare CR
//     ends no line.
//   - A delimiter is a line starting with "--" and a boundary, a close
//     delimiter one where "--" follows the boundary (RFC 2046 §5.1.1, which
//     wants nothing but white space after them; like Dovecot we accept
//     anything, and the longest matching boundary wins). Delimiters of
//     every enclosing multipart are recognised, so a part that is never
//     closed ends where an outer part does. The preamble and the epilogue
//     are in no part.
//   - The line ending before a delimiter belongs to the delimiter: it is
//     taken from the body that ends there or, if that body is empty, from
//     the header's blank line. A close delimiter keeps its own line ending,
//     and an entity ends where the last thing inside it ended (Dovecot's
//     rules, checked against Dovecot by the tests, so that part numbers
//     and sizes stay the same for clients moving from Dovecot). One
//     exception: when the header of the message inside a message/rfc822
//     part gives its last line ending to the delimiter, the part keeps it
//     and so does that message's header, so that HEADER followed by TEXT
//     is the part (RFC 3501 §6.4.5 includes the blank line in every header
//     fetch); Dovecot's HEADER leaves it out.
//   - A multipart in which no part is found has one empty text/plain part
//     (IMAP has no empty multipart); a multipart without a boundary
//     parameter, like any invalid Content-Type, is text/plain;
//     charset=us-ascii (RFC 2045 §5.2).
//   - message/rfc822 and message/global parts are taken apart whatever
//     their transfer encoding (an encoded one is a header without body, as
//     in Dovecot). Entities nest at most 99 deep; a multipart or message
//     deeper than that is opaque, application/octet-stream (Dovecot's
//     limit), and after 10000 entities no delimiter is recognised.
//   - A message (the top level, or inside a message/rfc822 part) with
//     neither MIME-Version nor Content-Type is not MIME: its other Content-*
//     fields are ignored, as Dovecot does. Of duplicate MIME fields the
//     first counts; of duplicate envelope fields the last (Dovecot again).
//   - Header fields are read from the first 256 KiB of each header and
//     lines are looked at in their first 64 KiB; sizes never depend on
//     these limits.
//
// Malformed messages (NUL bytes, 8-bit headers, broken boundaries, huge
// lines, CR line endings, files shorter than their size) never make it
// fail or hang; only read errors do.
//
// # Use
//
// Open (or New, for any io.ReaderAt) gives a Message; Envelope reads only
// the header, BodyStructure and sections of parts read the file once and
// remember the structure, BodySection and BinarySection return a Section
// whose Size is exact and whose WriteTo writes it. A Matcher evaluates
// SEARCH criteria, opening a message only when the criteria need its
// contents.
package imapmsg
