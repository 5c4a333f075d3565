package sieve

import (
	"strings"
)

func (c *checker) test(n *node) (test, error) {
	if n.hasBlock {
		return nil, errorf(n.pos, "test %s takes no block", n.name)
	}
	switch n.name {
	case "true", "false":
		if err := noTests(n, n.name); err != nil {
			return nil, err
		}
		_, err := c.args(n, n.name, nil)
		return testConst(n.name == "true"), err
	case "not":
		if len(n.args) > 0 {
			return nil, errorf(n.args[0].pos, "not takes no arguments")
		}
		if len(n.tests) != 1 || n.testList {
			return nil, errorf(n.pos, "not needs exactly one test")
		}
		t, err := c.test(n.tests[0])
		return testNot{t}, err
	case "allof", "anyof":
		if len(n.args) > 0 {
			return nil, errorf(n.args[0].pos, "%s takes no arguments", n.name)
		}
		if !n.testList {
			return nil, errorf(n.pos, "%s needs a test list in parentheses", n.name)
		}
		t := testList{all: n.name == "allof"}
		for _, sub := range n.tests {
			st, err := c.test(sub)
			if err != nil {
				return nil, err
			}
			t.tests = append(t.tests, st)
		}
		return t, nil
	}
	if err := noTests(n, n.name); err != nil {
		return nil, err
	}
	switch n.name {
	case "header":
		return c.header(n)
	case "address":
		return c.address(n)
	case "envelope":
		return c.envelope(n)
	case "exists":
		a, err := c.args(n, "exists", nil, paramStrings)
		if err != nil {
			return nil, err
		}
		names, err := c.headerNames(a.pos[0])
		return testExists{names}, err
	case "size":
		return c.size(n)
	case "body":
		return c.body(n)
	case "string":
		return c.stringTest(n)
	case "hasflag":
		return c.hasflag(n)
	case "date", "currentdate":
		return c.date(n)
	case "mailboxexists":
		if err := c.need(n.pos, "mailboxexists", "mailbox"); err != nil {
			return nil, err
		}
		a, err := c.args(n, "mailboxexists", nil, paramStrings)
		if err != nil {
			return nil, err
		}
		names, err := c.strs(a.pos[0])
		return testMailboxExists{names}, err
	}
	return nil, errorf(n.pos, "unknown test %s", n.name)
}

var comparisonTags = joinTags([]tagSpec{comparatorTag}, matchTags)

func (c *checker) header(n *node) (test, error) {
	a, err := c.args(n, "header", joinTags(comparisonTags, indexTags), paramStrings, paramStrings)
	if err != nil {
		return nil, err
	}
	t := testHeader{}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.index, err = c.index(a); err != nil {
		return nil, err
	}
	if t.names, err = c.headerNames(a.pos[0]); err != nil {
		return nil, err
	}
	t.keys, err = c.strs(a.pos[1])
	return t, err
}

func (c *checker) addressPart(a *parsedArgs) addressPart {
	if p := a.inGroup("part"); p != "" {
		return addressParts[p]
	}
	return partAll
}

func (c *checker) address(n *node) (test, error) {
	a, err := c.args(n, "address", joinTags(comparisonTags, addressPartTags, indexTags), paramStrings, paramStrings)
	if err != nil {
		return nil, err
	}
	t := testAddress{part: c.addressPart(a)}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.index, err = c.index(a); err != nil {
		return nil, err
	}
	if t.names, err = c.headerNames(a.pos[0]); err != nil {
		return nil, err
	}
	t.keys, err = c.strs(a.pos[1])
	return t, err
}

// envelopeParts are the envelope parts this implementation knows
// (RFC 5228 §5.4); others are an error.
var envelopeParts = map[string]bool{"from": true, "to": true}

func (c *checker) envelope(n *node) (test, error) {
	if err := c.need(n.pos, "envelope", "envelope"); err != nil {
		return nil, err
	}
	a, err := c.args(n, "envelope", joinTags(comparisonTags, addressPartTags), paramStrings, paramStrings)
	if err != nil {
		return nil, err
	}
	t := testEnvelope{part: c.addressPart(a)}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.names, err = c.strs(a.pos[0]); err != nil {
		return nil, err
	}
	for i, s := range t.names {
		if s.constant() && !envelopeParts[strings.ToLower(s.text)] {
			return nil, errorf(a.pos[0].strs[i].pos, "unknown envelope part %q (want \"from\" or \"to\")", s.text)
		}
	}
	t.keys, err = c.strs(a.pos[1])
	return t, err
}

func (c *checker) size(n *node) (test, error) {
	a, err := c.args(n, "size", []tagSpec{{name: "over", group: "size"}, {name: "under", group: "size"}}, paramNumber)
	if err != nil {
		return nil, err
	}
	if a.inGroup("size") == "" {
		return nil, errorf(n.pos, "size needs :over or :under")
	}
	return testSize{over: a.has("over"), limit: a.pos[0].num}, nil
}

func (c *checker) body(n *node) (test, error) {
	if err := c.need(n.pos, "body", "body"); err != nil {
		return nil, err
	}
	a, err := c.args(n, "body", joinTags(comparisonTags, []tagSpec{
		{name: "raw", group: "transform"}, {name: "text", group: "transform"},
		{name: "content", param: paramStrings, group: "transform"},
	}), paramStrings)
	if err != nil {
		return nil, err
	}
	t := testBody{transform: bodyText}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.cmp.match == matchCount {
		return nil, errorf(a.tags["count"].pos, "body cannot do :count")
	}
	switch a.inGroup("transform") {
	case "raw":
		t.transform = bodyRaw
	case "content":
		t.transform = bodyContent
		if t.types, err = c.strs(a.tags["content"].arg); err != nil {
			return nil, err
		}
	}
	t.keys, err = c.strs(a.pos[0])
	return t, err
}

func (c *checker) stringTest(n *node) (test, error) {
	if err := c.need(n.pos, "string", "variables"); err != nil {
		return nil, err
	}
	a, err := c.args(n, "string", comparisonTags, paramStrings, paramStrings)
	if err != nil {
		return nil, err
	}
	t := testString{}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.sources, err = c.strs(a.pos[0]); err != nil {
		return nil, err
	}
	t.keys, err = c.strs(a.pos[1])
	return t, err
}

// hasflag checks "hasflag [MATCH-TYPE] [COMPARATOR] [variables] flags"
// (RFC 5232 §4).
func (c *checker) hasflag(n *node) (test, error) {
	if err := c.need(n.pos, "hasflag", "imap4flags"); err != nil {
		return nil, err
	}
	positional := 0
	for _, arg := range n.args {
		if arg.kind != argTag {
			positional++
		}
	}
	params := []param{paramStrings}
	if positional-countTagParams(n) == 2 {
		params = []param{paramStrings, paramStrings}
	}
	a, err := c.args(n, "hasflag", comparisonTags, params...)
	if err != nil {
		return nil, err
	}
	t := testHasflag{}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if len(a.pos) == 2 {
		if err := c.need(a.pos[0].pos, "a flag variable", "variables"); err != nil {
			return nil, err
		}
		for _, l := range a.pos[0].strs {
			name, err := c.variableName(l)
			if err != nil {
				return nil, err
			}
			t.variables = append(t.variables, name)
		}
		a.pos = a.pos[1:]
	}
	t.keys, err = c.strs(a.pos[0])
	return t, err
}

// countTagParams counts the arguments that are parameters of tags, to tell
// hasflag's optional variable list from its flag list.
func countTagParams(n *node) int {
	count := 0
	for i, arg := range n.args {
		if arg.kind == argTag && (arg.tag == "comparator" || arg.tag == "count" || arg.tag == "value") && i+1 < len(n.args) && n.args[i+1].kind != argTag {
			count++
		}
	}
	return count
}

// date checks date and currentdate (RFC 5260 §4, §5).
func (c *checker) date(n *node) (test, error) {
	if err := c.need(n.pos, n.name, "date"); err != nil {
		return nil, err
	}
	tags := joinTags(comparisonTags, []tagSpec{{name: "zone", param: paramString, group: "zone"}})
	params := []param{paramString, paramStrings}
	if n.name == "date" {
		tags = joinTags(tags, []tagSpec{{name: "originalzone", group: "zone"}}, indexTags)
		params = append([]param{paramString}, params...)
	}
	a, err := c.args(n, n.name, tags, params...)
	if err != nil {
		return nil, err
	}
	t := &testDate{current: n.name == "currentdate", original: a.has("originalzone")}
	if t.cmp, err = c.comparison(a); err != nil {
		return nil, err
	}
	if t.index, err = c.index(a); err != nil {
		return nil, err
	}
	if v, ok := a.tags["zone"]; ok {
		z, err := c.constant(v.arg.strs[0])
		if err != nil {
			return nil, err
		}
		if t.zone, ok = parseZone(z); !ok {
			return nil, errorf(v.arg.pos, "invalid time zone %q (want +hhmm or -hhmm)", z)
		}
	}
	if !t.current {
		if t.header, err = c.str(a.pos[0].strs[0]); err != nil {
			return nil, err
		}
		if t.header.constant() && !validFieldName(t.header.text) {
			return nil, errorf(a.pos[0].pos, "invalid header name %q", t.header.text)
		}
		a.pos = a.pos[1:]
	}
	if t.part, err = c.str(a.pos[0].strs[0]); err != nil {
		return nil, err
	}
	if t.part.constant() {
		if _, ok := dateParts[strings.ToLower(t.part.text)]; !ok {
			return nil, errorf(a.pos[0].pos, "unknown date part %q", t.part.text)
		}
	}
	t.keys, err = c.strs(a.pos[1])
	return t, err
}
