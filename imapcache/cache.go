package imapcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/safefile"
)

// File names in the folder directory.
const (
	FileName = "postkit-cache"
	LockName = "postkit-cache.lock"
)

// LockTimeout is how long Save waits for another writer's lock.
const LockTimeout = 10 * time.Second

// magic starts every cache file; its last byte is the format version. A
// file with another version is ignored and replaced at the next Save.
var magic = [8]byte{'P', 'K', 'I', 'M', 'A', 'P', 'C', 1}

const headerSize = 12 // magic, record count

// maxFileSize is the largest cache file read: offsets are 32 bits, and a
// larger file is damaged or not ours.
const maxFileSize = 1<<32 - 1

// Field tags, one per Field bit (see postkit-imapcache(5)). tagReplace
// is never written: in pending entries it means that the fields on disk
// belong to another file and are dropped.
const (
	tagReplace       = 0
	tagSize          = 1
	tagVSize         = 2
	tagInternalDate  = 3
	tagEnvelope      = 4
	tagBodyStructure = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Fields says which parts of an Entry are known.
type Fields uint8

const (
	FieldSize Fields = 1 << iota
	FieldVSize
	FieldInternalDate
	FieldEnvelope
	FieldBodyStructure
)

// An Entry is what the cache knows of one message; Fields says which of
// its fields are set.
type Entry struct {
	Size          int64 // bytes in the file
	VSize         int64 // bytes with CRLF line endings: RFC822.SIZE
	InternalDate  time.Time
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure // extended (BODYSTRUCTURE)
}

// A Cache is the cache of one Maildir folder. Open does no I/O: the file
// is read at the first lookup, and written only by Save. A Cache is safe
// for concurrent use.
type Cache struct {
	dir string

	mu      sync.Mutex
	loaded  bool
	file    fileView
	stamp   fileStamp                  // of the file loaded
	pending map[string]map[byte][]byte // added since the last Save: key, tag, payload
}

// Open returns the cache of the Maildir folder dir (the directory with
// cur/, new/ and tmp/).
func Open(dir string) *Cache {
	return &Cache{dir: dir, pending: map[string]map[byte][]byte{}}
}

// Dir returns the folder directory.
func (c *Cache) Dir() string { return c.dir }

// fileView is a loaded cache file: offsets[i] is where record i starts in
// data, the records end at end.
type fileView struct {
	data    []byte
	offsets []uint32
	end     int
}

// parseFile checks a cache file and returns its view; a file that is
// damaged or of another version gives an empty view and an error.
func parseFile(data []byte) (fileView, error) {
	if len(data) < headerSize+4 || !bytes.Equal(data[:8], magic[:]) {
		return fileView{}, errors.New("imapcache: not a cache file of this version")
	}
	end := len(data) - 4
	if crc32.Checksum(data[:end], castagnoli) != binary.LittleEndian.Uint32(data[end:]) {
		return fileView{}, errors.New("imapcache: checksum mismatch")
	}
	n := binary.LittleEndian.Uint32(data[8:12])
	if uint64(n) > uint64(end-headerSize)/4 {
		return fileView{}, errors.New("imapcache: bad record count")
	}
	offsets := make([]uint32, n)
	prevKey := []byte(nil)
	for i := range offsets {
		o := binary.LittleEndian.Uint32(data[headerSize+4*i:])
		offsets[i] = o
		if int(o) < headerSize+4*int(n) || int(o) >= end || (i > 0 && o <= offsets[i-1]) {
			return fileView{}, errors.New("imapcache: bad record offset")
		}
		if i > 0 {
			if err := checkRecord(data[offsets[i-1]:o]); err != nil {
				return fileView{}, err
			}
		}
	}
	if n > 0 {
		if err := checkRecord(data[offsets[n-1]:end]); err != nil {
			return fileView{}, err
		}
	}
	v := fileView{data: data, offsets: offsets, end: end}
	for i := range offsets {
		k, _ := v.record(i)
		if i > 0 && bytes.Compare(prevKey, k) >= 0 {
			return fileView{}, errors.New("imapcache: records out of order")
		}
		prevKey = k
	}
	return v, nil
}

// checkRecord checks that a record's key and fields are well framed.
func checkRecord(rec []byte) error {
	k, n := binary.Uvarint(rec)
	if n <= 0 || k > uint64(len(rec)-n) {
		return errors.New("imapcache: bad record key")
	}
	rest := rec[n+int(k):]
	for len(rest) > 0 {
		l, m := binary.Uvarint(rest[1:])
		if m <= 0 || l > uint64(len(rest)-1-m) {
			return errors.New("imapcache: bad record field")
		}
		rest = rest[1+m+int(l):]
	}
	return nil
}

// record returns the key and the fields of record i (checked by parseFile).
func (v *fileView) record(i int) (key, fields []byte) {
	start := int(v.offsets[i])
	end := v.end
	if i+1 < len(v.offsets) {
		end = int(v.offsets[i+1])
	}
	rec := v.data[start:end]
	k, n := binary.Uvarint(rec)
	return rec[n : n+int(k)], rec[n+int(k):]
}

// find returns the fields of the record with key, by binary search.
func (v *fileView) find(key string) ([]byte, bool) {
	lo, hi := 0, len(v.offsets)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		k, fields := v.record(mid)
		switch c := compareKey(k, key); {
		case c == 0:
			return fields, true
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return nil, false
}

func compareKey(k []byte, key string) int {
	n := min(len(k), len(key))
	for i := range n {
		if k[i] != key[i] {
			if k[i] < key[i] {
				return -1
			}
			return 1
		}
	}
	return len(k) - len(key)
}

// eachField calls fn for every field of a record.
func eachField(fields []byte, fn func(tag byte, payload []byte)) {
	for len(fields) > 0 {
		l, m := binary.Uvarint(fields[1:])
		fn(fields[0], fields[1+m:1+m+int(l)])
		fields = fields[1+m+int(l):]
	}
}

type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

func stampOf(info fs.FileInfo) fileStamp {
	return fileStamp{ino: inode(info), size: info.Size(), mtime: info.ModTime()}
}

func (c *Cache) path() string { return filepath.Join(c.dir, FileName) }

// load reads the file once; a missing or damaged file is an empty cache.
func (c *Cache) load() {
	if c.loaded {
		return
	}
	c.loaded = true
	c.reload()
}

func (c *Cache) reload() {
	c.file, c.stamp = fileView{}, fileStamp{}
	f, err := os.Open(c.path())
	if err != nil {
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() > maxFileSize {
		return
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return
	}
	c.file, _ = parseFile(data)
	c.stamp = stampOf(info)
}

// Refresh re-reads the file if another process replaced it since it was
// read, so that entries others computed become visible. It costs one
// stat(2) when nothing changed.
func (c *Cache) Refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		return
	}
	info, err := os.Stat(c.path())
	if err != nil || stampOf(info) != c.stamp {
		c.reload()
	}
}

// Lookup returns what the cache knows of the fields in want of the
// message whose file name up to the info separator ':' is base
// (uidlist.Entry.Base), and which of them it knows. Only those fields are
// decoded. If base carries a ",S=" or ",W=" size that differs from the
// recorded one, the entry belongs to another file and nothing is returned.
func (c *Cache) Lookup(base string, want Fields) (Entry, Fields) {
	e, have, _ := c.lookup(base, want)
	return e, have
}

// lookup is Lookup that also reports an entry rejected for its sizes.
func (c *Cache) lookup(base string, want Fields) (e Entry, have Fields, stale bool) {
	c.mu.Lock()
	c.load()
	fields, inFile := c.file.find(base)
	pend := c.pending[base]
	if _, replaced := pend[tagReplace]; replaced {
		inFile = false
	}
	var raw [tagBodyStructure + 1][]byte
	for tag, p := range pend {
		if int(tag) < len(raw) {
			raw[tag] = p
		}
	}
	c.mu.Unlock()

	if inFile {
		eachField(fields, func(tag byte, p []byte) {
			if int(tag) < len(raw) && raw[tag] == nil {
				raw[tag] = p
			}
		})
	}
	e, have = decodeEntry(raw[:], want|FieldSize|FieldVSize)
	size, vsize := maildir.NameSizes(base)
	if (size >= 0 && have&FieldSize != 0 && e.Size != size) ||
		(vsize >= 0 && have&FieldVSize != 0 && e.VSize != vsize) {
		return Entry{Size: -1, VSize: -1}, 0, true
	}
	return e, have & want, false
}

// decodeEntry decodes the fields in want of an entry; fields that do not
// decode are left out.
func decodeEntry(raw [][]byte, want Fields) (Entry, Fields) {
	e := Entry{Size: -1, VSize: -1}
	var have Fields
	if p := raw[tagSize]; p != nil {
		if v, n := binary.Uvarint(p); n == len(p) && v <= 1<<62 {
			e.Size = int64(v)
			have |= FieldSize
		}
	}
	if p := raw[tagVSize]; p != nil {
		if v, n := binary.Uvarint(p); n == len(p) && v <= 1<<62 {
			e.VSize = int64(v)
			have |= FieldVSize
		}
	}
	if p := raw[tagInternalDate]; p != nil && want&FieldInternalDate != 0 {
		r := &reader{s: string(p)}
		sec, nsec := r.varint(), r.uvarint()
		if r.err == nil && r.pos == len(p) && nsec < 1e9 {
			e.InternalDate = time.Unix(sec, int64(nsec))
			have |= FieldInternalDate
		}
	}
	if p := raw[tagEnvelope]; p != nil && want&FieldEnvelope != 0 {
		if env, err := decodeEnvelope(string(p)); err == nil {
			e.Envelope = env
			have |= FieldEnvelope
		}
	}
	if p := raw[tagBodyStructure]; p != nil && want&FieldBodyStructure != 0 {
		if bs, err := decodeBodyStructure(string(p)); err == nil {
			e.BodyStructure = bs
			have |= FieldBodyStructure
		}
	}
	return e, have
}

// Put records the fields of e named in fields for the message base; Save
// writes them.
func (c *Cache) Put(base string, e Entry, fields Fields) {
	c.put(base, e, fields, false)
}

func (c *Cache) put(base string, e Entry, fields Fields, replace bool) {
	enc := map[byte][]byte{}
	if replace {
		enc[tagReplace] = nil
	}
	if fields&FieldSize != 0 && e.Size >= 0 {
		enc[tagSize] = binary.AppendUvarint(nil, uint64(e.Size))
	}
	if fields&FieldVSize != 0 && e.VSize >= 0 {
		enc[tagVSize] = binary.AppendUvarint(nil, uint64(e.VSize))
	}
	if fields&FieldInternalDate != 0 && !e.InternalDate.IsZero() {
		b := binary.AppendVarint(nil, e.InternalDate.Unix())
		enc[tagInternalDate] = binary.AppendUvarint(b, uint64(e.InternalDate.Nanosecond()))
	}
	if fields&FieldEnvelope != 0 {
		enc[tagEnvelope] = appendEnvelope(nil, e.Envelope)
	}
	if fields&FieldBodyStructure != 0 && e.BodyStructure != nil {
		enc[tagBodyStructure] = appendBodyStructure(nil, e.BodyStructure)
	}
	if len(enc) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[base]
	if p == nil || replace {
		c.pending[base] = enc
		return
	}
	for tag, v := range enc {
		p[tag] = v
	}
}

// Pending reports how many messages have fields waiting for Save.
func (c *Cache) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Save writes the cache file: the entries on disk (re-read under the
// lock, so that entries other processes saved meanwhile are kept) merged
// with those Put since the last Save, without the messages keep rejects
// (keep == nil keeps all). It holds the lock file's flock(2) while it
// reads and replaces the file; the replacement is atomic (package
// safefile), so readers never see a partial file. With nothing pending
// and keep == nil it does nothing.
func (c *Cache) Save(keep func(base string) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 && keep == nil {
		return nil
	}
	lock, err := safefile.LockFile(filepath.Join(c.dir, LockName), LockTimeout)
	if err != nil {
		return fmt.Errorf("imapcache: %w", err)
	}
	defer lock.Unlock()
	// Under the lock the file is re-read, unless it is still the one
	// loaded: nobody saved since.
	if info, err := os.Stat(c.path()); !c.loaded || err != nil || stampOf(info) != c.stamp {
		c.loaded = true
		c.reload()
	}

	keys := make([]string, 0, len(c.pending))
	for k := range c.pending {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var out bytes.Buffer
	var offsets []uint32
	var body []byte
	emit := func(key []byte, disk []byte, pend map[byte][]byte) {
		if keep != nil && !keep(string(key)) {
			return
		}
		offsets = append(offsets, uint32(len(body)))
		body = binary.AppendUvarint(body, uint64(len(key)))
		body = append(body, key...)
		var tags []byte
		for tag := range pend {
			if tag != tagReplace {
				tags = append(tags, tag)
			}
		}
		slices.Sort(tags)
		if _, replaced := pend[tagReplace]; replaced {
			disk = nil
		}
		eachField(disk, func(tag byte, p []byte) {
			if _, replaced := pend[tag]; !replaced {
				body = appendField(body, tag, p)
			}
		})
		for _, tag := range tags {
			body = appendField(body, tag, pend[tag])
		}
	}
	i, j := 0, 0
	for i < len(c.file.offsets) || j < len(keys) {
		var dk []byte
		var df []byte
		if i < len(c.file.offsets) {
			dk, df = c.file.record(i)
		}
		switch {
		case j >= len(keys) || (i < len(c.file.offsets) && compareKey(dk, keys[j]) < 0):
			emit(dk, df, nil)
			i++
		case i >= len(c.file.offsets) || compareKey(dk, keys[j]) > 0:
			emit([]byte(keys[j]), nil, c.pending[keys[j]])
			j++
		default:
			emit(dk, df, c.pending[keys[j]])
			i++
			j++
		}
	}
	base := headerSize + 4*len(offsets)
	if uint64(base)+uint64(len(body))+4 > maxFileSize {
		return errors.New("imapcache: cache file would exceed 4 GiB")
	}
	out.Grow(base + len(body) + 4)
	out.Write(magic[:])
	out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(offsets))))
	for _, o := range offsets {
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(base)+o))
	}
	out.Write(body)
	data := out.Bytes()
	data = binary.LittleEndian.AppendUint32(data, crc32.Checksum(data, castagnoli))
	if err := replaceFile(c.path(), data); err != nil {
		return err
	}
	c.pending = map[string]map[byte][]byte{}
	c.file, _ = parseFile(data)
	if info, err := os.Stat(c.path()); err == nil {
		c.stamp = stampOf(info)
	}
	return nil
}

func appendField(b []byte, tag byte, p []byte) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// replaceFile replaces path with data through a temporary file renamed
// over it, so that readers see the old file or the new one. Unlike
// safefile.WriteFile it does not fsync: after a crash the file may be
// empty or damaged, which its checksum shows, and a damaged cache is
// ignored and rebuilt. The two fsyncs (of a file of some megabytes for a
// large folder) made every FETCH that computed new entries wait for the
// disk.
func replaceFile(path string, data []byte) error {
	tmp, err := safefile.CreateTemp(filepath.Dir(path), 0o600)
	if err != nil {
		return fmt.Errorf("imapcache: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("imapcache: write %s: %w", path, err)
	}
	return nil
}
