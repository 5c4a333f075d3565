package imapmsg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\nx\n--a--\n"))
	f.Add([]byte("\r\n\r\n--\n\n"))
}

// FuzzBodyStructure: parsing never panics, and every size and line count
// matches the CRLF form of the input.
func FuzzBodyStructure(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConsistent(t, data)
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		if _, err := m.Envelope(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.BinarySize(nil); err != nil && !errors.Is(err, ErrUnknownCTE) {
			t.Fatal(err)
		}
	})
}

// FuzzWriteSection: any section of any input has exactly the size
// announced, and partial ranges are slices of the whole section.
func FuzzWriteSection(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		items := []imap.FetchItemBodySection{
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "content-type"}},
			{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"From"}},
			{Part: []int{1}}, {Part: []int{1, 1}}, {Part: []int{2, 1, 1}},
			{Part: []int{1}, Specifier: imap.PartSpecifierMIME},
			{Part: []int{1}, Specifier: imap.PartSpecifierHeader},
			{Part: []int{2}, Specifier: imap.PartSpecifierText},
		}
		for _, item := range items {
			whole := section(t, m, &item)
			p := imap.SectionPartial{Offset: int64(len(whole)) / 3, Size: 7}
			item.Partial = &p
			part := section(t, m, &item)
			lo := min(p.Offset, int64(len(whole)))
			if !bytes.Equal(part, whole[lo:min(lo+7, int64(len(whole)))]) {
				t.Fatalf("BODY[%v %s]<%d.7> is not a slice of the section", item.Part, item.Specifier, p.Offset)
			}
		}
		for _, part := range [][]int{{1}, {2}, {1, 2}} {
			s, err := m.BinarySection(part, nil)
			if err != nil {
				continue
			}
			var b bytes.Buffer
			if n, err := s.WriteTo(&b); err != nil || n != s.Size || int64(b.Len()) != s.Size {
				t.Fatalf("BINARY[%v]: Size %d, wrote %d, %v", part, s.Size, b.Len(), err)
			}
		}
	})
}
