// Package spamheader reads ROOT/etc/spam-header, which names the header
// fields a content filter adds to the mail it finds to be spam, and tells
// whether a message carries one. Local delivery (package lda) files such
// messages into the Junk folder; smtpd removes the named fields from
// incoming mail before its filters run, so that only a filter can set them.
//
// The file has one rule a line, "Name: value", such as
//
//	X-Spam: yes
//	X-Spam-Flag: YES
//
// A message is marked when its header section has a field of that name
// (any case) whose value, unfolded and without surrounding white space,
// is the rule's value (any case), or starts with it followed by something
// other than a letter or digit: "X-Spam-Status: Yes" matches
// "X-Spam-Status: Yes, score=7.1" but not "X-Spam-Status: Yesterday".
package spamheader

import (
	"fmt"
	"strings"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/mailheader"
)

// File is the control file's name under ROOT/etc.
const File = "spam-header"

// Rule is one line of the file.
type Rule struct {
	Name, Value string
}

func (r Rule) String() string { return r.Name + ": " + r.Value }

// maxName bounds a rule's field name, maxValue its value.
const (
	maxName  = 200
	maxValue = 200
)

// Parse parses one rule: a field name (printable ASCII without colon or
// space), a colon and a value that is not empty.
func Parse(line string) (Rule, error) {
	name, value, ok := strings.Cut(line, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !validName(name) || value == "" || len(value) > maxValue || !printable(value) {
		return Rule{}, fmt.Errorf("spamheader: %.80q: want \"Name: value\" (as X-Spam: yes)", line)
	}
	return Rule{Name: name, Value: value}, nil
}

func validName(name string) bool {
	if name == "" || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Load reads the rules of ROOT/etc/spam-header (none when it is missing).
// The lines that are no rule are returned as errors, beside the good rules.
func Load(root control.Root) ([]Rule, []error, error) {
	lines, err := root.Lines(File)
	if err != nil {
		return nil, nil, fmt.Errorf("spamheader: %w", err)
	}
	var rules []Rule
	var bad []error
	for _, l := range lines {
		r, err := Parse(l)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", root.Etc(File), err))
			continue
		}
		rules = append(rules, r)
	}
	return rules, bad, nil
}

// Matches reports whether a field's value (as mailheader.Field.Value gives
// it) matches the rule.
func (r Rule) Matches(value string) bool {
	v := strings.TrimSpace(strings.ReplaceAll(value, "\t", " "))
	if len(v) < len(r.Value) || !strings.EqualFold(v[:len(r.Value)], r.Value) {
		return false
	}
	if len(v) == len(r.Value) {
		return true
	}
	c := v[len(r.Value)]
	return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9')
}

// Marked returns the first rule that a field of msg's header section
// matches (msg may be the whole message, CRLF or LF), and whether there is
// one.
func Marked(msg []byte, rules []Rule) (Rule, bool) {
	if len(rules) == 0 {
		return Rule{}, false
	}
	for _, f := range mailheader.ParseHeader(msg).Fields {
		for _, r := range rules {
			if f.Is(r.Name) && r.Matches(f.Value()) {
				return r, true
			}
		}
	}
	return Rule{}, false
}

// Names returns the field names of the rules, for removing them.
func Names(rules []Rule) []string {
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
	}
	return names
}
