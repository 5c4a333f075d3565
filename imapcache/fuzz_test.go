package imapcache

import (
	"encoding/binary"
	"github.com/emersion/go-imap/v2"
	"hash/crc32"
	"slices"

	"os"
	"path/filepath"
	"testing"
)

// FuzzCacheFile: no file content makes reading panic or hang, and
// whatever a Lookup returns is usable.
func FuzzCacheFile(f *testing.F) {
	dir := f.TempDir()
	c := Open(dir)
	for key, e := range sampleEntries(f) {
		c.Put(key, e, all)
	}
	if err := c.Save(nil); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PKIMAPC\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFile(t, data)
		// The same with a correct checksum, so that mutations reach the
		// record and field decoders.
		if len(data) >= headerSize+4 {
			fixed := slices.Clone(data)
			end := len(fixed) - 4
			binary.LittleEndian.PutUint32(fixed[end:], crc32.Checksum(fixed[:end], castagnoli))
			checkFile(t, fixed)
		}
	})
}

func checkFile(t *testing.T, data []byte) {
	v, err := parseFile(data)
	if err != nil {
		return
	}
	for i := range v.offsets {
		key, fields := v.record(i)
		if got, ok := v.find(string(key)); !ok || len(got) != len(fields) {
			t.Fatalf("record %d (%q) not found by its key", i, key)
		}
		var raw [tagBodyStructure + 1][]byte
		eachField(fields, func(tag byte, p []byte) {
			if int(tag) < len(raw) {
				raw[tag] = p
			}
		})
		e, have := decodeEntry(raw[:], all)
		if have&FieldBodyStructure != 0 {
			// Decoded structures re-encode: nothing is left nil
			// that the writer would dereference.
			appendBodyStructure(nil, e.BodyStructure)
			e.BodyStructure.Walk(func([]int, imap.BodyStructure) bool { return true })
		}
		if have&FieldEnvelope != 0 && e.Envelope == nil {
			t.Fatal("envelope field without envelope")
		}
	}
}
