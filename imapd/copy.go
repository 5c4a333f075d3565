package imapd

import (
	"errors"
	"syscall"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/maildir/uidlist"
)

// Copy copies messages to another folder (RFC 9051 §6.4.7) by delivering
// each anew through maildir.Deliver (durable before OK), with its flags
// (keywords translated to the destination's letters) and INTERNALDATE,
// and answers COPYUID (RFC 4315). A destination that does not exist is
// NO [TRYCREATE].
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sel := s.sel
	destName, destDir, err := s.existingFolder(dest, imap.ResponseCodeTryCreate)
	if err != nil {
		return nil, err
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return nil, err
	}
	srcKw, err := sel.box.Keywords()
	if err != nil {
		return nil, s.serverError("copy to "+destName, err)
	}
	destBox := s.openBox(destDir)
	var srcUIDs []imap.UID
	var bases []string
	var missing bool
	for _, i := range idx {
		m := sel.msgs[i]
		if m.gone {
			missing = true
			continue
		}
		letters, err := translateKeywords(lettersOfFile(m.file), srcKw, destBox)
		if err != nil {
			return nil, s.serverError("copy to "+destName, err)
		}
		base, ok, err := sel.copyOne(m, destDir, letters, s.srv.Hostname)
		if errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.ENOSPC) {
			s.logError("copy to "+destName, err)
			return nil, noError(imap.ResponseCodeOverQuota, "Out of disk space or over quota")
		}
		if err != nil {
			return nil, s.serverError("copy to "+destName, err)
		}
		if !ok {
			missing = true
			continue
		}
		srcUIDs = append(srcUIDs, m.uid)
		bases = append(bases, base)
	}
	s.copied += len(bases)
	if missing && len(bases) == 0 {
		return nil, noError("EXPUNGEISSUED", "The messages were expunged")
	}
	destUIDs, validity := s.uidsOf(destBox, bases)
	srcSet, destSet := uidPairs(srcUIDs, destUIDs)
	if len(srcSet) == 0 {
		return nil, nil
	}
	return &imap.CopyData{UIDValidity: validity, SourceUIDs: srcSet, DestUIDs: destSet}, nil
}

// copyOne delivers a copy of m to dir with the flag letters and returns
// its base name; false means m is gone.
func (sel *selected) copyOne(m *message, dir maildir.Dir, letters, hostname string) (string, bool, error) {
	f, err := sel.open(m)
	if err != nil || f == nil {
		return "", false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	// The file is delivered in its CRLF form, which Deliver stores with
	// LF again: the message the client sees stays byte for byte the same.
	d, err := dir.Deliver(maildir.NewCRLFReader(f), maildir.DeliverOptions{Hostname: hostname, Flags: letters, ToCur: true, ModTime: info.ModTime()})
	if err != nil {
		return "", false, err
	}
	return uidlist.BaseName(d.Name), true, nil
}

// translateKeywords rewrites the keyword letters of a file's flags from
// the source folder's dovecot-keywords to the destination's, giving them
// letters there if needed. Letters without a name are dropped.
func translateKeywords(letters string, src *uidlist.Keywords, dest *uidlist.Mailbox) (string, error) {
	var out []byte
	var names []string
	for i := 0; i < len(letters); i++ {
		c := letters[i]
		if c < 'a' || c > 'z' {
			out = append(out, c)
			continue
		}
		if name, ok := src.Name(c); ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return string(out), nil
	}
	kw, err := dest.AddKeywords(names...)
	if errors.Is(err, uidlist.ErrTooManyKeywords) {
		// Keep what fits: the message matters more than its keywords.
		if kw, err = dest.Keywords(); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	for _, n := range names {
		if c, ok := kw.Letter(n); ok {
			out = append(out, c)
		}
	}
	return maildir.SortFlags(string(out))
}
