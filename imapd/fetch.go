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

	"github.com/postkit/postkit/maildir"
)

// Fetch answers FETCH (RFC 9051 §6.4.5). FLAGS, INTERNALDATE (the file's
// mtime), RFC822.SIZE (,W= in the file name, else counted) and the whole
// message BODY[] come from the file itself, streamed with CRLF line
// endings; ENVELOPE, BODYSTRUCTURE, other sections and BINARY (RFC 3516)
// come from the message parser. Fetching a body section without .PEEK
// sets \Seen, and FLAGS is then returned too. Messages expunged by
// another process meanwhile are left out and the command ends in NO
// [EXPUNGEISSUED] (RFC 5530).
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
	for _, i := range idx {
		m := sel.msgs[i]
		if m.gone {
			missing = true
			continue
		}
		ok, err := s.fetchOne(w, uint32(i+1), m, options, markSeen, rev1)
		if err != nil {
			return err
		}
		if !ok {
			missing = true
		}
	}
	if missing {
		return noError("EXPUNGEISSUED", "Some messages were expunged")
	}
	return nil
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

// fetchOne writes the FETCH response of one message; false means the
// message is gone.
func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, m *message, options *imap.FetchOptions, markSeen, rev1 bool) (bool, error) {
	sel := s.sel
	if !options.InternalDate && !(options.RFC822Size && m.vsize < 0) && !options.Envelope && options.BodyStructure == nil &&
		len(options.BodySection) == 0 && len(options.BinarySection) == 0 && len(options.BinarySectionSize) == 0 {
		// UID, FLAGS and a known size: the view has them, no file to open
		// (FETCH 1:* (UID FLAGS) is what clients send most).
		rw := w.CreateMessage(seq)
		if options.UID {
			rw.WriteUID(m.uid)
		}
		if options.Flags {
			rw.WriteFlags(sel.flagsFor(m, rev1))
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(m.vsize)
		}
		if err := rw.Close(); err != nil {
			return false, fmt.Errorf("%w: %w", errWrite, err)
		}
		return true, nil
	}
	f, err := sel.open(m)
	if err != nil {
		return false, s.serverError("fetch in "+sel.name, err)
	}
	if f == nil {
		return false, nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, s.serverError("fetch in "+sel.name, err)
	}
	if m.vsize < 0 {
		if m.vsize, err = maildir.VirtualSize(io.NewSectionReader(f, 0, info.Size())); err != nil {
			return false, s.serverError("fetch in "+sel.name, err)
		}
	}

	// Everything that can fail comes before the response is begun.
	var parsed parsedMessage
	if options.Envelope || options.BodyStructure != nil || len(options.BinarySection) > 0 ||
		len(options.BinarySectionSize) > 0 || !allWhole(options.BodySection) {
		if parsed, err = s.srv.parser()(f, info.Size()); err != nil {
			return false, s.serverError("parse message in "+sel.name, err)
		}
	}
	sections := make([][]byte, len(options.BodySection))
	for i, bs := range options.BodySection {
		if !isWhole(bs) {
			if sections[i], err = parsed.BodySection(bs); err != nil {
				return false, s.fetchError(err)
			}
		}
	}
	binaries := make([][]byte, len(options.BinarySection))
	for i, bs := range options.BinarySection {
		if binaries[i], err = parsed.BinarySection(bs.Part); err != nil {
			return false, s.fetchError(err)
		}
	}
	binarySizes := make([]uint32, len(options.BinarySectionSize))
	for i, bs := range options.BinarySectionSize {
		b, err := parsed.BinarySection(bs.Part)
		if err != nil {
			return false, s.fetchError(err)
		}
		binarySizes[i] = uint32(len(b))
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
		rw.WriteInternalDate(info.ModTime())
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.vsize)
	}
	if options.Envelope {
		rw.WriteEnvelope(parsed.Envelope())
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(parsed.BodyStructure())
	}
	var werr, readErr error
	for i, bs := range options.BodySection {
		if werr != nil {
			break
		}
		if isWhole(bs) {
			off, n := partialRange(m.vsize, bs.Partial)
			lit := rw.WriteBodySection(bs, n)
			var rerr error
			rerr, werr = streamCRLF(lit, f, info.Size(), off, n)
			if cerr := lit.Close(); werr == nil {
				werr = cerr
			}
			if rerr != nil {
				readErr = rerr
			}
			continue
		}
		b := partialBytes(sections[i], bs.Partial)
		lit := rw.WriteBodySection(bs, int64(len(b)))
		_, werr = lit.Write(b)
		if cerr := lit.Close(); werr == nil {
			werr = cerr
		}
	}
	for i, bs := range options.BinarySection {
		if werr != nil {
			break
		}
		b := partialBytes(binaries[i], bs.Partial)
		lit := rw.WriteBinarySection(bs, int64(len(b)))
		_, werr = lit.Write(b)
		if cerr := lit.Close(); werr == nil {
			werr = cerr
		}
	}
	for i, bs := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, binarySizes[i])
	}
	if cerr := rw.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return false, fmt.Errorf("%w: %w", errWrite, werr)
	}
	if readErr != nil {
		return false, s.serverError("fetch in "+sel.name, readErr)
	}
	return true, nil
}

// fetchError turns a parser's refusal into the client's answer: an
// *imap.Error (such as NO [UNKNOWN-CTE]) as it is, anything else as a
// server fault.
func (s *session) fetchError(err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return imapErr
	}
	return s.serverError("fetch in "+s.sel.name, err)
}

// isWhole reports whether bs is BODY[] (or RFC822): the whole message,
// which is streamed from the file.
func isWhole(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0
}

func allWhole(sections []*imap.FetchItemBodySection) bool {
	for _, bs := range sections {
		if !isWhole(bs) {
			return false
		}
	}
	return true
}

// partialRange returns the offset and length of <offset.size> within
// size bytes (RFC 9051 §6.4.5: an offset past the end gives an empty
// string).
func partialRange(size int64, p *imap.SectionPartial) (int64, int64) {
	if p == nil {
		return 0, size
	}
	if p.Offset >= size {
		return size, 0
	}
	return p.Offset, min(p.Size, size-p.Offset)
}

func partialBytes(b []byte, p *imap.SectionPartial) []byte {
	off, n := partialRange(int64(len(b)), p)
	return b[off : off+n]
}

// streamCRLF writes n bytes from offset off of the CRLF form of the file
// f (size bytes on disk) to w. Should the file be shorter than its name
// said, or fail to read, spaces make up the difference: the literal's
// length is already on the wire. Write errors end it at once.
func streamCRLF(w io.Writer, f io.ReaderAt, size, off, n int64) (readErr, writeErr error) {
	r := maildir.NewCRLFReader(io.NewSectionReader(f, 0, size))
	if _, err := io.CopyN(io.Discard, r, off); err != nil && !errors.Is(err, io.EOF) {
		readErr = err
	}
	buf := make([]byte, 32*1024)
	var copied int64
	for copied < n && readErr == nil {
		k, err := r.Read(buf[:min(int64(len(buf)), n-copied)])
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return readErr, err
			}
			copied += int64(k)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
		}
	}
	for copied < n {
		k := min(n-copied, int64(len(spaces)))
		if _, err := w.Write(spaces[:k]); err != nil {
			return readErr, err
		}
		copied += k
	}
	return readErr, nil
}

var spaces = func() []byte {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = ' '
	}
	return b
}()
