package imapd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postkit/postkit/imapcache"
	"github.com/postkit/postkit/imapmsg"
	"github.com/postkit/postkit/maildir/uidlist"
)

// Fetch answers FETCH (RFC 9051 §6.4.5). UID and FLAGS come from the
// view; INTERNALDATE (the file's mtime), RFC822.SIZE (,W= in the file name
// when there), ENVELOPE and BODYSTRUCTURE from the folder's cache (package
// imapcache) when it has them, else from the file, parsed by package
// imapmsg, and are then cached. Body sections and BINARY (RFC 3516) are
// streamed from the file with exact CRLF sizes. Fetching a section
// without .PEEK sets \Seen, and FLAGS is then returned too. Messages
// expunged by another process meanwhile are left out and the command ends
// in NO [EXPUNGEISSUED] (RFC 5530).
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel := s.sel
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	markSeen := false
	if !sel.readOnly {
		for _, bs := range options.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range options.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}
	rev1 := s.rev1()
	var missing bool
	var ferr error
	for _, i := range idx {
		m := sel.msgs[i]
		if m.gone {
			missing = true
			continue
		}
		ok, err := s.fetchOne(w, uint32(i+1), m, options, markSeen, rev1)
		if err != nil {
			ferr = err
			break
		}
		if !ok {
			missing = true
		}
	}
	s.saveCache()
	if ferr != nil {
		return ferr
	}
	if missing {
		return noError("EXPUNGEISSUED", "Some messages were expunged")
	}
	return nil
}

// saveCache writes what FETCH, SEARCH or STATUS added to the folder's
// cache, leaving out messages that are gone. A failure costs only time
// later.
func (s *session) saveCache() {
	sel := s.sel
	if sel == nil || sel.cache.Pending() == 0 {
		return
	}
	var keep func(string) bool
	if st := sel.state; st != nil {
		bases := make(map[string]bool, len(st.Entries))
		for _, e := range st.Entries {
			bases[e.Base] = true
		}
		keep = func(b string) bool { return bases[b] }
	}
	if err := sel.cache.Save(keep); err != nil {
		s.logError("cache of "+sel.name, err)
	}
}

// open opens m's file, following it through renames by other processes.
// It returns nil and no error when the message is gone.
func (sel *selected) open(m *message) (*os.File, error) {
	for try := 0; try < 5; try++ {
		f, err := os.Open(filepath.Join(string(sel.dir), m.file))
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		found, err := sel.relocate(m)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, nil
		}
	}
	return nil, nil
}

// fetched is what one FETCH response needs beyond the view.
type fetched struct {
	entry    imapcache.Entry
	sections []*imapmsg.Section
	binaries []*imapmsg.Section
	sizes    []int64
}

// fetchOne writes the FETCH response of one message; false means the
// message is gone.
func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, m *message, options *imap.FetchOptions, markSeen, rev1 bool) (bool, error) {
	sel := s.sel
	var want imapcache.Fields
	if options.InternalDate {
		want |= imapcache.FieldInternalDate
	}
	if options.RFC822Size && m.vsize < 0 {
		want |= imapcache.FieldVSize
	}
	if options.Envelope {
		want |= imapcache.FieldEnvelope
	}
	if options.BodyStructure != nil {
		want |= imapcache.FieldBodyStructure
	}
	needFile := len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0

	// Everything that can fail comes before the response is begun.
	var d fetched
	var have imapcache.Fields
	if want != 0 {
		d.entry, have = sel.cache.Lookup(uidlist.BaseName(filepath.Base(m.file)), want)
	}
	if needFile || want&^have != 0 {
		f, err := sel.open(m)
		if err != nil {
			return false, s.serverError("fetch in "+sel.name, err)
		}
		if f == nil {
			return false, nil
		}
		defer f.Close()
		ok, err := s.readMessage(f, m, options, want&^have, &d)
		if err != nil || !ok {
			return ok, err
		}
	}
	if m.vsize < 0 && have&imapcache.FieldVSize != 0 {
		m.vsize = d.entry.VSize
	}
	seenSet := false
	if markSeen && !hasLetter(m.flags, 'S') {
		ok, err := sel.setFlags(m, func(cur string) string { return applyStore(cur, "S", imap.StoreFlagsAdd) })
		if err != nil {
			return false, s.serverError("fetch in "+sel.name, err)
		}
		if ok {
			m.flags = lettersOfFile(m.file)
			seenSet = true
		}
	}

	rw := w.CreateMessage(seq)
	if options.UID {
		rw.WriteUID(m.uid)
	}
	if options.Flags || seenSet {
		rw.WriteFlags(sel.flagsFor(m, rev1))
	}
	if options.InternalDate {
		rw.WriteInternalDate(d.entry.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.vsize)
	}
	if options.Envelope {
		rw.WriteEnvelope(d.entry.Envelope)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(d.entry.BodyStructure)
	}
	var werr, readErr error
	for i, bs := range options.BodySection {
		if werr != nil {
			break
		}
		lit := rw.WriteBodySection(bs, d.sections[i].Size)
		werr, readErr = writeSection(lit, d.sections[i], readErr)
	}
	for i, bs := range options.BinarySection {
		if werr != nil {
			break
		}
		lit := rw.WriteBinarySection(bs, d.binaries[i].Size)
		werr, readErr = writeSection(lit, d.binaries[i], readErr)
	}
	for i, bs := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, uint32(min(d.sizes[i], 1<<32-1)))
	}
	if cerr := rw.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return false, fmt.Errorf("%w: %w", errWrite, werr)
	}
	if readErr != nil {
		// The literal was padded to its announced length; the size in
		// the view or the cache was wrong, or the file unreadable.
		m.vsize = -1
		s.logError("fetch in "+sel.name, readErr)
	}
	return true, nil
}

// readMessage fills d from the open file f: the cache fields in missing
// (then cached) and the sections options asks for. false means the file
// vanished; an *imap.Error (NO [UNKNOWN-CTE]) is the client's answer.
func (s *session) readMessage(f *os.File, m *message, options *imap.FetchOptions, missing imapcache.Fields, d *fetched) (bool, error) {
	sel := s.sel
	info, err := f.Stat()
	if err != nil {
		return false, s.serverError("fetch in "+sel.name, err)
	}
	msg := imapmsg.New(f, info.Size(), m.vsize)
	fail := func(err error) (bool, error) {
		if errors.Is(err, imapmsg.ErrUnknownCTE) {
			return false, noError(imap.ResponseCodeUnknownCTE, "Unknown Content-Transfer-Encoding")
		}
		return false, s.serverError("fetch in "+sel.name, err)
	}
	var got imapcache.Fields
	if missing&imapcache.FieldInternalDate != 0 {
		d.entry.InternalDate = info.ModTime()
		got |= imapcache.FieldInternalDate
	}
	if missing&(imapcache.FieldVSize|imapcache.FieldBodyStructure) != 0 {
		if d.entry.BodyStructure, err = msg.BodyStructure(); err != nil {
			return fail(err)
		}
		if d.entry.VSize, err = msg.VSize(); err != nil {
			return fail(err)
		}
		d.entry.Size = info.Size()
		m.vsize = d.entry.VSize
		got |= imapcache.FieldBodyStructure | imapcache.FieldVSize | imapcache.FieldSize
	}
	if missing&imapcache.FieldEnvelope != 0 {
		if d.entry.Envelope, err = msg.Envelope(); err != nil {
			return fail(err)
		}
		got |= imapcache.FieldEnvelope
	}
	if got != 0 {
		sel.cache.Put(uidlist.BaseName(filepath.Base(m.file)), d.entry, got)
	}
	for _, bs := range options.BodySection {
		sec, err := msg.BodySection(bs)
		if err != nil {
			return fail(err)
		}
		d.sections = append(d.sections, sec)
	}
	for _, bs := range options.BinarySection {
		sec, err := msg.BinarySection(bs.Part, bs.Partial)
		if err != nil {
			return fail(err)
		}
		d.binaries = append(d.binaries, sec)
	}
	for _, bs := range options.BinarySectionSize {
		n, err := msg.BinarySize(bs.Part)
		if err != nil {
			return fail(err)
		}
		d.sizes = append(d.sizes, n)
	}
	return true, nil
}

// writeSection writes sec to the literal lit and closes it. Errors
// writing to the client end the session (werr); a message shorter than
// announced is padded by imapmsg and only logged (readErr keeps the first).
func writeSection(lit io.WriteCloser, sec *imapmsg.Section, readErr error) (werr, rerr error) {
	cw := &checkedWriter{w: lit}
	_, err := sec.WriteTo(cw)
	if cerr := lit.Close(); cw.err == nil {
		cw.err = cerr
	}
	if cw.err != nil {
		return cw.err, readErr
	}
	if err != nil && readErr == nil {
		readErr = err
	}
	return nil, readErr
}

// checkedWriter tells write errors apart from read errors in WriteTo.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
