package smtpd

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// memoryLimit is how much of a message being checked is held in memory;
// the rest goes to a temporary file.
const memoryLimit = 1 << 20

// messageBuffer holds the rest of a message while it is checked (DKIM needs
// the whole body before the Authentication-Results field, which comes first,
// can be written): in memory up to memoryLimit, then in a file in the
// system's temporary directory ($TMPDIR, else /tmp) that is unlinked as
// soon as it is made, so that nothing is left behind whatever happens.
type messageBuffer struct {
	mem  []byte
	file *os.File
	size int64
}

func (b *messageBuffer) Write(p []byte) (int, error) {
	if b.file == nil && len(b.mem)+len(p) <= memoryLimit {
		b.mem = append(b.mem, p...)
		b.size += int64(len(p))
		return len(p), nil
	}
	if b.file == nil {
		f, err := os.CreateTemp("", "postkit-smtpd-*")
		if err != nil {
			return 0, fmt.Errorf("smtpd: buffering a message: %w", err)
		}
		os.Remove(f.Name())
		b.file = f
		if _, err := f.Write(b.mem); err != nil {
			return 0, fmt.Errorf("smtpd: buffering a message: %w", err)
		}
		b.mem = nil
	}
	n, err := b.file.Write(p)
	b.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("smtpd: buffering a message: %w", err)
	}
	return n, nil
}

// Reader returns a reader of everything written, from the start; each call
// returns a new one.
func (b *messageBuffer) Reader() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return bytes.NewReader(b.mem)
}

// Close frees the memory or the file.
func (b *messageBuffer) Close() error {
	b.mem = nil
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}
