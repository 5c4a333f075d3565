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
//	queue/ID          entry ID: its envelope as enqueued, an empty line, the message;
//	                  its existence IS the entry
//	queue/.tmp.*      an entry being written (flocked by its writer)
//	env/ID            entry ID's current envelope, once it has been updated
//	env/.tmp.*        an envelope being written (safefile temporaries)
//	runner.lock       flock(2)ed by the one running queue runner
//	journal/          mode 0700: the queue runner's delivery journal (package
//	                  queue owns its files; CreateJournal creates them)
//	maildrop/         mode 1733: where any local user's sendmail drops mail
//	maildrop/ID.RAND  a complete drop, for the runner to import (Pickup)
//	maildrop/.tmp.*   a drop being written
//
// queue/ and env/ are mode 0700, their files mode 0600: only the owner reads
// the queue. Others may pass through the spool directory (mode 0711) but
// not list it, and only to reach maildrop/. ID is a queue ID: 16 characters of base32hex
// (0-9, A-V) encoding 48 bits of milliseconds since 1970 and 32 random bits,
// so IDs sort by arrival time and are safe as file names (an entry imported
// from a drop has the drop's ID: the time its writer gave the drop's name,
// normally when it was written). The spool does not
// look into messages; postkit's writers store them with LF line endings, as
// Maildir does, and sendq turns them into CRLF on the wire.
//
// # Owners
//
// Every file and directory in the spool belongs to the spool's owner, who
// runs the queue runner. Programs that run as the owner (smtpd, sendq,
// deliver started by sendq) write into queue/ and env/ directly. Root may
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
// drop file's owner, the submitting user, under the queue ID its name
// starts with, and then removed. So a crash in between does not queue it
// twice: when that ID is taken by an entry (queue/ID, or the env/ID a
// crashed Remove left) whose local-uid is the drop file's owner, a runner
// died after queuing the drop and before removing it; Pickup leaves the
// entry as it is, fsyncs queue/ (which that runner may not have done), and
// removes the drop without queuing it again (event=pickup
// status=already-queued). No other entry counts, so no user can make
// another's message go unqueued or touch another's entry: a drop named
// after an entry with another local-uid, or none (smtpd's), is queued
// under a fresh ID, and that entry is only read. Two cases may still
// queue a drop twice, never lose it: a crash before the removal of a drop
// queued under a fresh ID, and a drop whose removal fails (an I/O error),
// which Pickup does not look at again but the next runner imports again
// once its entry is gone. A failure to write into the spool leaves the
// drop for the next scan; Pickup then queues no more drops but still
// removes those queued already, since the runner goes on to deliver.
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
// An entry is one file, queue/ID, the queue file: the envelope as it was
// enqueued, an empty line, the message (the format of a drop, below). Once
// something about the entry is recorded (a recipient delivered, an attempt,
// a hold) its current envelope is env/ID, which overrides the one in the
// queue file; the queue file itself is never changed after its commit.
// Postfix's queue file is one file per message too: every message costs
// one file creation, one fsync of the file and one of queue/, where two
// files (message and envelope) would cost twice the creations and fsyncs
// on the hot path that an MX's throughput depends on.
//
//	state  queue/ID          env/ID    meaning
//	 0     -                 -         no entry
//	 1     .tmp.* written    -         Enqueue in progress (holds the temporary's lock)
//	 2     durable           -         the entry exists, as enqueued: visible to List, Due, Load
//	 3     durable           durable   the entry, with its recorded state
//	 4     durable           replaced  Update: rename(2) of a new envelope over env/ID
//	 5     gone              present   Remove in progress: the entry is gone
//
// Enqueue (0 to 2), in this order:
//
//  1. pick an ID (Pickup passes the drop's) and marshal the envelope
//     (checking it);
//  2. create queue/.tmp.RANDOM exclusively (safefile.CreateTemp: an
//     unnamed O_TMPFILE inode linked under that name, or O_EXCL) and flock
//     it; if Clean has meanwhile unlinked it, create another;
//  3. write the envelope, the empty line and the message into it, fsync it;
//  4. rename it to queue/ID without replacing anything (renameat2's
//     RENAME_NOREPLACE, or link and unlink); the rename is the commit
//     point. If queue/ID exists (two IDs clashed) or env/ID does (left by
//     a crashed Remove), write a fresh ID over the old one in the file (IDs
//     have a fixed length), fsync, and try again; with the drop's ID,
//     remove the temporary and fail instead (Pickup looks again);
//  5. fsync queue/, release the lock and return the ID. Only now may smtpd
//     answer 250.
//
// A crash, or a failure, before the rename leaves state 1: a temporary that
// no reader ever sees. When Enqueue fails, also after the rename (an fsync
// of queue/ that fails), it removes its file itself and the caller is told
// nothing was queued; a crashed enqueuer cannot, so Clean does (below).
//
// Update (2 or 3, to 4, to 3) writes env/ID with safefile.WriteFile: a crash
// leaves the old envelope (or none, the one in the queue file) or the new
// one, never a mix, so no recipient's state is lost. At worst the outcome of
// the delivery attempt that was under way is lost, and the recipients it
// reached get the message again at the next attempt (as with qmail).
//
// An Update that fails (full or read-only file system, I/O error) leaves
// the old envelope: state 2 or 3 as it was, with recipients that were
// reached still pending. The queue runner keeps their outcomes in memory,
// delivers nothing more of the entry and writes the envelope again later
// (package queue); only if it exits first do they get the message again.
//
// Remove (2 or 3, to 5, to 0): unlink queue/ID; if env/ID exists, fsync
// queue/ and unlink env/ID. The queue file goes first and its removal is
// durable before env/ID goes, so that a crash can never bring the queue file
// back without the envelope that records which recipients are done. env/ is
// not fsynced after the last unlink: a crash that undoes it leaves an
// envelope without an entry (state 5), which readers ignore (Load checks for
// the queue file after reading env/ID) and Clean removes.
//
// The removal of an entry that was never updated is not fsynced. Nothing
// was recorded about it, so every recipient was in the attempt that
// finished it, and a machine crash that undoes the unlink can only deliver
// that attempt again: the duplicate of the delivery in flight that a crash
// can always cause. A killed process cannot undo an unlink, only the
// kernel's crash can. Postfix and qmail do not fsync removals either; an
// fsync there would be one flush of the disk per delivered message.
//
// A Remove that fails before the unlink of queue/ID leaves the entry as it
// was (the runner then records the outcomes with an Update if it can and
// tries the removal again later). One that fails after it has removed the
// entry; if the fsync of queue/ failed, a crash may bring the entry back, as
// a crash before the removal would.
//
// Clean(age) removes leftovers older than age: queue/.tmp.* files whose
// lock it can take (a live enqueuer holds its lock however slow its client
// is, so its file is never removed), env/.tmp.* files, and env/ID files
// without queue/ID. The queue runner should call Clean when it starts and
// then every hour or so; an age of an hour is ample, since a live writer's
// temporary is protected by its lock and an envelope temporary lives for
// milliseconds.
//
// # Locking
//
// Several enqueuers and one queue runner work on the spool at once, with
// `sendq rm` and `sendq hold` from the command line:
//
//   - Enqueuers never conflict: each writes its own temporary and commits
//     it under a fresh ID (Pickup: the drop's) without replacing anything.
//   - runner.lock (LockRunner, safefile.LockFile) admits one queue runner; a
//     second `sendq run` fails with ErrRunnerActive.
//   - Each entry has a lock: flock(2) on queue/ID (Lock, EntryLock), the
//     same open file as the temporary Enqueue wrote, so Enqueue holds it
//     until the entry is committed; the queue runner holds it for a
//     whole delivery attempt (Lock, Load, deliver, Update or Remove, Unlock);
//     rm and hold take it (Spool.Update and Spool.Remove wait up to
//     LockWait, then fail with ErrBusy). So a change to the envelope never
//     slips in between the runner's Load and its Update and gets lost, and an
//     Update never recreates a removed entry: removal happens only under the
//     lock, and Update checks under it that the locked queue file still has
//     its name.
//   - Readers (Load, List, Due, OpenMessage) take no lock: envelopes are only
//     replaced by rename, so they read an old or a new one.
//
// flock locks die with their process, so a crash never leaves a stale lock.
//
// # Waking the queue runner
//
// Watch returns a channel that receives a wake-up whenever a queue file is
// renamed into queue/ (a new entry), an envelope into env/ (an Update such
// as a release from hold) or a drop into maildrop/, using inotify(7) on the
// three. Enqueuers and
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
