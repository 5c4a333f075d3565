package uidlist

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FileName is the name of the UID list in each Maildir folder.
const FileName = "dovecot-uidlist"

// ErrCorrupt is wrapped by the errors Parse returns for data that is not a
// UID list Dovecot would accept.
var ErrCorrupt = errors.New("uidlist: corrupt dovecot-uidlist")

// A Field is one extension field of a header or record line: a key byte
// followed by a value without spaces, such as 'W' and "1871".
type Field struct {
	Key   byte
	Value string
}

// A Record is one message line of a UID list.
type Record struct {
	UID uint32
	// Ext holds the record's extension fields in file order. Dovecot
	// writes S (physical size) and W (virtual size) when the file name has
	// no ,S= or ,W=, G (message GUID) when it differs from the name, and P
	// and O (POP3 UIDL and order) for migrated mailboxes. Keys are
	// always 'A' to 'Z'.
	Ext []Field
	// Name is the message's file name up to its info (the first ':'),
	// ",S=" and ",W=" included: the part that stays the same when the
	// file moves from new/ to cur/ or its flags change.
	Name string
}

// Lookup returns the value of the extension field key.
func (r Record) Lookup(key byte) (string, bool) {
	for _, f := range r.Ext {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// A List is the contents of a dovecot-uidlist file.
type List struct {
	UIDValidity uint32
	// NextUID is the UID the next new message gets. Dovecot appends records
	// without rewriting the header, so the N field on disk may be lower;
	// Parse sets NextUID to at least the last record's UID plus one.
	NextUID uint32
	// GUID is the mailbox GUID: 32 lower-case hex digits, or "" if the file
	// has none (Dovecot then rewrites it with a new one).
	GUID string
	// Extra holds the header fields other than V, N and G, in file order.
	// Dovecot knows P (the mailbox's POP3 UIDL format); others are kept
	// as they are.
	Extra []Field
	// Records are the messages, in increasing UID order.
	Records []Record
}

// Parse parses a dovecot-uidlist file as Dovecot 2.3 does: version 3
// (written by Dovecot since 1.1) and version 1 (Dovecot 1.0 and Courier's
// courierimapuiddb). An unterminated last line is ignored, as Dovecot's
// line reader does: it is a write in progress or torn by a crash, and the
// UIDs in it were never given out. Record fields whose key is not 'A' to
// 'Z' are dropped, as Dovecot drops them. Everything else Dovecot would call
// broken is an error wrapping ErrCorrupt.
func Parse(data []byte) (*List, error) {
	l, _, err := parse(data)
	return l, err
}

// parse is Parse that also reports whether data ends in a torn line.
func parse(data []byte) (l *List, torn bool, err error) {
	lines, torn := splitLines(data)
	if len(lines) == 0 {
		return nil, torn, fmt.Errorf("%w: no header line", ErrCorrupt)
	}
	l, version, err := parseHeader(lines[0])
	if err != nil {
		return nil, torn, err
	}
	last := make(map[string]uint32) // name -> UID of its last record
	var prev uint32
	for i, line := range lines[1:] {
		r, err := parseRecord(line, version)
		if err != nil {
			return nil, torn, fmt.Errorf("%w (line %d)", err, i+2)
		}
		if r.UID <= prev {
			return nil, torn, fmt.Errorf("%w: UIDs not in increasing order at line %d (%d after %d)", ErrCorrupt, i+2, r.UID, prev)
		}
		if version == 1 && r.UID >= l.NextUID {
			return nil, torn, fmt.Errorf("%w: UID %d at line %d not below next UID %d", ErrCorrupt, r.UID, i+2, l.NextUID)
		}
		prev = r.UID
		last[r.Name] = r.UID
		l.Records = append(l.Records, r)
	}
	if len(last) < len(l.Records) {
		// A name listed twice: Dovecot keeps the later line (the file was
		// expunged, came back and was given a new UID).
		l.Records = slices.DeleteFunc(l.Records, func(r Record) bool { return last[r.Name] != r.UID })
	}
	if n := len(l.Records); n > 0 && l.NextUID <= l.Records[n-1].UID {
		l.NextUID = l.Records[n-1].UID + 1
	}
	return l, torn, nil
}

// splitLines splits data into LF-terminated lines without their LF and any
// CRs before it. An unterminated last line is left out and reported.
func splitLines(data []byte) (lines []string, torn bool) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return lines, true
		}
		lines = append(lines, string(bytes.TrimRight(data[:i], "\r")))
		data = data[i+1:]
	}
	return lines, false
}

func parseHeader(line string) (*List, int, error) {
	if len(line) < 2 || line[0] < '0' || line[0] > '9' || line[1] != ' ' {
		return nil, 0, fmt.Errorf("%w: invalid version number in header %q", ErrCorrupt, line)
	}
	l := &List{}
	version := int(line[0] - '0')
	rest := line[2:]
	switch version {
	case 1:
		f := strings.Fields(rest)
		if len(f) != 2 {
			return nil, 0, fmt.Errorf("%w: version 1 header %q", ErrCorrupt, line)
		}
		var err1, err2 error
		l.UIDValidity, err1 = parseUint32(f[0])
		l.NextUID, err2 = parseUint32(f[1])
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("%w: version 1 header %q", ErrCorrupt, line)
		}
	case 3:
		for _, f := range strings.Split(rest, " ") {
			if f == "" {
				continue
			}
			key, value := f[0], f[1:]
			var err error
			switch key {
			case 'V':
				l.UIDValidity, err = parseUint32(value)
			case 'N':
				l.NextUID, err = parseUint32(value)
			case 'G':
				l.GUID, err = parseGUID(value)
			default:
				l.Extra = append(l.Extra, Field{key, value})
			}
			if err != nil {
				return nil, 0, fmt.Errorf("%w: header field %q", ErrCorrupt, f)
			}
		}
	default:
		return nil, 0, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, version)
	}
	if l.UIDValidity == 0 || l.NextUID == 0 {
		return nil, 0, fmt.Errorf("%w: header %q lacks UID validity or next UID", ErrCorrupt, line)
	}
	return l, version, nil
}

func parseRecord(line string, version int) (Record, error) {
	var r Record
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	uid, err := parseUint32(line[:i])
	if err != nil || uid == 0 || uid == maxUID || i == len(line) || line[i] != ' ' {
		return r, fmt.Errorf("%w: invalid record %q", ErrCorrupt, line)
	}
	r.UID = uid
	rest := strings.TrimLeft(line[i:], " ")
	if version == 3 {
		for rest != "" && rest[0] != ':' {
			f, after, _ := strings.Cut(rest, " ")
			if f[0] >= 'A' && f[0] <= 'Z' {
				r.Ext = append(r.Ext, Field{f[0], f[1:]})
			}
			rest = strings.TrimLeft(after, " ")
		}
		rest = strings.TrimPrefix(rest, ":")
	}
	// Dovecot keeps what follows ':' whole but only ever compares and
	// writes it up to the info separator.
	name, _, _ := strings.Cut(rest, ":")
	if name == "" || strings.Contains(name, "/") {
		return r, fmt.Errorf("%w: invalid file name in record %q", ErrCorrupt, line)
	}
	r.Name = name
	return r, nil
}

// maxUID is the one 32-bit value that is never a UID: Dovecot uses it as
// "not assigned yet".
const maxUID = 1<<32 - 1

func parseUint32(s string) (uint32, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

func parseGUID(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return "", strconv.ErrSyntax
	}
	return hex.EncodeToString(b), nil
}

// Marshal returns the list in Dovecot's version 3 format: the header
// "3 V<uidvalidity> N<next uid> G<guid>" and the extra fields, then one line
// "<uid> [<key><value> ...] :<name>" per record.
func (l *List) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "3 V%d N%d", l.UIDValidity, l.NextUID)
	if l.GUID != "" {
		b.WriteString(" G" + l.GUID)
	}
	for _, f := range l.Extra {
		b.WriteByte(' ')
		b.WriteByte(f.Key)
		b.WriteString(f.Value)
	}
	b.WriteByte('\n')
	for _, r := range l.Records {
		appendRecord(&b, r)
	}
	return b.Bytes()
}

func appendRecord(b *bytes.Buffer, r Record) {
	b.WriteString(strconv.FormatUint(uint64(r.UID), 10))
	for _, f := range r.Ext {
		b.WriteByte(' ')
		b.WriteByte(f.Key)
		b.WriteString(f.Value)
	}
	b.WriteString(" :")
	b.WriteString(r.Name)
	b.WriteByte('\n')
}

// BaseName returns the part of a Maildir file name that a UID list records
// and matches on: everything before the first ':' (the info separator).
func BaseName(filename string) string {
	base, _, _ := strings.Cut(filename, ":")
	return base
}

// CompareNames orders new messages for UID assignment exactly as Dovecot
// 2.3 does (maildir_filename_sort_cmp): by the leading decimal number (the
// delivery time in seconds), then, when both names have one, by the number
// after the first 'M' of the second dot-separated part (the microseconds),
// then byte by byte from after the seconds, up to the info separator. Like
// Dovecot's C code it compares seconds as a 64-bit difference truncated to
// 32 bits, microseconds as wrapping 32-bit numbers and bytes as signed
// chars, so that even absurd names sort as they do in Dovecot.
func CompareNames(a, b string) int {
	s1, secs1 := leadingSeconds(a)
	s2, secs2 := leadingSeconds(b)
	ret := int32(secs1 - secs2)
	if ret == 0 {
		u1, ok1 := microseconds(s1)
		u2, ok2 := microseconds(s2)
		if ok1 && ok2 {
			ret = u1 - u2
		}
		if ret == 0 {
			ret = compareBases(s1, s2)
		}
	}
	return int(ret)
}

func leadingSeconds(s string) (rest string, secs int64) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		secs = secs*10 + int64(s[i]-'0')
		i++
	}
	return s[i:], secs
}

func microseconds(s string) (int32, bool) {
	if s == "" || s[0] != '.' {
		return 0, false
	}
	for i := 1; i < len(s) && s[i] != '.' && s[i] != ':'; i++ {
		if s[i] == 'M' {
			var usecs int32
			for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
				usecs = usecs*10 + int32(s[i]-'0')
			}
			return usecs, true
		}
	}
	return 0, false
}

func compareBases(a, b string) int32 {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] && a[i] != ':' {
		i++
	}
	c1, c2 := byteAt(a, i), byteAt(b, i)
	if (c1 == 0 || c1 == ':') && (c2 == 0 || c2 == ':') {
		return 0
	}
	return int32(int8(c1)) - int32(int8(c2))
}

// byteAt returns s[i], or 0 (C's terminating NUL) past the end.
func byteAt(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}
