// Package spool is postkit's mail queue: the files through which smtpd,
// sendq's sendmail interface and deliver's forwards hand messages to the
// queue runner (`sendq run`), which delivers them, retries, bounces and
// removes them. Enqueuing is writing files; no daemon has to be running, and
// a runner started later finds everything that was queued.
//
// # Layout
//
// The spool directory (ROOT/spool, mode 0711, owned by the daemons' user
// postkit, "the spool's owner") holds:
//
//	env/ID            the envelope of entry ID; its existence IS the entry
//	env/.tmp.*        an envelope being written (safefile temporaries)
//	msg/ID            the message of entry ID, exactly the bytes enqueued
//	runner.lock       flock(2)ed by the one running queue runner
//	maildrop/         mode 1733: where any local user's sendmail drops mail
//	maildrop/ID.RAND  a complete drop, for the runner to import (Pickup)
//	maildrop/.tmp.*   a drop being written
//
// env/ and msg/ are mode 0700, their files mode 0600: only the owner reads
// the queue. Others may pass through the spool directory (mode 0711) but
// not list it, and only to reach maildrop/. ID is a queue ID: 16 characters of base32hex
// (0-9, A-V) encoding 48 bits of milliseconds since 1970 and 32 random bits,
// so IDs sort by arrival time and are safe as file names. The spool does not
// look into messages; postkit's writers store them with LF line endings, as
// Maildir does, and sendq turns them into CRLF on the wire.
//
// # Owners
//
// Every file and directory in the spool belongs to the spool's owner, who
// runs the queue runner. Programs that run as the owner (smtpd, sendq,
// deliver started by sendq) write into env/ and msg/ directly. Root may
// too (sendmail run by cron or an administrator's script, `sendq hold` and
// `sendq rm`, deliver forwarding for an alias): when the process runs as
// root, everything the spool package creates is given to the owner and
// group of the spool directory (fchown on the new file before it gets its
// final name, or right after mkdir), or the runner could not read it. Any
// other user cannot write into the spool and goes through maildrop/
// (Submit chooses).
//
// # Maildrop
//
// maildrop/ is the spool's only door for local users other than its owner
// and root, as Postfix's maildrop directory once was: world-writable and
// sticky (mode 1733, owned by the spool's owner), so that anyone may create
// a file there, nobody but its owner can list it, and only a file's owner,
// the directory's owner and root may remove or rename it.
//
// A drop is one file: an envelope in the format below, an empty line, then
// the message, exactly the bytes to enqueue. Its name is a queue ID (the
// time of the drop, so names sort by it), '.', and 128 random bits in
// lower-case base32hex. Drop writes it under maildrop/.tmp.RANDOM (mode
// 0600), fsyncs it, makes it mode 0644 (the runner reads it as another
// user: nobody else can find it, since the name cannot be listed or
// guessed), renames it to its final name (the commit point: a drop under
// its final name is complete), and fsyncs maildrop/; a user who may not
// open maildrop/ for that syncs the file system (syncfs(2)) instead. The
// rename wakes the runner (Watch); with no runner running the drop waits
// for the next one.
//
// The queue runner imports drops (Pickup) oldest first, each as input from
// an untrusted user: names not starting with '.' that are not drop names,
// symbolic links (never followed), anything but a regular file, a file
// with more than one link, a file of more than 64 MiB plus 1 MiB of
// envelope, an envelope line over 64 KiB, an envelope without the empty
// line, one that does not parse, one that is not exactly what
// MarshalEnvelope writes for an envelope with only the sender, recipients,
// their orcpt and notify, ret, envid, body, smtputf8 and requiretls
// (nothing a submitter may not choose: hold, delivery state, auth-user,
// client-addr, helo, junk, local-uid), or whose sender or recipients are
// not addresses: each is refused, logged (event=pickup status=refused) and
// removed, never queued. A good drop is enqueued with local-uid set to the
// drop file's owner, the submitting user, and then removed; a crash in
// between queues it again at the next Pickup (a duplicate, never a loss). A
// failure to write into the spool leaves the drop for the next scan.
// Drops that are still .tmp.* after an hour belong to crashed writers and
// Clean removes them. The runner must own maildrop/ to remove drops; Pickup
// refuses to run otherwise.
//
// # Entry states
//
// Like qmail's INTERNALS, here is every state an entry's files can be in,
// who moves it on, and what a crash leaves. "Durable" means fsynced along
// with the directory entry.
//
//	state  msg/ID            env/ID    meaning
//	 0     -                 -         no entry
//	 1     being written     -         Enqueue in progress (holds msg/ID's lock)
//	 2     durable           -         message stored, envelope not yet committed
//	 3     durable           durable   the entry exists: visible to List, Due, Load
//	 4     durable           replaced  Update: rename(2) of a new envelope over the old
//	 5     durable or gone   -         Remove: envelope unlinked (the entry is gone)
//
// Enqueue (0 to 3), in this order:
//
//  1. pick an ID; create msg/ID with O_EXCL (a clash picks another ID) and
//     flock it; if it has meanwhile been unlinked by Clean, start again;
//  2. copy the message into it, fsync it, fsync msg/;
//  3. write the envelope to env/.tmp.RANDOM, fsync it, rename it to env/ID,
//     fsync env/ (safefile.WriteFile). The rename is the commit point;
//  4. release the lock and return the ID. Only now may smtpd answer 250.
//
// A crash, or a failure, in steps 1 and 2 leaves state 1 or 2: an orphaned
// msg/ID that no reader ever sees, because readers look at env/ only. A
// crash in step 3 before the rename leaves that, plus an env/.tmp.* file.
// After the rename the entry is complete: the message was durable before the
// envelope existed. When Enqueue fails it removes its files itself; a crashed
// enqueuer cannot, so Clean does (below).
//
// Update (3 to 4 to 3) replaces env/ID with safefile.WriteFile: a crash
// leaves the old envelope or the new one, never a mix, so no recipient's
// state is lost. At worst the outcome of the delivery attempt that was under
// way is lost, and the recipients it reached get the message again at the
// next attempt (as with qmail).
//
// An Update that fails (full or read-only file system, I/O error) leaves
// the old envelope: state 3 as it was, with recipients that were reached
// still pending. The queue runner keeps their outcomes in memory, delivers
// nothing more of the entry and writes the envelope again later (package
// queue); only if it exits first do they get the message again.
//
// Remove (3 to 5 to 0): unlink env/ID, fsync env/, unlink msg/ID. The
// envelope goes first so that there is never an envelope without its
// message; a crash in between leaves an orphaned msg/ID for Clean. msg/ is
// not fsynced after the unlink: a crash that undoes it leaves the same
// orphan, so the fsync would buy nothing.
//
// A Remove that fails before the unlink of env/ID leaves state 3 (the
// runner then records the outcomes with an Update if it can and tries the
// removal again later). One that fails after it has removed the entry; if
// the fsync of env/ failed, a crash may bring the envelope back, as a crash
// before the removal would.
//
// Clean(age) removes leftovers older than age: env/.tmp.* files, and msg/ID
// files without env/ID whose lock it can take (a live enqueuer holds its
// lock however slow its client is, so its file is never removed). It checks
// for env/ID again under the lock, because Enqueue commits while holding it.
// It also removes an env/ID whose msg/ID is missing, which postkit never
// leaves but a person deleting files might; such an entry cannot be
// delivered. The queue runner should call Clean when it starts and then
// every hour or so; an age of an hour is ample, since a live writer's
// message is protected by its lock and an envelope temporary lives for
// milliseconds.
//
// # Locking
//
// Several enqueuers and one queue runner work on the spool at once, with
// `sendq rm` and `sendq hold` from the command line:
//
//   - Enqueuers never conflict: each creates its own files under a fresh ID.
//   - runner.lock (LockRunner, safefile.LockFile) admits one queue runner; a
//     second `sendq run` fails with ErrRunnerActive.
//   - Each entry has a lock: flock(2) on msg/ID (Lock, EntryLock). Enqueue
//     holds it until the entry is committed; the queue runner holds it for a
//     whole delivery attempt (Lock, Load, deliver, Update or Remove, Unlock);
//     rm and hold take it (Spool.Update and Spool.Remove wait up to
//     LockWait, then fail with ErrBusy). So a change to the envelope never
//     slips in between the runner's Load and its Update and gets lost, and an
//     Update never recreates a removed entry: removal happens only under the
//     lock, and Update checks for the envelope under it.
//   - Readers (Load, List, Due, OpenMessage) take no lock: envelopes are only
//     replaced by rename, so they read an old or a new one.
//
// flock locks die with their process, so a crash never leaves a stale lock.
//
// # Waking the queue runner
//
// Watch returns a channel that receives a wake-up whenever an envelope is
// renamed into env/ (a new entry, or an Update such as a release from hold)
// or a drop into maildrop/, using inotify(7) on both. Enqueuers and
// droppers do nothing extra for it, so enqueuing never blocks and works with
// no runner running. The spool must be on a
// local file system for inotify to see other processes' changes.
//
// # Envelope format
//
// An envelope is UTF-8 text, one "key value" per line, LF-terminated,
// readable with cat. The first line is "postkit-envelope 1", the format's
// name and version. Envelope keys come first, in any order, each once; then
// one block per recipient: a "rcpt ADDRESS" line followed by that
// recipient's keys, each indented by two spaces. Example:
//
//	postkit-envelope 1
//	id 0PQ3K7T2M1A4B5C6
//	from alice@example.org
//	arrival 2026-11-22T07:02:13.123456789Z
//	next-attempt 2026-11-22T07:17:13.123456789Z
//	hold no
//	delay-notified no
//	body 8BITMIME
//	smtputf8 no
//	requiretls no
//	auth-user alice@example.org
//	client-addr 192.0.2.1:49152
//	helo laptop.example.org
//	junk dmarc
//	rcpt bob@example.org
//	  state pending
//	  attempts 1
//	  last-attempt 2026-11-22T07:02:14Z
//	  error "451 4.4.1 connection refused by mx.example.org"
//	  notify FAILURE,DELAY
//
// A value is a plain word (printable ASCII without space, '"' or '\') or a
// Go double-quoted string (strconv.Quote: \n, \", \\, \xFF, \u00e9...), so no
// value can start a line of its own; the empty string is "". Times are
// RFC 3339 in UTC ("Z"), to the nanosecond. Booleans are yes or no.
//
// Envelope keys (* required): *id, *from (empty for the null sender),
// *arrival, *next-attempt, *hold, *delay-notified, body (7BIT, 8BITMIME,
// BINARYMIME), *smtputf8, *requiretls, ret (FULL or HDRS), envid,
// auth-user, client-addr, helo, junk (why local delivery files the message
// into the recipients' Junk folders: dmarc, spf or milter), local-uid (the decimal
// user ID of the local user who submitted it with sendmail). Recipient
// keys: *state (pending, delivered, failed), *attempts, last-attempt,
// error, orcpt ("type;address"), notify (NEVER, or SUCCESS, FAILURE and
// DELAY comma separated). At least one recipient. Optional keys are written
// only when they have a value.
//
// Keys added after the first release of version 1 (junk, local-uid) are
// optional and written only when set, so every envelope without them is
// exactly what earlier programs wrote and read; the version number changes
// only for a change that older readers must not misread.
//
// ParseEnvelope refuses anything else (another version, unknown or repeated
// keys, malformed values, a missing final newline) with an error naming the
// line; MarshalEnvelope refuses envelopes that would not parse back, so
// everything in env/ parses.
//
// # Errors
//
// File system failures are *StorageError (IsTemporary reports true): smtpd
// answers 451 4.3.0 and sendmail exits 75. Errors wrapping ErrInvalid are
// permanent: the envelope given to Enqueue or Update was unusable, or a file
// on disk is damaged.
package spool
