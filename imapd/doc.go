// Package imapd is postkit's IMAP server: the go-imap/v2 imapserver
// Session behind imapd(8), serving each user's Maildir++ (package
// maildir) to IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) clients.
// cmd/imapd wires its flags to a Server and hands it to inetd.Serve.
//
// # Mailboxes
//
// INBOX is the Maildir++ root, any other mailbox the folder directory that
// maildir.Folder names: "Sent" is .Sent/, "a/b" is .a.b/, names are
// modified UTF-7 on disk and UTF-8 on the wire to clients that enabled
// UTF8=ACCEPT or IMAP4rev2 (go-imap converts). The hierarchy delimiter is
// "/". Names maildir.Folder refuses ('.', control characters, "//", a
// leading "/", wildcards) are NO [CANNOT]: no name leads outside the
// user's Maildir.
//
// Each folder's UIDs, UIDVALIDITY and keyword letters are Dovecot's own
// files (package maildir/uidlist): dovecot-uidlist, dovecot-keywords, and
// the root's dovecot-uidvalidity and subscriptions, written under
// Dovecot's dotlocks, so that Dovecot can serve the same Maildir. Flags are
// the letters of the file names' info part: D \Draft, F \Flagged, R
// \Answered, S \Seen, T \Deleted, a-z keywords; other letters (such as
// P) are kept but not shown. INTERNALDATE is the file's mtime, which
// APPEND sets. RFC822.SIZE is ,W= in the file name, else counted.
//
// # Special use
//
// Folders named Sent, Drafts, Trash, Junk and Archive (the ones mkuser
// creates) have the special-use attribute of their name (RFC 6154), as in
// Dovecot's default configuration. CREATE ... (USE (\Attr ...)) stores
// the attributes in the file postkit-special-use in the folder's
// directory, which then replaces the default:
//
//	\Archive
//	\Sent
//
// one attribute per line; readers split on any white space and ignore
// words that are not \All, \Archive, \Drafts, \Flagged, \Junk, \Sent or
// \Trash. The file moves with RENAME and goes with DELETE.
//
// # Many processes, one Maildir
//
// Every connection may be its own process (inetd, systemd Accept=yes), and
// deliver, pop3d, other imapd processes and Dovecot change a Maildir at
// any time. A selected folder is the client's view (selected): its
// messages in sequence order with the flags it was told. After every
// command (go-imap calls Poll) and during IDLE the view is compared with
// the folder (uidlist Sync: dovecot-uidlist against new/ and cur/), and
// the client gets FLAGS for new keywords, EXPUNGE for messages gone (not
// during FETCH, STORE and SEARCH, RFC 9051 §7.5.1), EXISTS for new ones
// and FETCH (FLAGS) for flag changes. A message counts as gone only when
// a listing during which new/ and cur/ did not change misses it (a file
// being renamed for a flag change can escape a listing), and new messages
// join only in UID order without gaps, so no message is reported gone
// while it exists or shown out of order. During IDLE, inotify on new/ and
// cur/ (one instance per process) wakes the session.
//
// Files are read by their last known name and found again (by their
// unique name in new/ and cur/, then through the UID list) when another
// process renamed them; STORE applies +FLAGS and -FLAGS to the file's
// current flags in the same way. Messages expunged by another process
// while the client may not yet be told are left out of FETCH and STORE
// answers, which end in NO [EXPUNGEISSUED].
//
// The selected folder's view is this session's own and is compared with
// the disk directly, rather than through go-imap's MailboxTracker and
// SessionTracker: those keep one in-process "server view" that every
// session's sequence numbers are translated against, which gives no
// count of the client's view (needed for "*"), miscounts when more than
// one message arrives in one update, and panics when its count goes down,
// while a per-session diff of the disk serves other processes and other
// sessions of this one alike. inotify wakes IDLE sessions in both cases.
// What the views are compared with is shared, though: the sessions of a
// process use one uidlist.Mailbox and one imapcache.Cache per folder,
// which remember the last listing and the loaded cache file and check
// them with a few stat calls, so a folder already read costs the next
// SELECT no directory listing.
//
// # Message contents
//
// ENVELOPE, BODYSTRUCTURE, sections, BINARY and the SEARCH keys on
// contents come from package imapmsg, with sizes exact for the CRLF form;
// INTERNALDATE, RFC822.SIZE, ENVELOPE and BODYSTRUCTURE are kept in the
// folder's postkit-cache (package imapcache), so that FETCH of those
// items opens no file once they are known.
//
// # Login
//
// LOGIN and AUTHENTICATE PLAIN need TLS (STARTTLS or implicit), except
// from loopback addresses when Server.AllowPlaintextLoopback is set. The
// login is an address checked against etc/users and etc/app-passwords
// (package users); the Maildir is the one package resolve delivers to. A
// failed login is answered after a delay that doubles each time, and the
// third closes the connection with BYE.
//
// # Log
//
// One line per session on the logger, key=value:
//
//	imapd: session client=192.0.2.1:50312 user=alice@example.org tls=true appended=1 copied=0 expunged=2 duration=3.2s result=ok
//
// result is ok, no-login, too-many-login-failures or
// uidvalidity-changed. Errors the client only sees as a short NO are
// logged as "error client=... user=... what=... error=..." (imapd(8) prefixes
// the program name).
package imapd
