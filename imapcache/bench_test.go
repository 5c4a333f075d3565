package imapcache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/imapmsg"
)

func benchEntry(b *testing.B, i int) Entry {
	msg := fmt.Sprintf("Date: Mon, 02 Nov 2026 10:15:%02d +0100\nFrom: \"Newsletter %d\" <news%d@lists.example.com>\n"+
		"To: Alice Example <alice@example.org>\nCc: bob@example.net, \"Carol C.\" <carol@example.com>\n"+
		"Subject: =?UTF-8?Q?Issue_%d:_Gr=C3=BC=C3=9Fe?= and news\nMessage-ID: <%d.news@lists.example.com>\n"+
		"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"=_alt\"\n\n"+
		"--=_alt\nContent-Type: text/plain; charset=utf-8\n\n%s\n--=_alt\nContent-Type: text/html; charset=utf-8\n\n<p>%s</p>\n--=_alt--\n",
		i%60, i, i, i, i, strings.Repeat("text ", 200), strings.Repeat("html ", 200))
	m := imapmsg.New(strings.NewReader(msg), int64(len(msg)), -1)
	bs, err := m.BodyStructure()
	if err != nil {
		b.Fatal(err)
	}
	env, _ := m.Envelope()
	v, _ := m.VSize()
	return Entry{Size: int64(len(msg)), VSize: v, InternalDate: time.Unix(1795336972+int64(i), 0), Envelope: env, BodyStructure: bs}
}

// BenchmarkCacheLoad10k is the warm path of SELECT and FETCH 1:* (UID
// FLAGS RFC822.SIZE ENVELOPE) on a folder of 10,000 messages: open the
// cache, then look up every message's size and envelope. ns/op is for
// all 10,000.
func BenchmarkCacheLoad10k(b *testing.B) {
	dir := b.TempDir()
	c := Open(dir)
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%d.M%dP4242Q%dR8f3a0c1d2e4b5a69.mx.example.org,S=%d", 1795336972+i, i, i, 3000+i)
		e := benchEntry(b, i)
		e.Size = int64(3000 + i)
		c.Put(keys[i], e, all)
	}
	if err := c.Save(nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c := Open(dir)
		for _, k := range keys {
			e, have := c.Lookup(k, FieldVSize|FieldEnvelope)
			if have != FieldVSize|FieldEnvelope || e.Envelope == nil {
				b.Fatalf("Lookup(%s) = fields %b", k, have)
			}
		}
	}
}

// BenchmarkCacheSaveNew is a FETCH of a new message in a folder of
// 10,000 cached ones: one entry Put, then Save, which merges it into the
// file. ns/op is per Save.
func BenchmarkCacheSaveNew(b *testing.B) {
	dir := b.TempDir()
	c := Open(dir)
	e := benchEntry(b, 0)
	for i := range 10000 {
		c.Put(fmt.Sprintf("%d.M%dP4242Q%dR8f3a0c1d2e4b5a69.mx.example.org", 1795336972+i, i, i), e, all)
	}
	if err := c.Save(nil); err != nil {
		b.Fatal(err)
	}
	n := 10000
	for b.Loop() {
		c.Put(fmt.Sprintf("%d.M%dP4242Q%dR8f3a0c1d2e4b5a69.mx.example.org", 1795336972+n, n, n), e, all)
		n++
		if err := c.Save(nil); err != nil {
			b.Fatal(err)
		}
	}
}
