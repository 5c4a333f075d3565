package imapmsg

import (
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"
)

// maxHeader bounds the header bytes kept per entity for reading its fields
// (Content-Type, the envelope fields...). Sections and sizes never depend on
// it: a longer header is still served and counted whole, only fields past
// the limit are not looked at.
const maxHeader = 256 << 10

// A header is the raw header of one entity: its lines, each ending in "\n"
// whatever the line ending in the file, up to maxHeader bytes.
type header []byte

// each calls fn for every field in order with its name (trimmed) and its raw
// value (what follows the colon, continuation lines included), until fn
// returns false. Lines that are neither a field nor a continuation (no
// colon) are skipped, as are continuations before the first field.
func (h header) each(fn func(name, value []byte) bool) {
	rest := []byte(h)
	for len(rest) > 0 {
		// A field is a line not starting with white space and the
		// continuation lines that follow it (RFC 5322 §2.2.3).
		end := 0
		for {
			i := bytes.IndexByte(rest[end:], '\n')
			if i < 0 {
				end = len(rest)
				break
			}
			end += i + 1
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		field := rest[:end]
		rest = rest[end:]
		colon := bytes.IndexByte(field, ':')
		if colon <= 0 || field[0] == ' ' || field[0] == '\t' {
			continue
		}
		if nl := bytes.IndexByte(field, '\n'); nl >= 0 && nl < colon {
			continue
		}
		name := bytes.TrimRight(field[:colon], " \t")
		if len(name) == 0 {
			continue
		}
		if !fn(name, field[colon+1:]) {
			return
		}
	}
}

// last returns the unfolded value of the last field called name, the one
// the envelope shows.
func (h header) last(name string) (string, bool) {
	var raw []byte
	found := false
	h.each(func(n, value []byte) bool {
		if equalFoldASCII(n, name) {
			raw, found = value, true
		}
		return true
	})
	return unfold(raw), found
}

// unfold joins a field value's lines (RFC 5322 §2.2.3: the line breaks go,
// the white space after them stays) and trims white space at both ends.
// NUL bytes, which IMAP strings cannot carry, are dropped.
func unfold(v []byte) string {
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, 0) < 0 {
		return string(bytes.Trim(v, " \t\r"))
	}
	b := make([]byte, 0, len(v))
	for i, c := range v {
		switch {
		case c == 0, c == '\n':
		case c == '\r' && i+1 < len(v) && v[i+1] == '\n':
		default:
			b = append(b, c)
		}
	}
	return string(bytes.Trim(b, " \t\r"))
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// mimeInfo is what an entity's MIME header fields say (RFC 2045, RFC 2183,
// RFC 3282, RFC 2557), parsed leniently: a field that cannot be parsed
// counts as absent.
type mimeInfo struct {
	typ, sub     string // lower case
	params       map[string]string
	explicitType bool // a valid Content-Type was present
	encoding     string
	id, desc     string
	disp         string
	dispParams   map[string]string
	language     []string
	location     string
}

// The kinds of entity, which decide how their MIME fields are read.
const (
	kindMessage     = iota // a message: the top level or inside message/rfc822
	kindPart               // a part of a multipart
	kindDigestChild        // a part of a multipart/digest
)

// parseMIME reads an entity's MIME fields. An entity without a valid
// Content-Type is text/plain; charset=us-ascii (RFC 2045 §5.2), or
// message/rfc822 in a multipart/digest (RFC 2046 §5.1.5). A message
// without MIME-Version and without Content-Type is not MIME (RFC 2045
// §4): as in Dovecot, its other Content-* fields are ignored.
func parseMIME(h header, kind int) mimeInfo {
	var m mimeInfo
	seen := 0
	mime := kind != kindMessage
	const (
		seenType = 1 << iota
		seenEnc
		seenID
		seenDesc
		seenDisp
		seenLang
		seenLoc
	)
	h.each(func(name, value []byte) bool {
		if equalFoldASCII(name, "MIME-Version") {
			mime = true
		}
		if len(name) < 8 || !equalFoldASCII(name[:8], "content-") {
			return true
		}
		switch {
		case equalFoldASCII(name, "Content-Type") && seen&seenType == 0:
			seen |= seenType
			mime = true
			v, params := parseParams(unfold(value))
			typ, sub, ok := strings.Cut(v, "/")
			// A multipart without a boundary cannot be taken apart:
			// like an invalid type it is text/plain (RFC 2045 §5.2).
			if ok && isToken(typ) && isToken(sub) && (typ != "multipart" || params["boundary"] != "") {
				m.typ, m.sub, m.params, m.explicitType = typ, sub, params, true
			}
		case equalFoldASCII(name, "Content-Transfer-Encoding") && seen&seenEnc == 0:
			// The first that is one token counts; others are no
			// encoding (as in Dovecot).
			if v := strings.ToLower(unfold(value)); isToken(v) {
				m.encoding = v
				seen |= seenEnc
			}
		case equalFoldASCII(name, "Content-ID") && seen&seenID == 0:
			seen |= seenID
			m.id = unfold(value)
		case equalFoldASCII(name, "Content-Description") && seen&seenDesc == 0:
			seen |= seenDesc
			m.desc = unfold(value)
		case equalFoldASCII(name, "Content-Disposition") && seen&seenDisp == 0:
			seen |= seenDisp
			v, params := parseParams(unfold(value))
			if isToken(v) {
				m.disp, m.dispParams = v, params
			}
		case equalFoldASCII(name, "Content-Language") && seen&seenLang == 0:
			seen |= seenLang
			for _, l := range strings.Split(unfold(value), ",") {
				if l = strings.TrimSpace(l); l != "" {
					m.language = append(m.language, l)
				}
			}
		case equalFoldASCII(name, "Content-Location") && seen&seenLoc == 0:
			seen |= seenLoc
			m.location = unfold(value)
		}
		return true
	})
	if !mime {
		m = mimeInfo{}
	}
	if !m.explicitType {
		if kind == kindDigestChild {
			m.typ, m.sub = "message", "rfc822"
		} else {
			m.typ, m.sub = "text", "plain"
		}
	}
	if m.typ == "text" && m.params["charset"] == "" {
		// RFC 2045 §5.2: the default charset; Dovecot reports it too.
		if m.params == nil {
			m.params = map[string]string{}
		}
		m.params["charset"] = "us-ascii"
	}
	return m
}

// isToken reports whether s is a non-empty RFC 2045 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseParams splits a structured field value such as a Content-Type into
// its lower-cased first element and its parameters (keys lower-cased). It is
// lenient where mime.ParseMediaType is strict, because one bad parameter
// must not lose the boundary of a multipart: a malformed parameter is
// skipped, the first of duplicates wins, comments are ignored. RFC 2231
// continuations and charsets (name*0*=utf-8'en'caf%C3%A9) are put together and
// decoded to UTF-8; encoded words (RFC 2047) are left as they are for the
// client to decode.
func parseParams(v string) (string, map[string]string) {
	first, rest, _ := strings.Cut(v, ";")
	first = strings.ToLower(strings.TrimSpace(stripComments(first)))
	var params map[string]string
	var ext []extParam
	for len(rest) > 0 {
		var key, val string
		var ok bool
		key, val, rest, ok = nextParam(rest)
		if !ok {
			continue
		}
		if base, section, isExt := strings.Cut(key, "*"); isExt {
			ext = append(ext, extParam{base: base, section: section, value: val})
			continue
		}
		if params == nil {
			params = make(map[string]string)
		}
		if _, dup := params[key]; !dup {
			params[key] = val
		}
	}
	for k, v := range joinExtParams(ext) {
		if params == nil {
			params = make(map[string]string)
		}
		params[k] = v
	}
	return first, params
}

// nextParam reads one "key=value" from s (which starts after a ';').
func nextParam(s string) (key, value, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t\r\n")
	eq := strings.IndexAny(s, "=;")
	if eq < 0 || s[eq] == ';' {
		if eq < 0 {
			return "", "", "", false
		}
		return "", "", s[eq+1:], false
	}
	key = strings.ToLower(strings.TrimSpace(stripComments(s[:eq])))
	s = strings.TrimLeft(s[eq+1:], " \t\r\n")
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		value = b.String()
		s = s[min(i+1, len(s)):]
		if j := strings.IndexByte(s, ';'); j >= 0 {
			rest = s[j+1:]
		}
	} else {
		j := strings.IndexByte(s, ';')
		if j < 0 {
			j = len(s)
			rest = ""
		} else {
			rest = s[j+1:]
		}
		value = strings.TrimSpace(stripComments(s[:j]))
	}
	if key == "" || !isToken(strings.ReplaceAll(key, "*", "x")) {
		return "", "", rest, false
	}
	return key, value, rest, true
}

// stripComments removes RFC 5322 comments ("(...)", nested) from an
// unquoted piece of a structured field.
func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// extParam is one RFC 2231 parameter piece: "base*section=value", where
// section is "" (base*), "N" (base*N) or "N*" (base*N*).
type extParam struct {
	base, section, value string
}

// joinExtParams puts RFC 2231 parameters together (§3 continuations, §4
// charset'language'percent-encoding) and converts them to UTF-8 through
// go-message's charset tables; a charset it does not know leaves the bytes
// as they are.
func joinExtParams(ext []extParam) map[string]string {
	if len(ext) == 0 {
		return nil
	}
	type piece struct {
		value   string
		encoded bool
	}
	bases := map[string]map[int]piece{}
	var order []string
	for _, p := range ext {
		n, encoded := 0, false
		switch {
		case p.section == "":
			encoded = true
		default:
			num := strings.TrimSuffix(p.section, "*")
			encoded = num != p.section
			v, err := strconv.Atoi(num)
			if err != nil || v < 0 || v > 999 {
				continue
			}
			n = v
		}
		m := bases[p.base]
		if m == nil {
			m = map[int]piece{}
			bases[p.base] = m
			order = append(order, p.base)
		}
		if _, dup := m[n]; !dup {
			m[n] = piece{p.value, encoded}
		}
	}
	out := make(map[string]string, len(order))
	for _, base := range order {
		pieces := bases[base]
		var raw []byte
		cs := ""
		for n := 0; ; n++ {
			p, ok := pieces[n]
			if !ok {
				break
			}
			v := p.value
			if p.encoded {
				if n == 0 {
					// charset'language'value
					c, after, ok1 := strings.Cut(v, "'")
					_, after, ok2 := strings.Cut(after, "'")
					if ok1 && ok2 {
						cs, v = strings.ToLower(c), after
					}
				}
				raw = append(raw, percentDecode(v)...)
			} else {
				raw = append(raw, v...)
			}
		}
		if len(pieces) > 0 && raw != nil {
			out[base] = toUTF8(cs, raw)
		}
	}
	return out
}

func percentDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return b
}

// toUTF8 converts b from the named charset; unknown charsets and decoding
// errors leave b unchanged.
func toUTF8(cs string, b []byte) string {
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return string(b)
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		return string(b)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return string(b)
	}
	return string(out)
}
