package sieve

import (
	"html"
	"io"
	"strings"

	message "github.com/emersion/go-message"
)

// bodyTransform is the body test's view of the body (RFC 5173 §5).
type bodyTransform int

const (
	bodyText    bodyTransform = iota // decoded text parts, the default
	bodyRaw                          // the undecoded body after the header
	bodyContent                      // decoded parts of the listed types
)

type bodyPart struct {
	mediaType string // lower case type/subtype
	text      string
}

// maxMIMEDepth bounds how deep nested multiparts and messages are read.
const maxMIMEDepth = 16

// bodyParts returns the body for a transform, read once and then cached.
// Decoding undoes the content transfer encoding and converts text to UTF-8;
// at most MaxBodyText bytes are read in all.
func (m *Message) bodyParts(t bodyTransform) []bodyPart {
	m.bodyOnce.Lock()
	defer m.bodyOnce.Unlock()
	if m.bodies == nil {
		m.bodies = map[string][]bodyPart{}
	}
	key := [...]string{"text", "raw", "content"}[t]
	if parts, ok := m.bodies[key]; ok {
		return parts
	}
	var parts []bodyPart
	switch t {
	case bodyRaw:
		b, _ := io.ReadAll(io.LimitReader(m.body(), MaxBodyText))
		parts = []bodyPart{{text: string(b)}}
	case bodyContent, bodyText:
		budget := int64(MaxBodyText)
		e, err := message.Read(io.NewSectionReader(m.r, 0, m.n))
		if e != nil && (err == nil || decodable(err)) {
			collectParts(e, 0, &budget, &parts)
		}
		if t == bodyText {
			parts = textParts(parts)
		}
	}
	m.bodies[key] = parts
	return parts
}

// decodable reports whether go-message's error still left an entity to read
// (an unknown charset or encoding: the text is used as it is).
func decodable(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

func collectParts(e *message.Entity, depth int, budget *int64, parts *[]bodyPart) {
	if depth > maxMIMEDepth || *budget <= 0 {
		return
	}
	mt, _, err := e.Header.ContentType()
	if err != nil || mt == "" {
		mt = "text/plain" // RFC 2045 §5.2
	}
	mt = strings.ToLower(mt)
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if p == nil || err != nil && !decodable(err) {
				return
			}
			collectParts(p, depth+1, budget, parts)
		}
	}
	if mt == "message/rfc822" || mt == "message/global" {
		if inner, err := message.Read(e.Body); inner != nil && (err == nil || decodable(err)) {
			collectParts(inner, depth+1, budget, parts)
		}
		return
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, *budget))
	*budget -= int64(len(b))
	*parts = append(*parts, bodyPart{mediaType: mt, text: string(b)})
}

// textParts keeps the text/* parts, with HTML reduced to its text
// (RFC 5173 §5.3 leaves the conversion to the implementation).
func textParts(parts []bodyPart) []bodyPart {
	var out []bodyPart
	for _, p := range parts {
		if !strings.HasPrefix(p.mediaType, "text/") {
			continue
		}
		if p.mediaType == "text/html" {
			p.text = htmlText(p.text)
		}
		out = append(out, p)
	}
	return out
}

// htmlText drops tags and decodes entities; block-level tags become line
// breaks so that words on either side stay apart.
func htmlText(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		name := strings.ToLower(strings.TrimLeft(s[i+1:i+j], "/"))
		if k := strings.IndexAny(name, " \t\r\n/"); k >= 0 {
			name = name[:k]
		}
		if blockTags[name] {
			b.WriteByte('\n')
		}
		s = s[i+j+1:]
	}
	return html.UnescapeString(b.String())
}

var blockTags = map[string]bool{"p": true, "br": true, "div": true, "tr": true, "td": true, "li": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "table": true, "blockquote": true}

// contentMatches reports whether a part's type is one of the :content types:
// "type" matches every subtype, "type/subtype" exactly, and "" any part
// (RFC 5173 §5.2).
func contentMatches(mediaType string, types []string) bool {
	major, _, _ := strings.Cut(mediaType, "/")
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || t == mediaType || !strings.Contains(t, "/") && t == major {
			return true
		}
	}
	return false
}
