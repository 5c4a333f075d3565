// Package pop3 is postkit's POP3 server (RFC 1939) over Maildir mailboxes,
// with the extensions CAPA and response codes (RFC 2449, RFC 3206), AUTH
// PLAIN (RFC 5034, RFC 4616) and STLS (RFC 2595). APOP is not offered:
// passwords are stored hashed, and APOP needs the password itself.
//
// The protocol side (Server, one session per connection) talks to the
// mailbox through the Mailbox interface and checks passwords through an
// Authenticator; Maildrop is the Maildir implementation of Mailbox and
// Accounts ties logins to postkit's users file and mail directories.
//
// # Sessions
//
// Logins (USER/PASS or AUTH PLAIN) are accepted only over TLS, either STLS or
// implicit TLS, or in plain text from a loopback address when
// Server.AllowPlaintextLoopback is set. A failed login is answered after a
// delay that doubles with each failure; the third closes the connection.
// Commands may be pipelined (RFC 2449 §6.6): replies are buffered and sent
// when no complete command is waiting. A connection that sends no complete
// command for Server.IdleTimeout (10 minutes, RFC 1939 §3) is closed without
// entering the UPDATE state.
//
// # On-disk state in each Maildir
//
// At login the session takes an exclusive flock(2) on the file LockFile
// ("pop3.lock") in the Maildir root and keeps it until the session ends;
// another session for the same mailbox is refused with [IN-USE] (RFC 1939 §8).
// Then it brings the Maildir's dovecot-uidlist up to date (package
// maildir/uidlist: Dovecot's file, format and locks, which gives every new
// message the next IMAP UID), and the listing is the messages it lists, in
// UID order. It stays fixed for the session: messages delivered meanwhile
// appear at the next login. The listed messages still in new/ are renamed
// to cur/NAME:2, (as Dovecot does).
//
// pop3d keeps the uidlist even where no IMAP server runs, as Dovecot's pop3
// does, so that UIDLs never change when imapd or Dovecot later starts
// serving the mailbox. A uidlist that cannot be read or updated (its lock
// held too long) fails the login with [SYS/TEMP] rather than give other
// UIDLs.
//
// Sizes are those of the message with CRLF line endings, the octets RETR
// sends before dot-stuffing: the ",W=" field of the name, else counted once
// and remembered in SizeCacheFile ("pop3-sizes", format described there).
//
// RETR marks the message seen at once, by adding the S flag to its name in
// cur/ (not at QUIT), so an IMAP client on the same mailbox shows it read.
// TOP does not. DELE only marks; QUIT removes the marked files and fsyncs
// cur/; a session that ends any other way removes nothing. A file that
// another program renamed (flag change) is found again by its name up to
// ':'; one it removed is skipped.
//
// # Unique ids
//
// The UIDL of a message is Dovecot's default (pop3_uidl_format
// "%08Xu%08Xv", see UIDL): its UID and the mailbox's UIDVALIDITY as 8
// hex digits each, so pop3d and Dovecot's pop3 give the same
// UIDLs for the same Maildir. As in Dovecot, a migrated mailbox's uidlist
// may override them: a record's P field is its UIDL (empty: the file name
// up to ':'), and O fields set the listing order.
package pop3
