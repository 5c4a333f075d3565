package imapcache

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// errCorrupt is returned (wrapped) for cache data that does not decode; the
// entry is then treated as missing.
var errCorrupt = errors.New("imapcache: corrupt entry")

// maxNesting bounds body structure nesting on decoding, far above what
// imapmsg produces, so that crafted data cannot recurse without end.
const maxNesting = 256

// The encoders append to a byte slice; see postkit-imapcache(5) for the
// layout they produce.

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendEnvelope(b []byte, env *imap.Envelope) []byte {
	if env == nil {
		env = &imap.Envelope{}
	}
	if env.Date.IsZero() {
		b = append(b, 0)
	} else {
		_, offset := env.Date.Zone()
		b = append(b, 1)
		b = binary.AppendVarint(b, env.Date.Unix())
		b = binary.AppendVarint(b, int64(offset))
	}
	b = appendString(b, env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, a := range l {
			b = appendString(b, a.Name)
			b = appendString(b, a.Mailbox)
			b = appendString(b, a.Host)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(env.InReplyTo)))
	for _, id := range env.InReplyTo {
		b = appendString(b, id)
	}
	return appendString(b, env.MessageID)
}

func appendParams(b []byte, p map[string]string) []byte {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, p[k])
	}
	return b
}

func appendExt(b []byte, d *imap.BodyStructureDisposition, lang []string, loc string) []byte {
	if d == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, d.Value)
		b = appendParams(b, d.Params)
	}
	b = binary.AppendUvarint(b, uint64(len(lang)))
	for _, l := range lang {
		b = appendString(b, l)
	}
	return appendString(b, loc)
}

func appendBodyStructure(b []byte, bs imap.BodyStructure) []byte {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		b = append(b, 'M')
		b = binary.AppendUvarint(b, uint64(len(bs.Children)))
		for _, c := range bs.Children {
			b = appendBodyStructure(b, c)
		}
		b = appendString(b, bs.Subtype)
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureMultiPartExt{}
		}
		b = appendParams(b, ext.Params)
		return appendExt(b, ext.Disposition, ext.Language, ext.Location)
	case *imap.BodyStructureSinglePart:
		b = append(b, 'S')
		b = appendString(b, bs.Type)
		b = appendString(b, bs.Subtype)
		b = appendParams(b, bs.Params)
		b = appendString(b, bs.ID)
		b = appendString(b, bs.Description)
		b = appendString(b, bs.Encoding)
		b = binary.AppendUvarint(b, uint64(bs.Size))
		switch {
		case bs.MessageRFC822 != nil:
			b = append(b, 2)
			b = appendEnvelope(b, bs.MessageRFC822.Envelope)
			b = appendBodyStructure(b, bs.MessageRFC822.BodyStructure)
			b = binary.AppendUvarint(b, uint64(bs.MessageRFC822.NumLines))
		case bs.Text != nil:
			b = append(b, 1)
			b = binary.AppendUvarint(b, uint64(bs.Text.NumLines))
		default:
			b = append(b, 0)
		}
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureSinglePartExt{}
		}
		return appendExt(b, ext.Disposition, ext.Language, ext.Location)
	}
	// A nil structure: an empty text part, so that decoding always
	// gives something writable.
	return appendBodyStructure(b, &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"})
}

// A reader decodes one field's payload. Strings are sliced from s, one
// string holding the whole payload, so that decoding allocates little.
// The first error sticks; every read after it returns zero values.
type reader struct {
	s   string
	pos int
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.pos = len(r.s)
}

func (r *reader) byte() byte {
	if r.pos >= len(r.s) {
		r.fail()
		return 0
	}
	c := r.s[r.pos]
	r.pos++
	return c
}

func (r *reader) uvarint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	r.fail()
	return 0
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// count reads a number of items of at least minSize bytes each that must
// fit in what is left.
func (r *reader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64(len(r.s)-r.pos)/uint64(minSize) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.s)-r.pos) {
		r.fail()
		return ""
	}
	s := r.s[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s
}

func (r *reader) envelope() *imap.Envelope {
	env := &imap.Envelope{}
	switch r.byte() {
	case 0:
	case 1:
		sec, off := r.varint(), r.varint()
		if off < -24*3600 || off > 24*3600 {
			r.fail()
			return env
		}
		env.Date = time.Unix(sec, 0).In(time.FixedZone("", int(off)))
	default:
		r.fail()
		return env
	}
	env.Subject = r.string()
	for _, l := range []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		n := r.count(3)
		if n == 0 {
			continue
		}
		*l = make([]imap.Address, n)
		for i := range *l {
			(*l)[i] = imap.Address{Name: r.string(), Mailbox: r.string(), Host: r.string()}
		}
	}
	if n := r.count(1); n > 0 {
		env.InReplyTo = make([]string, n)
		for i := range env.InReplyTo {
			env.InReplyTo[i] = r.string()
		}
	}
	env.MessageID = r.string()
	return env
}

func (r *reader) params() map[string]string {
	n := r.count(2)
	if n == 0 {
		return nil
	}
	p := make(map[string]string, n)
	for range n {
		k := r.string()
		p[k] = r.string()
	}
	return p
}

func (r *reader) ext() (*imap.BodyStructureDisposition, []string, string) {
	var d *imap.BodyStructureDisposition
	switch r.byte() {
	case 0:
	case 1:
		d = &imap.BodyStructureDisposition{Value: r.string(), Params: r.params()}
	default:
		r.fail()
	}
	var lang []string
	if n := r.count(1); n > 0 {
		lang = make([]string, n)
		for i := range lang {
			lang[i] = r.string()
		}
	}
	return d, lang, r.string()
}

func (r *reader) bodyStructure(depth int) imap.BodyStructure {
	if depth > maxNesting {
		r.fail()
		return nil
	}
	switch r.byte() {
	case 'M':
		n := r.count(1)
		if n == 0 {
			// go-imap cannot write a multipart without parts.
			r.fail()
			return nil
		}
		bs := &imap.BodyStructureMultiPart{Children: make([]imap.BodyStructure, 0, n)}
		for range n {
			c := r.bodyStructure(depth + 1)
			if r.err != nil {
				return nil
			}
			bs.Children = append(bs.Children, c)
		}
		bs.Subtype = r.string()
		params := r.params()
		d, lang, loc := r.ext()
		bs.Extended = &imap.BodyStructureMultiPartExt{Params: params, Disposition: d, Language: lang, Location: loc}
		return bs
	case 'S':
		bs := &imap.BodyStructureSinglePart{
			Type:        r.string(),
			Subtype:     r.string(),
			Params:      r.params(),
			ID:          r.string(),
			Description: r.string(),
			Encoding:    r.string(),
		}
		size := r.uvarint()
		if size > 1<<32-1 {
			r.fail()
		}
		bs.Size = uint32(size)
		switch r.byte() {
		case 0:
		case 1:
			bs.Text = &imap.BodyStructureText{NumLines: int64(r.uvarint() & (1<<62 - 1))}
		case 2:
			env := r.envelope()
			inner := r.bodyStructure(depth + 1)
			lines := int64(r.uvarint() & (1<<62 - 1))
			if r.err == nil {
				bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: env, BodyStructure: inner, NumLines: lines}
			}
		default:
			r.fail()
		}
		d, lang, loc := r.ext()
		bs.Extended = &imap.BodyStructureSinglePartExt{Disposition: d, Language: lang, Location: loc}
		if r.err != nil {
			return nil
		}
		return bs
	}
	r.fail()
	return nil
}

// decodeEnvelope and decodeBodyStructure decode a whole field payload; an
// error means the field is unusable.
func decodeEnvelope(p string) (*imap.Envelope, error) {
	r := &reader{s: p}
	env := r.envelope()
	if r.err == nil && r.pos != len(p) {
		r.fail()
	}
	return env, r.err
}

func decodeBodyStructure(p string) (imap.BodyStructure, error) {
	r := &reader{s: p}
	bs := r.bodyStructure(0)
	if r.err == nil && r.pos != len(p) {
		r.fail()
	}
	return bs, r.err
}
