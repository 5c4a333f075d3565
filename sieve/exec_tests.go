package sieve

import (
	"strings"
	"time"
)

type testConst bool

func (t testConst) eval(*run) (bool, error) { return bool(t), nil }

type testNot struct{ t test }

func (t testNot) eval(r *run) (bool, error) {
	ok, err := t.t.eval(r)
	return !ok, err
}

// testList is allof or anyof; both stop at the first test that decides
// (RFC 5228 §5.2, §5.3), so later tests set no match variables.
type testList struct {
	all   bool
	tests []test
}

func (t testList) eval(r *run) (bool, error) {
	for _, sub := range t.tests {
		ok, err := sub.eval(r)
		if err != nil {
			return false, err
		}
		if ok != t.all {
			return ok, nil
		}
	}
	return t.all, nil
}

type testHeader struct {
	cmp   comparison
	index index
	names []*str
	keys  []*str
}

func (t testHeader) eval(r *run) (bool, error) {
	var values []string
	for _, name := range expandAll(r, t.names) {
		values = append(values, r.msg.headerValues(name, t.index)...)
	}
	return t.cmp.test(r, values, t.keys)
}

type testAddress struct {
	cmp   comparison
	part  addressPart
	index index
	names []*str
	keys  []*str
}

func (t testAddress) eval(r *run) (bool, error) {
	var values []string
	for _, name := range expandAll(r, t.names) {
		for _, v := range t.index.pick(r.msg.rawValues(name)) {
			for _, a := range parseAddressList(v) {
				if p, ok := a.part(t.part); ok {
					values = append(values, p)
				}
			}
		}
	}
	return t.cmp.test(r, values, t.keys)
}

type testEnvelope struct {
	cmp   comparison
	part  addressPart
	names []*str
	keys  []*str
}

func (t testEnvelope) eval(r *run) (bool, error) {
	var values []string
	for _, name := range expandAll(r, t.names) {
		var addr string
		switch strings.ToLower(name) {
		case "from":
			addr = r.env.From
		case "to":
			addr = r.env.To
		default:
			continue
		}
		addr = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">")
		if addr == "" {
			// The null reverse path matches "" whatever the address part
			// (RFC 5228 §5.4).
			values = append(values, "")
			continue
		}
		if p, ok := parseAddrSpec(addr).part(t.part); ok {
			values = append(values, p)
		}
	}
	return t.cmp.test(r, values, t.keys)
}

type testExists struct{ names []*str }

func (t testExists) eval(r *run) (bool, error) {
	for _, name := range expandAll(r, t.names) {
		if !r.msg.has(name) {
			return false, nil
		}
	}
	return true, nil
}

type testSize struct {
	over  bool
	limit uint64
}

func (t testSize) eval(r *run) (bool, error) {
	size := uint64(max(r.msg.size, 0))
	if t.over {
		return size > t.limit, nil
	}
	return size < t.limit, nil
}

type testBody struct {
	cmp       comparison
	transform bodyTransform
	types     []*str
	keys      []*str
}

func (t testBody) eval(r *run) (bool, error) {
	parts := r.msg.bodyParts(t.transform)
	var types []string
	if t.transform == bodyContent {
		types = expandAll(r, t.types)
	}
	var values []string
	for _, p := range parts {
		if t.transform != bodyContent || contentMatches(p.mediaType, types) {
			values = append(values, p.text)
		}
	}
	return t.cmp.test(r, values, t.keys)
}

type testString struct {
	cmp     comparison
	sources []*str
	keys    []*str
}

// eval compares the source strings; for :count only the non-empty ones
// count (RFC 5229 §5).
func (t testString) eval(r *run) (bool, error) {
	values := expandAll(r, t.sources)
	if t.cmp.match == matchCount {
		var nonEmpty []string
		for _, v := range values {
			if v != "" {
				nonEmpty = append(nonEmpty, v)
			}
		}
		values = nonEmpty
	}
	return t.cmp.test(r, values, t.keys)
}

type testHasflag struct {
	cmp       comparison
	variables []string // nil: the internal variable
	keys      []*str
}

// eval compares every flag of the variables with every flag of the keys,
// both split at spaces (RFC 5232 §4); :count counts the flags.
func (t testHasflag) eval(r *run) (bool, error) {
	var flags []string
	if t.variables == nil {
		flags = r.flags
	} else {
		for _, v := range t.variables {
			flags = append(flags, splitFlags(r.vars[v])...)
		}
	}
	if t.cmp.match == matchCount {
		return t.cmp.test(r, flags, t.keys)
	}
	var keys []*str
	for _, k := range expandAll(r, t.keys) {
		for _, f := range strings.Fields(k) {
			keys = append(keys, &str{text: f})
		}
	}
	return t.cmp.test(r, flags, keys)
}

type testDate struct {
	cmp      comparison
	current  bool
	original bool
	zone     *time.Location
	index    index
	header   *str
	part     *str
	keys     []*str
}

func (t *testDate) eval(r *run) (bool, error) {
	part, ok := dateParts[strings.ToLower(t.part.expand(r))]
	if !ok {
		return false, nil
	}
	var dates []time.Time
	if t.current {
		dates = []time.Time{r.now}
	} else {
		name := t.header.expand(r)
		for _, v := range t.index.pick(r.msg.rawValues(name)) {
			if d, ok := headerDate(name, v); ok {
				dates = append(dates, d)
			}
		}
	}
	values := make([]string, 0, len(dates))
	for _, d := range dates {
		switch {
		case t.zone != nil:
			d = d.In(t.zone)
		case t.original:
		default:
			d = d.In(r.loc)
		}
		values = append(values, part(d))
	}
	return t.cmp.test(r, values, t.keys)
}

type testMailboxExists struct{ names []*str }

// eval is true when every named mailbox exists (RFC 5490 §3.1).
func (t testMailboxExists) eval(r *run) (bool, error) {
	for _, name := range expandAll(r, t.names) {
		if isInbox(name) {
			continue
		}
		ok, err := r.envir.MailboxExists(name)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
