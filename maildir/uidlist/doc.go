// Package uidlist keeps the IMAP UIDs of a Maildir folder in Dovecot's own
// files, written and locked exactly as Dovecot 2.3 does, so that Dovecot and
// postkit (imapd, and pop3d for its Dovecot-style UIDLs) can serve the same
// Maildir at the same time and a user can move between them without any
// client downloading its mail again.
//
// Everything below was checked against Dovecot 2.3.19 running on real
// Maildirs (doveadm fetch/status/flags/mailbox subscribe, traced with
// strace) and its source (src/lib-storage/index/maildir/maildir-uidlist.c,
// maildir-filename.c, maildir-keywords.c, lib-storage/mailbox-uidvalidity.c,
// list/subscription-file.c, lib/file-dotlock.c); the package's tests run
// Dovecot against it where doveadm is installed.
//
// # dovecot-uidlist
//
// Each folder (the Maildir++ root for INBOX, .NAME/ for the others) has a
// text file dovecot-uidlist: a header line, then one line per message in
// increasing UID order, every line ending in LF:
//
//	3 V1795331363 N11 Gaee3100b2395026b044b000083ecc375
//	4 :1000000010.M1P1Q10.host
//	5 W1871 :1795336972.M123456P4242Q1R8f3a0c1d2e4b5a69.mx,S=1834
//	12 :1795336980.M5P9Q2R0011223344556677.mx,S=2210,W=2270
//
// The header is the version (3), then space-separated fields, each a key
// letter and a value: V the UIDVALIDITY, N the next UID, G the mailbox GUID
// (32 hex digits); other fields (Dovecot knows P, the POP3 UIDL format) are
// kept. A message line is the UID, optional extension fields (key 'A'-'Z',
// value up to the next space: S physical size, W virtual size, G message
// GUID, P POP3 UIDL, O POP3 order; unknown ones are kept), a space, ':' and
// the file name up to its info separator ':' — so ",S=" and ",W=" stay
// part of it, ":2,FLAGS" does not. A message keeps its UID while its file
// moves from new/ to cur/ and its flags change, because only that part is
// compared. Version 1 files ("1 <uidvalidity> <next uid>", lines
// "<uid> <name>") are read too and rewritten as version 3.
//
// Dovecot appends the lines of new messages without rewriting the header,
// so N may lag behind: the next UID is the larger of N and the last UID
// plus one. It rewrites the whole file (to dovecot-uidlist.tmp, renamed
// over dovecot-uidlist) when it drops the lines of expunged messages, which
// it does once a quarter of them are gone, and when the file lacks a GUID;
// lines of gone files may therefore linger. A UID is never given out twice:
// N only grows, also past expunged highest UIDs.
//
// New messages get UIDs in the order of Dovecot's maildir_filename_sort_cmp
// (CompareNames): by the seconds at the start of the name, then the
// microseconds after "M", then byte-wise; files in new/ and cur/ are sorted
// together. Readdir order and file times play no part.
//
// A new folder's UIDVALIDITY comes from the Maildir++ root's
// dovecot-uidvalidity file (see NextUIDValidity): the current time for the
// first folder, then one more each time, so that recreated folders never
// repeat a value.
//
// # Locking
//
// Every writer of dovecot-uidlist, dovecot-keywords and subscriptions holds
// a dotlock: the file NAME.lock, created with O_CREAT|O_EXCL (Dovecot's
// default dotlock_use_excl=yes) and removed when done. The uidlist lock
// holds "PID:HOSTNAME" (no newline); the keywords and subscriptions locks
// are empty because they become the new file.
//
// A waiter overrides a lock (removes it and, after 0.1-0.2 s, takes its
// own) if it names a process on this host that no longer exists, the PID
// being looked at once the lock is 2 s old; a lock of a living local
// process is never overridden. Any other lock (another host's, or without a
// PID) is stale when neither it nor the file it protects has changed
// (inode, size, ctime, mtime; at first sight the lock's ctime counts) for
// the stale timeout: 2 minutes for dovecot-uidlist and dovecot-keywords,
// 30 seconds for subscriptions. Dovecot waits up to 2 minutes + 2 s for a
// uidlist lock (less with mail_max_lock_timeout); we wait up to
// Options.LockTimeout (10 s) and fail with ErrLockTimeout. Within one
// process, a lock naming our own PID is live only while one of our
// goroutines holds it.
//
// The uidlist is updated under its lock: re-read, compare with new/ and cur/,
// then either append the new lines (one write, then fdatasync) or write the
// whole list to dovecot-uidlist.tmp, fsync and rename it over
// dovecot-uidlist, then fsync the directory. (It is dovecot-keywords and
// subscriptions, not the uidlist, whose lock file is filled and renamed into
// place.) Readers need no lock: appends are single writes, and a reader
// ignores an unterminated last line, as Dovecot's does; such a torn line
// left by a crash makes the next writer rewrite the file.
//
// Mailbox.Sync reads the uidlist and lists new/ and cur/ without the lock
// and takes it only when something must be written. It lists new/ before
// cur/, so that a file moving between them is seen at least once. Since a
// file being renamed in cur/ (a flag change, which needs no lock) can be
// missed by a listing, a listing that misses a listed file counts only if
// the directories' mtimes did not change during it and were older than a
// few clock ticks (25 ms) when it began; otherwise it is repeated, and a
// record is dropped from the file only after such a stable listing. A
// Mailbox remembers its last result and returns it after three stat calls
// when neither the uidlist nor the directories changed.
//
// # dovecot-keywords
//
// IMAP keywords are the lower-case letters a-z in Maildir flags; each
// folder's dovecot-keywords maps them to names, one line per keyword:
// the letter's index (0 for 'a'), a space and the name.
//
//	0 $Forwarded
//	1 $Junk
//
// Dovecot writes it only while holding the dovecot-uidlist lock: it
// removes any dovecot-keywords.lock, creates it with O_EXCL, writes the
// whole table into it, makes its mtime later than the old file's (readers
// re-read only when the mtime in seconds changes), fsyncs it and renames it
// to dovecot-keywords. New keywords take the lowest free index. Names match
// case-insensitively.
//
// # subscriptions
//
// The Maildir++ root's subscriptions file lists subscribed mailboxes; see
// Subscriptions for its two versions and Subscribe for how it is updated.
package uidlist
