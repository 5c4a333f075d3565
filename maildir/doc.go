// Package maildir is the one way postkit puts a message into a Maildir, and
// the authority on how Maildir++ folders and message files are named on disk.
// deliver, sendq (for local recipients), pop3d and imapd all go through it,
// so that every file has the same name format and the same sizes.
//
// # Layout
//
// Each virtual user has one Maildir++ (ROOT/mail/DOMAIN/LOCALPART/, see
// package control). Its root is INBOX; every other folder is a directory
// directly under the root whose name starts with '.':
//
//	LOCALPART/
//	  cur/ new/ tmp/             INBOX
//	  .Sent/                     folder "Sent"
//	    cur/ new/ tmp/
//	    maildirfolder            empty file: "this is a folder, not a root"
//	  .a.b/                      folder "a/b" (the parent "a" need not exist)
//	  .Entw&APw-rfe/             folder "Entwürfe"
//	  .&ZeVnLIqe-/               folder "日本語"
//	  .&-/                       folder "&"
//
// Directories are created with mode 0700, files with mode 0600.
//
// # Owners
//
// Files and directories written into a Maildir belong to the Maildir's
// owner. On a server that is the daemons' user (postkit), which owns
// ROOT/mail; pop3d, imapd and sendq run as that user and must be able to
// read, rename and remove everything in it. A program run as root (mkuser
// add, deliver run by an administrator) would otherwise leave root-owned
// files there that they cannot use. So when the process runs as root, every
// directory this package creates (Create: the domain directory, the user's
// directory, cur/ new/ tmp/, folders) takes the owner and group of the
// directory it is made in, and every file (Deliver's message file, the
// maildirfolder marker) those of its directory, right after creating it
// (a message file while it is still in tmp/). Starting from ROOT/mail, everything below inherits its owner. A
// process that is not root cannot give files away: it creates them as
// itself, which is right when it runs as the owner, as the daemons do.
//
// # Folder names
//
// IMAP mailbox names use "/" as the hierarchy delimiter and are UTF-8 (as
// IMAP4rev2 and UTF8=ACCEPT send them). "INBOX", in any case (RFC 3501
// §5.1), is the root. Any other name maps to "." followed by its hierarchy
// levels joined with ".", each level encoded in modified UTF-7 (RFC 3501
// §5.1.3), as Dovecot and Courier store them:
//
//   - printable US-ASCII (0x20-0x7e) stands for itself, except '&', which is
//     written "&-";
//   - any run of other characters is written '&', the run in UTF-16BE
//     encoded in BASE64 with ',' instead of '/' and without '=' padding,
//     and '-'. "ü" is "&APw-", "日本語" is "&ZeVnLIqe-".
//
// Only names whose mapping is unambiguous and stays inside the root are
// accepted (errors wrap ErrInvalidName): no empty name or empty level (a
// leading or trailing "/", or "//"), no '.' anywhere (it is Maildir++'s level
// separator, so "a.b" would be "a/b"; this also rules out "." and ".."
// levels), no control characters (C0, DEL, C1, NUL among them), no LIST
// wildcards '*' and '%', valid UTF-8 only, and at most 255 bytes once
// encoded. Levels named like INBOX below the top ("INBOX/x" is ".INBOX.x")
// are ordinary names with case kept. Decoding accepts only the encoding this
// package produces, so a directory name and an IMAP name correspond one to
// one; Folders skips directories that have no IMAP name.
//
// # Message files
//
// A message is delivered by creating tmp/NAME exclusively (an unnamed
// O_TMPFILE inode linked as tmp/NAME where the kernel allows, else O_EXCL;
// safefile.CreateNew), writing and fsyncing it, renaming it to new/NAME (or
// cur/NAME:2,FLAGS) without ever replacing a file there
// (safefile.RenameNoReplace: renameat2's RENAME_NOREPLACE, one directory
// operation, where qmail's link and unlink take two) and fsyncing the target
// directory. Readers never see a partial file, and a file in new/ or cur/ is
// complete and durable. Files in tmp/ whose inode has not changed for 36
// hours belong to crashed writers (CleanTmp).
//
// Files store the message with LF line endings: every CRLF of the input
// becomes LF, a bare CR is kept. NewCRLFReader turns a file back into the
// network form (every LF not preceded by CR becomes CRLF). A file name is
//
//	SECONDS.M<usec>P<pid>Q<n>R<random>.HOST,S=<size>,W=<vsize>[:2,FLAGS]
//
// for example
//
//	1795336972.M123456P4242Q1R8f3a0c1d2e4b5a69.mx.example.org,S=1834,W=1871:2,FS
//
// where SECONDS and usec are the delivery time, pid the writing process, n
// a per-process delivery counter, random 16 hex digits from crypto/rand and
// HOST the host name with '/' written \057, ':' \072 and ',', '\', spaces,
// control and 8-bit bytes also as \ooo octal, as the Maildir specification
// does for the first two. S= is the file's size in bytes; W= is the size
// NewCRLFReader serves, that is the size POP3 LIST and IMAP RFC822.SIZE report
// (Dovecot's "virtual size"). Both are exact for files written by Deliver.
// VirtualSize computes W for files without it.
//
// The info part ":2," is present only in cur/ and is followed by the flags,
// one ASCII letter each, in ASCII order without duplicates: D (draft),
// F (flagged), P (passed), R (replied), S (seen), T (trashed, IMAP
// \Deleted), and the lower-case letters a-z for keywords, whose meaning a
// folder's dovecot-keywords file records in Dovecot. Files in new/ carry no
// info. SetFlags and MoveToCur rename files within and into cur/; ParseName
// takes names apart, tolerating names written by other software.
package maildir
