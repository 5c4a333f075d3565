package imapmsg

import (
	"math"

	"github.com/emersion/go-imap/v2"
)

// BodyStructure returns the message's BODYSTRUCTURE (RFC 3501 §7.4.2,
// RFC 9051 §7.5.2) with the extension data filled in, so that it serves
// both BODY and BODYSTRUCTURE (go-imap's writer leaves the extension data
// out for BODY). Sizes and line counts are those of the CRLF form: size is
// the octets of the part's body, lines its CRLFs (the line ending before a
// boundary belongs to the boundary, RFC 2046 §5.1.1). It reads the whole
// message.
//
// Types and parameter names are lower case; parameter values are as
// written, with RFC 2231 continuations joined and decoded to UTF-8. A part
// without a valid Content-Type is text/plain; charset=us-ascii (in a
// multipart/digest, message/rfc822); a multipart in which no part was
// found has one empty text/plain part; MD5 is always NIL.
func (m *Message) BodyStructure() (imap.BodyStructure, error) {
	e, err := m.parse()
	if err != nil {
		return nil, err
	}
	return structureOf(e), nil
}

func structureOf(e *entity) imap.BodyStructure {
	mi := &e.mime
	if e.multipart {
		bs := &imap.BodyStructureMultiPart{
			Subtype: mi.sub,
			Extended: &imap.BodyStructureMultiPartExt{
				Params:      mi.params,
				Disposition: disposition(mi),
				Language:    mi.language,
				Location:    mi.location,
			},
		}
		for _, c := range e.children {
			bs.Children = append(bs.Children, structureOf(c))
		}
		return bs
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        mi.typ,
		Subtype:     mi.sub,
		Params:      mi.params,
		ID:          mi.id,
		Description: mi.desc,
		Encoding:    mi.encoding,
		Size:        uint32(min(e.vend-e.vbody, math.MaxUint32)),
		Extended: &imap.BodyStructureSinglePartExt{
			Disposition: disposition(mi),
			Language:    mi.language,
			Location:    mi.location,
		},
	}
	switch {
	case e.opaque:
		// Nested too deep to be taken apart: as Dovecot reports it.
		bs.Type, bs.Subtype = "application", "octet-stream"
	case e.msg != nil:
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelopeOf(e.msg.header),
			BodyStructure: structureOf(e.msg),
			NumLines:      e.lines,
		}
	case mi.typ == "text":
		bs.Text = &imap.BodyStructureText{NumLines: e.lines}
	}
	return bs
}

func disposition(mi *mimeInfo) *imap.BodyStructureDisposition {
	if mi.disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: mi.disp, Params: mi.dispParams}
}
