package sieve

import (
	"strings"
)

// extensions are the capabilities a script may require (RFC 5228 §3.2).
var extensions = map[string]bool{
	"fileinto": true, "envelope": true, "encoded-character": true, "copy": true, "body": true,
	"variables": true, "vacation": true, "relational": true, "imap4flags": true, "subaddress": true,
	"reject": true, "ereject": true, "date": true, "index": true, "mailbox": true,
	"comparator-i;octet": true, "comparator-i;ascii-casemap": true, "comparator-i;ascii-numeric": true,
}

// Extensions returns the capabilities this interpreter supports, in the form
// a ManageSieve server advertises them (SIEVE capability, RFC 5804 §1.7).
func Extensions() []string {
	return []string{"body", "comparator-i;ascii-numeric", "copy", "date", "encoded-character", "envelope",
		"ereject", "fileinto", "imap4flags", "index", "mailbox", "relational", "reject", "subaddress",
		"vacation", "variables"}
}

// Script is a parsed and checked Sieve script. It is never changed after
// Parse, so one Script may run concurrently.
type Script struct {
	cmds []command
	exts map[string]bool
}

// Requires reports whether the script required the extension ext.
func (s *Script) Requires(ext string) bool { return s.exts[ext] }

// Parse parses and checks a script. The error is an *Error with the line and
// column of the first problem.
func Parse(src []byte) (*Script, error) {
	nodes, err := parse(string(src))
	if err != nil {
		return nil, err
	}
	c := &checker{exts: map[string]bool{}}
	cmds, err := c.commands(nodes, true)
	if err != nil {
		return nil, err
	}
	return &Script{cmds: cmds, exts: c.exts}, nil
}

type checker struct {
	exts map[string]bool
}

func (c *checker) has(ext string) bool { return c.exts[ext] }

// need fails unless the script required ext.
func (c *checker) need(p Pos, what, ext string) error {
	if !c.exts[ext] {
		return errorf(p, "%s needs require %q", what, ext)
	}
	return nil
}

type param int

const (
	paramNone    param = iota
	paramString        // one string
	paramStrings       // a string or a string list
	paramNumber
)

func (p param) String() string {
	switch p {
	case paramString:
		return "a string"
	case paramStrings:
		return "a string list"
	case paramNumber:
		return "a number"
	}
	return "nothing"
}

// tagSpec describes one tagged argument: the extension it needs, the
// parameter that follows it, and its group (tags of one group exclude each
// other; the empty group means the tag's own name).
type tagSpec struct {
	name  string
	ext   string
	param param
	group string
}

type tagValue struct {
	pos Pos
	arg argument // the parameter, if the tag takes one
}

type parsedArgs struct {
	node  *node
	tags  map[string]tagValue
	group map[string]string // group -> tag used
	pos   []argument
}

func (a *parsedArgs) has(tag string) bool { _, ok := a.tags[tag]; return ok }

// inGroup returns the tag used from group, or "".
func (a *parsedArgs) inGroup(group string) string { return a.group[group] }

var (
	comparatorTag = tagSpec{name: "comparator", param: paramString}
	matchTags     = []tagSpec{
		{name: "is", group: "match"}, {name: "contains", group: "match"}, {name: "matches", group: "match"},
		{name: "count", ext: "relational", param: paramString, group: "match"},
		{name: "value", ext: "relational", param: paramString, group: "match"},
	}
	addressPartTags = []tagSpec{
		{name: "all", group: "part"}, {name: "localpart", group: "part"}, {name: "domain", group: "part"},
		{name: "user", ext: "subaddress", group: "part"}, {name: "detail", ext: "subaddress", group: "part"},
	}
	indexTags = []tagSpec{{name: "index", ext: "index", param: paramNumber}, {name: "last", ext: "index"}}
)

func joinTags(groups ...[]tagSpec) []tagSpec {
	var all []tagSpec
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// args sorts a command's or test's arguments into tags and positional
// arguments and checks them against the specification: known tags, their
// extensions and parameters, no conflicts, tags before positional arguments
// (RFC 5228 §2.6), and the number and types of positional arguments.
func (c *checker) args(n *node, what string, tags []tagSpec, positional ...param) (*parsedArgs, error) {
	a := &parsedArgs{node: n, tags: map[string]tagValue{}, group: map[string]string{}}
	for i := 0; i < len(n.args); i++ {
		arg := n.args[i]
		if arg.kind != argTag {
			a.pos = append(a.pos, arg)
			continue
		}
		if len(a.pos) > 0 {
			return nil, errorf(arg.pos, "tag :%s after the positional arguments of %s", arg.tag, what)
		}
		var spec *tagSpec
		for j := range tags {
			if tags[j].name == arg.tag {
				spec = &tags[j]
			}
		}
		if spec == nil {
			return nil, errorf(arg.pos, "unknown tag :%s for %s", arg.tag, what)
		}
		if spec.ext != "" {
			if err := c.need(arg.pos, ":"+arg.tag, spec.ext); err != nil {
				return nil, err
			}
		}
		group := spec.group
		if group == "" {
			group = spec.name
		}
		if prev, ok := a.group[group]; ok {
			if prev == arg.tag {
				return nil, errorf(arg.pos, "duplicate tag :%s", arg.tag)
			}
			return nil, errorf(arg.pos, "tag :%s conflicts with :%s", arg.tag, prev)
		}
		a.group[group] = arg.tag
		v := tagValue{pos: arg.pos}
		if spec.param != paramNone {
			if i+1 >= len(n.args) || !fits(n.args[i+1], spec.param) {
				return nil, errorf(arg.pos, "tag :%s needs %s", arg.tag, spec.param)
			}
			i++
			v.arg = n.args[i]
		}
		a.tags[arg.tag] = v
	}
	if len(a.pos) < len(positional) {
		return nil, errorf(n.pos, "%s needs %d positional argument(s), found %d", what, len(positional), len(a.pos))
	}
	if len(a.pos) > len(positional) {
		return nil, errorf(a.pos[len(positional)].pos, "too many arguments for %s", what)
	}
	for i, p := range positional {
		if !fits(a.pos[i], p) {
			return nil, errorf(a.pos[i].pos, "argument %d of %s must be %s, found %s", i+1, what, p, describeArg(a.pos[i]))
		}
	}
	return a, nil
}

func fits(a argument, p param) bool {
	switch p {
	case paramString:
		return a.kind == argStrings && !a.list && len(a.strs) == 1
	case paramStrings:
		return a.kind == argStrings
	case paramNumber:
		return a.kind == argNumber
	}
	return false
}

func describeArg(a argument) string {
	switch {
	case a.kind == argNumber:
		return "a number"
	case a.kind == argTag:
		return "a tag"
	case a.list:
		return "a string list"
	}
	return "a string"
}

// noTests fails when a command or test was given tests it does not take.
func noTests(n *node, what string) error {
	if len(n.tests) > 0 {
		return errorf(n.tests[0].pos, "%s takes no test", what)
	}
	return nil
}

// noBlock fails when a command that is not a control structure has a block.
func noBlock(n *node) error {
	if n.hasBlock {
		return errorf(n.pos, "%s takes no block; end it with \";\"", n.name)
	}
	return nil
}

// str compiles one string: encoded characters are decoded (RFC 5228
// §2.4.2.4) and, with variables, references are found (RFC 5229 §3).
func (c *checker) str(l strLit) (*str, error) {
	v := l.val
	if c.has("encoded-character") {
		var err error
		if v, err = decodeEncoded(v); err != nil {
			return nil, errorf(l.pos, "%v", err)
		}
	}
	if !c.has("variables") {
		return &str{text: v}, nil
	}
	s, err := parseTemplate(v)
	if err != nil {
		return nil, errorf(l.pos, "%v", err)
	}
	return s, nil
}

func (c *checker) strs(a argument) ([]*str, error) {
	out := make([]*str, 0, len(a.strs))
	for _, l := range a.strs {
		s, err := c.str(l)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// constant returns a string argument that must not change at run time (a
// comparator name, a variable name), after encoded-character decoding.
func (c *checker) constant(l strLit) (string, error) {
	v := l.val
	if c.has("encoded-character") {
		var err error
		if v, err = decodeEncoded(v); err != nil {
			return "", errorf(l.pos, "%v", err)
		}
	}
	return v, nil
}

// variableName checks the name of a variable a command assigns: an
// identifier, since match variables are read-only and no namespace is
// supported (RFC 5229 §3, §4).
func (c *checker) variableName(l strLit) (string, error) {
	name, err := c.constant(l)
	if err != nil {
		return "", err
	}
	if strings.Contains(name, ".") && validName(name) {
		return "", errorf(l.pos, "unknown variable namespace in %q", name)
	}
	if !isIdentifier(name) {
		return "", errorf(l.pos, "invalid variable name %q", name)
	}
	return strings.ToLower(name), nil
}

func isIdentifier(s string) bool {
	if s == "" || !(isAlpha(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !(isAlpha(s[i]) || isDigit(s[i]) || s[i] == '_') {
			return false
		}
	}
	return true
}

// comparison builds the comparator and match type of a test from its tags
// (RFC 5228 §2.7, RFC 5231 §4). The default is :is with i;ascii-casemap.
func (c *checker) comparison(a *parsedArgs) (comparison, error) {
	cmp := comparison{comparator: cmpCasemap, match: matchIs}
	if v, ok := a.tags["comparator"]; ok {
		name, err := c.constant(v.arg.strs[0])
		if err != nil {
			return cmp, err
		}
		switch strings.ToLower(name) {
		case "i;octet":
			cmp.comparator = cmpOctet
		case "i;ascii-casemap":
			cmp.comparator = cmpCasemap
		case "i;ascii-numeric":
			if err := c.need(v.arg.pos, "comparator i;ascii-numeric", "comparator-i;ascii-numeric"); err != nil {
				return cmp, err
			}
			cmp.comparator = cmpNumeric
		default:
			return cmp, errorf(v.arg.pos, "unknown comparator %q", name)
		}
	}
	switch m := a.inGroup("match"); m {
	case "contains", "matches":
		if m == "contains" {
			cmp.match = matchContains
		} else {
			cmp.match = matchMatches
		}
		if cmp.comparator == cmpNumeric {
			return cmp, errorf(a.tags[m].pos, "comparator i;ascii-numeric cannot do :%s", m)
		}
	case "count", "value":
		cmp.match = matchValue
		if m == "count" {
			cmp.match = matchCount
		}
		v := a.tags[m]
		op, err := c.constant(v.arg.strs[0])
		if err != nil {
			return cmp, err
		}
		rel, ok := relOps[strings.ToLower(op)]
		if !ok {
			return cmp, errorf(v.arg.pos, "unknown relational operator %q (want gt, ge, lt, le, eq or ne)", op)
		}
		cmp.rel = rel
	}
	return cmp, nil
}

func (c *checker) index(a *parsedArgs) (index, error) {
	var ix index
	if v, ok := a.tags["index"]; ok {
		if v.arg.num == 0 || v.arg.num > 1<<20 {
			return ix, errorf(v.arg.pos, ":index must be between 1 and %d", 1<<20)
		}
		ix.n = int(v.arg.num)
	}
	if v, ok := a.tags["last"]; ok {
		if ix.n == 0 {
			return ix, errorf(v.pos, ":last needs :index")
		}
		ix.last = true
	}
	return ix, nil
}

// headerNames compiles header names; a constant one must be a valid field
// name (RFC 5228 §2.4.2.2, RFC 5322 §3.6.8).
func (c *checker) headerNames(a argument) ([]*str, error) {
	names, err := c.strs(a)
	if err != nil {
		return nil, err
	}
	for i, s := range names {
		if s.constant() && !validFieldName(s.text) {
			return nil, errorf(a.strs[i].pos, "invalid header name %q", s.text)
		}
	}
	return names, nil
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}
