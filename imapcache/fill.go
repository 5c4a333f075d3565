package imapcache

import (
	"fmt"
	"os"

	"github.com/postkit/postkit/imapmsg"
)

// Fill returns the entry of the message base (see Lookup) with at least
// the fields in want: what the cache has, the rest read from the message
// file at path and recorded (Save writes it). Whenever the whole message
// has to be read (for FieldVSize or FieldBodyStructure) the size, vsize,
// envelope and body structure are all recorded, as they come at no extra
// cost; FieldEnvelope alone reads only the header. FieldInternalDate is
// the file's modification time, which is what Maildir stores as the
// INTERNALDATE (Dovecot's received date).
func (c *Cache) Fill(base, path string, want Fields) (Entry, error) {
	e, have, stale := c.lookup(base, want)
	missing := want &^ have
	if missing == 0 {
		return e, nil
	}
	var got Fields
	if missing&FieldInternalDate != 0 {
		info, err := os.Stat(path)
		if err != nil {
			return e, fmt.Errorf("imapcache: %w", err)
		}
		e.InternalDate = info.ModTime()
		got |= FieldInternalDate
	}
	if missing&^FieldInternalDate != 0 {
		m, err := imapmsg.Open(path, -1)
		if err != nil {
			return e, fmt.Errorf("imapcache: %w", err)
		}
		defer m.Close()
		e.Size = m.Size()
		got |= FieldSize
		if missing&(FieldVSize|FieldBodyStructure) != 0 {
			bs, err := m.BodyStructure()
			if err != nil {
				return e, fmt.Errorf("imapcache: %w", err)
			}
			e.BodyStructure = bs
			if e.VSize, err = m.VSize(); err != nil {
				return e, fmt.Errorf("imapcache: %w", err)
			}
			got |= FieldVSize | FieldBodyStructure
			if have&FieldEnvelope == 0 {
				missing |= FieldEnvelope
			}
		}
		if missing&FieldEnvelope != 0 {
			if e.Envelope, err = m.Envelope(); err != nil {
				return e, fmt.Errorf("imapcache: %w", err)
			}
			got |= FieldEnvelope
		}
	}
	c.put(base, e, got, stale)
	return e, nil
}
