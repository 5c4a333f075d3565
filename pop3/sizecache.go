package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/postkit/postkit/safefile"
)

// SizeCacheFile is the name of the size cache in a Maildir root.
//
// Messages whose file names carry ",W=" (all that postkit and Dovecot
// deliver) have their POP3 size in the name. For the others the size must be
// counted by reading the whole file (maildir.VirtualSize), and the count is
// kept here so that it is done once, not at every login. The format is text:
//
//	postkit-pop3-sizes 1
//	VSIZE SIZE KEY
//
// one line per message: VSIZE the size with CRLF line endings, SIZE the
// file's size on disk when counted (a file of another size is counted
// again), KEY the file name up to its first ':' (the part flag changes leave
// alone; it may contain spaces but no CR or LF). Lines that do not parse are
// ignored. The file is only written by the session holding the POP3 lock,
// atomically (safefile.WriteFile), and only lists messages present at that
// login; deleting it loses nothing but time.
const SizeCacheFile = "pop3-sizes"

const sizeCacheHeader = "postkit-pop3-sizes 1"

type cachedSize struct {
	vsize, size int64
}

// readSizeCache reads the cache; a missing file is an empty cache.
func readSizeCache(path string) (map[string]cachedSize, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]cachedSize{}, nil
	}
	if err != nil {
		return map[string]cachedSize{}, fmt.Errorf("pop3: size cache: %w", err)
	}
	return parseSizeCache(data), nil
}

// parseSizeCache parses the cache file's contents. A file without the
// header line is foreign (or from a future version) and taken as empty.
func parseSizeCache(data []byte) map[string]cachedSize {
	cache := map[string]cachedSize{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	if !sc.Scan() || sc.Text() != sizeCacheHeader {
		return cache
	}
	for sc.Scan() {
		vs, rest, ok1 := strings.Cut(sc.Text(), " ")
		s, key, ok2 := strings.Cut(rest, " ")
		vsize, err1 := strconv.ParseInt(vs, 10, 64)
		size, err2 := strconv.ParseInt(s, 10, 64)
		// A key with CR is one marshalSizeCache would never write (a
		// damaged file, or bufio's line split leaving a CR): skip it so
		// that what is read is always what could be written back.
		if !ok1 || !ok2 || err1 != nil || err2 != nil || vsize < 0 || size < 0 || key == "" || strings.ContainsRune(key, '\r') {
			continue
		}
		cache[key] = cachedSize{vsize: vsize, size: size}
	}
	return cache
}

// marshalSizeCache returns the file contents for the entries. Keys with CR
// or LF would not read back and are left out (they are counted each time).
func marshalSizeCache(cache map[string]cachedSize) []byte {
	var b bytes.Buffer
	b.WriteString(sizeCacheHeader + "\n")
	for key, c := range cache {
		if strings.ContainsAny(key, "\r\n") {
			continue
		}
		fmt.Fprintf(&b, "%d %d %s\n", c.vsize, c.size, key)
	}
	return b.Bytes()
}

// writeSizeCache replaces the cache with the given entries.
func writeSizeCache(path string, cache map[string]cachedSize) error {
	if err := safefile.WriteFile(path, marshalSizeCache(cache), 0o600); err != nil {
		return fmt.Errorf("pop3: size cache: %w", err)
	}
	return nil
}
