package imapmsg

import (
	"bytes"
	"encoding/base64"
	"errors"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func decodeAll(t *testing.T, encoding, in string, chunk int) string {
	t.Helper()
	var out bytes.Buffer
	d, ok := newDecoder(encoding, &out)
	if !ok || d == nil {
		t.Fatalf("newDecoder(%q) = %v, %v", encoding, d, ok)
	}
	for i := 0; i < len(in); i += chunk {
		if _, err := d.Write([]byte(in[i:min(i+chunk, len(in))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestBase64Decoder(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "aGVsbG8gd29ybGQ=", "hello world"},
		{"lines", "aGVsbG8g\r\nd29ybGQ=\r\n", "hello world"},
		{"no padding", "aGVsbG8gd29ybGQ", "hello world"},
		{"junk ignored", "aGV*sbG8g\x00d29y!bGQ=", "hello world"},
		{"concatenated", "aGk=aGk=", "hihi"},
		{"single char left", "aGk=a", "hi"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 1000} {
			if got := decodeAll(t, "base64", tt.in, chunk); got != tt.want {
				t.Errorf("%s (chunks of %d): base64 %q = %q, want %q", tt.name, chunk, tt.in, got, tt.want)
			}
		}
	}
	// Well-formed input decodes as encoding/base64 does.
	data := bytes.Repeat([]byte("0123456789\xff\x00"), 1000)
	enc := base64.StdEncoding.EncodeToString(data)
	if got := decodeAll(t, "base64", enc, 4096); got != string(data) {
		t.Error("base64 of 12000 bytes does not round-trip")
	}
}

func TestQPDecoder(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"escapes", "Gr=FC=DFe", "Gr\xfc\xdfe"},
		{"lower-case hex", "=c3=bc", "\xc3\xbc"},
		{"soft break", "long=\r\nline", "longline"},
		{"soft break LF", "long=\nline", "longline"},
		{"soft break with space", "long=  \r\nline", "longline"},
		{"hard break keeps CRLF", "a\r\nb", "a\r\nb"},
		{"trailing space dropped", "a  \r\nb\t\r\n", "a\r\nb\r\n"},
		{"space kept inside", "a  b", "a  b"},
		{"bad escape kept", "a=ZZb", "a=ZZb"},
		{"half escape kept", "a=Fx", "a=Fx"},
		{"equals at end", "abc=", "abc"},
		{"half escape at end", "abc=F", "abc=F"},
		{"bare CR", "a\rb", "a\rb"},
		{"NUL passes", "a\x00b", "a\x00b"},
		{"trailing space at end", "abc  ", "abc"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 2, 1000} {
			if got := decodeAll(t, "quoted-printable", tt.in, chunk); got != tt.want {
				t.Errorf("%s (chunks of %d): qp %q = %q, want %q", tt.name, chunk, tt.in, got, tt.want)
			}
		}
	}
	// Well-formed input decodes as mime/quotedprintable does.
	var enc bytes.Buffer
	w := quotedprintable.NewWriter(&enc)
	data := strings.Repeat("Grüße aus Köln = schön \t\r\nline\r\n", 200)
	w.Write([]byte(data))
	w.Close()
	if got := decodeAll(t, "quoted-printable", enc.String(), 333); got != data {
		t.Error("quoted-printable does not round-trip")
	}
}

func TestBinarySection(t *testing.T) {
	tests := []struct {
		file string
		part []int
		want string
	}{
		{"encoded.eml", []int{1}, "Gr\xfc\xdfe aus K\xf6ln!\n"},
		{"nested.eml", []int{1, 1}, "Gr\xfc\xdfe aus K\xf6ln!\r\nEine lange Zeile, die mit einem weichen Umbruch weitergeht."},
		{"nested.eml", []int{2}, "a,b,c\r\n1,2,3"},
		{"mixed.eml", []int{3}, "\x89PNG\r\n\x1a\n"},
		{"mixed.eml", []int{9}, ""},
	}
	for _, tt := range tests {
		data := readSample(t, tt.file)
		m := New(bytes.NewReader(data), int64(len(data)), -1)
		s, err := m.BinarySection(tt.part, nil)
		if err != nil {
			t.Fatalf("%s: BinarySection(%v): %v", tt.file, tt.part, err)
		}
		var b bytes.Buffer
		if _, err := s.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		got := b.String()
		if int64(len(got)) != s.Size {
			t.Errorf("%s: BINARY[%v] Size %d, wrote %d", tt.file, tt.part, s.Size, len(got))
		}
		if !strings.HasPrefix(got, tt.want) || (tt.file != "mixed.eml" && got != tt.want) {
			t.Errorf("%s: BINARY[%v] = %q, want %q", tt.file, tt.part, trunc([]byte(got)), tt.want)
		}
		size, err := m.BinarySize(tt.part)
		if err != nil || size != s.Size {
			t.Errorf("%s: BinarySize(%v) = %d, %v; want %d", tt.file, tt.part, size, err, s.Size)
		}
		p, err := m.BinarySection(tt.part, &imap.SectionPartial{Offset: 1, Size: 3})
		if err != nil {
			t.Fatal(err)
		}
		b.Reset()
		p.WriteTo(&b)
		if lo, hi := min(1, len(got)), min(4, len(got)); b.String() != got[lo:hi] {
			t.Errorf("%s: BINARY[%v]<1.3> = %q, want %q", tt.file, tt.part, b.String(), got[lo:hi])
		}
	}
}

func TestBinaryUnknownCTE(t *testing.T) {
	msg := "Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n"
	m := New(strings.NewReader(msg), int64(len(msg)), -1)
	if _, err := m.BinarySection([]int{1}, nil); !errors.Is(err, ErrUnknownCTE) {
		t.Errorf("BinarySection of x-uuencode: %v, want ErrUnknownCTE", err)
	}
	// BODY[] of the same part is fine.
	if _, err := m.BodySection(&imap.FetchItemBodySection{Part: []int{1}}); err != nil {
		t.Error(err)
	}
}
