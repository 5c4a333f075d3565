package uidlist

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postkit/postkit/maildir"
)

// SubscriptionsFileName is the name of the file in a Maildir++ root that
// lists the subscribed mailboxes (IMAP SUBSCRIBE, LSUB).
const SubscriptionsFileName = "subscriptions"

// subscriptionsV2Header starts a version 2 subscriptions file.
const subscriptionsV2Header = "V\t2\n\n"

// Subscriptions is a subscriptions file.
//
// Version 2, which Dovecot 2.3 writes for a new file, starts with the line
// "V<TAB>2" and an empty line; each following line is one mailbox whose
// hierarchy levels are separated by TAB, each level in its on-disk form
// (modified UTF-7) with the bytes 0x01, TAB, CR and LF written as 0x01
// followed by '1', 't', 'r' and 'n'. Version 1 (no header, as Courier and
// older Dovecot write it, and which Dovecot keeps when it updates such a
// file) has one mailbox per line with levels separated by '.'. INBOX is
// "INBOX" in both.
type Subscriptions struct {
	// Version is 1 or 2.
	Version int
	// Names are the subscribed mailboxes as IMAP names (UTF-8, levels
	// separated by "/"), in file order.
	Names []string
	// Other holds the lines, as they are, that name no mailbox
	// postkit can address (maildir.FolderName refuses them); they are kept
	// when the file is written again.
	Other []string
}

// ParseSubscriptions parses a subscriptions file of either version. Empty
// lines are dropped (Dovecot drops them as invalid); an unterminated last
// line counts. It never fails.
func ParseSubscriptions(data []byte) *Subscriptions {
	s := &Subscriptions{Version: 1}
	if rest, ok := bytes.CutPrefix(data, []byte(subscriptionsV2Header)); ok {
		s.Version, data = 2, rest
	}
	lines, torn := splitLines(data)
	if torn {
		lines = append(lines, strings.TrimRight(string(data[bytes.LastIndexByte(data, '\n')+1:]), "\r"))
	}
	for _, line := range lines {
		if line == "" {
			continue
		}
		if name, ok := subscriptionName(line, s.Version); ok {
			s.Names = append(s.Names, name)
		} else {
			s.Other = append(s.Other, line)
		}
	}
	return s
}

// Marshal returns the file: the version 2 header if Version is 2, then the
// names and then the other lines, one per line.
func (s *Subscriptions) Marshal() []byte {
	var b strings.Builder
	if s.Version == 2 {
		b.WriteString(subscriptionsV2Header)
	}
	for _, name := range s.Names {
		if line, ok := subscriptionLine(name, s.Version); ok {
			b.WriteString(line + "\n")
		}
	}
	for _, line := range s.Other {
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// Has reports whether the IMAP mailbox name is subscribed (INBOX in any
// case, RFC 3501 §5.1).
func (s *Subscriptions) Has(name string) bool {
	if maildir.IsInbox(name) {
		name = "INBOX"
	}
	for _, n := range s.Names {
		if n == name {
			return true
		}
	}
	return false
}

// subscriptionName maps a line to an IMAP name.
func subscriptionName(line string, version int) (string, bool) {
	var levels []string
	if version == 2 {
		levels = strings.Split(line, "\t")
		for i, l := range levels {
			levels[i] = tabUnescape(l)
			if strings.Contains(levels[i], ".") {
				// Would be another level in a Maildir++ directory name.
				return "", false
			}
		}
	} else {
		levels = strings.Split(line, ".")
	}
	if len(levels) == 1 && maildir.IsInbox(levels[0]) {
		return "INBOX", true
	}
	name, err := maildir.FolderName("." + strings.Join(levels, "."))
	return name, err == nil
}

// subscriptionLine maps an IMAP name to a line.
func subscriptionLine(name string, version int) (string, bool) {
	if maildir.IsInbox(name) {
		return "INBOX", true
	}
	elem, err := maildir.FolderDirName(name)
	if err != nil {
		return "", false
	}
	levels := strings.Split(strings.TrimPrefix(elem, "."), ".")
	if version != 2 {
		return strings.Join(levels, "."), true
	}
	for i, l := range levels {
		levels[i] = tabEscape(l)
	}
	return strings.Join(levels, "\t"), true
}

var tabEscaper = strings.NewReplacer("\x01", "\x011", "\t", "\x01t", "\r", "\x01r", "\n", "\x01n")

func tabEscape(s string) string { return tabEscaper.Replace(s) }

// tabUnescape undoes tabEscape as Dovecot's str_append_tabunescaped does:
// 0x01 followed by any other byte stands for that byte, and a 0x01 at the
// end is dropped.
func tabUnescape(s string) string {
	if !strings.Contains(s, "\x01") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\x01' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			break
		}
		switch s[i] {
		case '1':
			b.WriteByte('\x01')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// ReadSubscriptions reads the subscriptions file of the Maildir++ root; a
// missing file is an empty version 2 list.
func ReadSubscriptions(root string) (*Subscriptions, error) {
	data, err := os.ReadFile(filepath.Join(root, SubscriptionsFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return &Subscriptions{Version: 2}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("uidlist: %w", err)
	}
	return ParseSubscriptions(data), nil
}

// Subscribe adds the IMAP mailbox name to the subscriptions of the
// Maildir++ root, or removes it if on is false, and reports whether the file
// changed. The name need not exist (RFC 3501 §6.3.6).
//
// It writes as Dovecot's subscription-file.c does: it takes the dotlock
// subscriptions.lock (O_EXCL, no content, overridden after 30 s without
// change), writes the new list into the lock file, fsyncs it and renames it
// over subscriptions. The file keeps its version; a new file is version 2.
func Subscribe(root, name string, on bool, opt *Options) (bool, error) {
	if maildir.IsInbox(name) {
		name = "INBOX"
	} else if _, err := maildir.FolderDirName(name); err != nil {
		return false, err
	}
	o := Open(root, opt).opt
	p := filepath.Join(root, SubscriptionsFileName)
	lock, err := lockDotlock(p, dotlockOptions{timeout: o.LockTimeout, stale: subscriptionsStaleTimeout})
	if err != nil {
		return false, err
	}
	s, err := ReadSubscriptions(root)
	if err != nil {
		lock.release()
		return false, err
	}
	if s.Has(name) == on {
		return false, lock.release()
	}
	if on {
		s.Names = append(s.Names, name)
	} else {
		kept := s.Names[:0]
		for _, n := range s.Names {
			if n != name {
				kept = append(kept, n)
			}
		}
		s.Names = kept
	}
	if err := lock.replace(s.Marshal(), time.Time{}); err != nil {
		return false, err
	}
	return true, nil
}
