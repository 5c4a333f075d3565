package maildir

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M1P2Q3R0a0b.host,S=10,W=12:2,FS", "1700000000.12345.host", "b,W=7,S=5", "b,S=5:1,xyz",
		"b:2,S:2,T", "", ":", ":2,", ",S=", ",S=1,S=2", `1.M1P1Q1R1.a\057b\072c,S=0,W=0`, "b,S=99999999999999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		n := ParseName(file)
		if n.Size < -1 || n.VSize < -1 {
			t.Fatalf("ParseName(%q) = %+v: negative size", file, n)
		}
		if size, vsize := NameSizes(file); size != n.Size || vsize != n.VSize {
			t.Fatalf("NameSizes(%q) = %d, %d, want %d, %d as ParseName", file, size, vsize, n.Size, n.VSize)
		}
		// String and ParseName agree: taking apart what String built gives
		// the same Name.
		if again := ParseName(n.String()); again != n {
			t.Fatalf("ParseName(%q) = %+v, but ParseName(%q) = %+v", file, n, n.String(), again)
		}
		if n.HasInfo && !strings.HasSuffix(file, ":2,"+n.Flags) {
			t.Fatalf("ParseName(%q).Flags = %q is not the end of the name", file, n.Flags)
		}
	})
}

func FuzzFolderName(f *testing.F) {
	for _, s := range []string{
		"INBOX", "Sent", "a/b", "Entwürfe", "&", "日本語", "📧", "../x", ".x", "a..b", "a/./b", "a\x00b", "a//b",
		"/a", "a/", "&-", "&AOQ-", ".Entw&APw-rfe", "Tom & Jerry", "äöx", "inbox/x", "a*", "\xff",
	} {
		f.Add(s)
	}
	root := Dir("/m/example.org/alice")
	f.Fuzz(func(t *testing.T, name string) {
		d, err := root.Folder(name)
		if err == nil {
			if d != root {
				rel, err := filepath.Rel(string(root), string(d))
				if err != nil || rel != filepath.Base(string(d)) || filepath.Dir(string(d)) != string(root) {
					t.Fatalf("Folder(%q) = %q: not directly under the root", name, d)
				}
				elem := filepath.Base(string(d))
				if len(elem) < 2 || elem[0] != '.' || elem == ".." || strings.ContainsAny(elem, "/\x00") || len(elem) > 255 {
					t.Fatalf("Folder(%q) = %q: not a safe folder directory name", name, d)
				}
				back, err := FolderName(elem)
				if err != nil || back != name {
					t.Fatalf("FolderName(%q) = %q, %v; want %q back", elem, back, err, name)
				}
			} else if !IsInbox(name) {
				t.Fatalf("Folder(%q) = root, but the name is not INBOX", name)
			}
		}
		// The input as a directory name: whatever decodes maps back to it.
		if decoded, err := FolderName(name); err == nil {
			if elem, err := FolderDirName(decoded); err != nil || elem != name {
				t.Fatalf("FolderName(%q) = %q, but FolderDirName of that = %q, %v", name, decoded, elem, err)
			}
		}
		// Modified UTF-7 alone round-trips for every valid UTF-8 string.
		if dec, err := decodeUTF7(encodeUTF7(name)); utf8.ValidString(name) && (err != nil || dec != name) {
			t.Fatalf("decodeUTF7(encodeUTF7(%q)) = %q, %v", name, dec, err)
		}
	})
}

func FuzzCRLF(f *testing.F) {
	for _, s := range []string{
		"", "a\r\nb\r\n", "a\nb\n", "a\rb\r\n", "a\r\r\n", "\r", "\n", "\r\n", "\n\r", "x\r\r\r\n", "no newline",
	} {
		f.Add(s, uint8(1))
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		size := int(chunk%16) + 1
		// Deliver's conversion, fed in pieces that split CRLF pairs.
		var stored bytes.Buffer
		lw := newLFWriter(&stored)
		if _, err := io.CopyBuffer(lw, iotest.HalfReader(strings.NewReader(in)), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		if err := lw.Close(); err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(in, "\r\n", "\n"); stored.String() != want {
			t.Fatalf("stored form of %q = %q, want %q", in, stored.String(), want)
		}
		served, err := readAllWith(NewCRLFReader(iotest.OneByteReader(bytes.NewReader(stored.Bytes()))), size)
		if err != nil {
			t.Fatal(err)
		}
		if lw.size != int64(stored.Len()) || lw.vsize != int64(len(served)) {
			t.Fatalf("sizes of %q = S %d W %d; file %d bytes, served %d", in, lw.size, lw.vsize, stored.Len(), len(served))
		}
		for _, src := range []string{in, stored.String()} {
			v, err := VirtualSize(strings.NewReader(src))
			out, _ := io.ReadAll(NewCRLFReader(strings.NewReader(src)))
			if err != nil || v != int64(len(out)) {
				t.Fatalf("VirtualSize(%q) = %d, %v; CRLFReader serves %d bytes", src, v, err, len(out))
			}
			if bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("CRLFReader(%q) = %q has a bare LF", src, out)
			}
		}
		// Storing what is served stores the same bytes again (a message
		// fetched and appended elsewhere, or re-delivered, does not change),
		// except that a CR before CRLF in the input ("x\r\r\n", stored
		// "x\r\n", served "x\r\n") loses one more CR each time round.
		again := strings.ReplaceAll(string(served), "\r\n", "\n")
		if want := strings.ReplaceAll(stored.String(), "\r\n", "\n"); again != want {
			t.Fatalf("stored %q, served %q, stored again %q, want %q", stored.String(), served, again, want)
		}
		if !strings.Contains(stored.String(), "\r\n") && again != stored.String() {
			t.Fatalf("stored %q, served %q, stored again %q", stored.String(), served, again)
		}
		// A message in canonical network form (RFC 5322 §2.3: CR and LF
		// only together, as CRLF) is served exactly as it came.
		canonical := !strings.ContainsAny(strings.ReplaceAll(in, "\r\n", ""), "\r\n")
		if canonical && string(served) != in {
			t.Fatalf("canonical %q stored %q, served %q", in, stored.String(), served)
		}
	})
}
