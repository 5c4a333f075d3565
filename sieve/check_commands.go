package sieve

import (
	"sort"
	"strings"
)

// commands checks a list of commands; top is true at the script's top level,
// where require may start it (RFC 5228 §3.2).
func (c *checker) commands(nodes []*node, top bool) ([]command, error) {
	var out []command
	requireAllowed := top
	for i := 0; i < len(nodes); i++ {
		n := nodes[i]
		if n.name == "require" {
			if !requireAllowed {
				return nil, errorf(n.pos, "require must come before any other command")
			}
			if err := c.require(n); err != nil {
				return nil, err
			}
			continue
		}
		requireAllowed = false
		if n.name == "if" {
			cmd, next, err := c.ifChain(nodes, i)
			if err != nil {
				return nil, err
			}
			out = append(out, cmd)
			i = next - 1
			continue
		}
		if n.name == "elsif" || n.name == "else" {
			return nil, errorf(n.pos, "%s without if", n.name)
		}
		cmd, err := c.command(n)
		if err != nil {
			return nil, err
		}
		out = append(out, cmd)
	}
	return out, nil
}

func (c *checker) require(n *node) error {
	if err := noBlock(n); err != nil {
		return err
	}
	if err := noTests(n, "require"); err != nil {
		return err
	}
	a, err := c.args(n, "require", nil, paramStrings)
	if err != nil {
		return err
	}
	for _, l := range a.pos[0].strs {
		ext := strings.ToLower(l.val)
		if !extensions[ext] {
			return errorf(l.pos, "unknown extension %q", l.val)
		}
		c.exts[ext] = true
	}
	return nil
}

// ifChain checks if with its elsif and else branches (RFC 5228 §3.1) and
// returns the index after the chain.
func (c *checker) ifChain(nodes []*node, i int) (command, int, error) {
	cmd := &cmdIf{}
	for ; i < len(nodes); i++ {
		n := nodes[i]
		if len(cmd.branches) > 0 && n.name != "elsif" && n.name != "else" {
			break
		}
		if !n.hasBlock {
			return nil, 0, errorf(n.pos, "%s needs a block", n.name)
		}
		if len(n.args) > 0 {
			return nil, 0, errorf(n.args[0].pos, "%s takes no arguments", n.name)
		}
		var t test
		if n.name == "else" {
			if err := noTests(n, "else"); err != nil {
				return nil, 0, err
			}
		} else {
			if len(n.tests) != 1 || n.testList {
				return nil, 0, errorf(n.pos, "%s needs exactly one test", n.name)
			}
			var err error
			if t, err = c.test(n.tests[0]); err != nil {
				return nil, 0, err
			}
		}
		body, err := c.commands(n.block, false)
		if err != nil {
			return nil, 0, err
		}
		cmd.branches = append(cmd.branches, branch{cond: t, body: body})
		if n.name == "else" {
			return cmd, i + 1, nil
		}
	}
	return cmd, i, nil
}

func (c *checker) command(n *node) (command, error) {
	if err := noBlock(n); err != nil {
		return nil, err
	}
	if err := noTests(n, n.name); err != nil {
		return nil, err
	}
	switch n.name {
	case "stop":
		_, err := c.args(n, "stop", nil)
		return cmdStop{}, err
	case "keep":
		return c.keep(n)
	case "discard":
		_, err := c.args(n, "discard", nil)
		return cmdDiscard{pos: n.pos}, err
	case "redirect":
		return c.redirect(n)
	case "fileinto":
		return c.fileinto(n)
	case "reject", "ereject":
		return c.reject(n)
	case "vacation":
		return c.vacation(n)
	case "set":
		return c.set(n)
	case "setflag", "addflag", "removeflag":
		return c.flagCommand(n)
	}
	return nil, errorf(n.pos, "unknown command %s", n.name)
}

var flagsTag = tagSpec{name: "flags", ext: "imap4flags", param: paramStrings}

func (c *checker) optionalFlags(a *parsedArgs) ([]*str, bool, error) {
	v, ok := a.tags["flags"]
	if !ok {
		return nil, false, nil
	}
	flags, err := c.strs(v.arg)
	return flags, true, err
}

func (c *checker) keep(n *node) (command, error) {
	a, err := c.args(n, "keep", []tagSpec{flagsTag})
	if err != nil {
		return nil, err
	}
	cmd := cmdKeep{pos: n.pos}
	cmd.flags, cmd.hasFlags, err = c.optionalFlags(a)
	return cmd, err
}

func (c *checker) fileinto(n *node) (command, error) {
	if err := c.need(n.pos, "fileinto", "fileinto"); err != nil {
		return nil, err
	}
	a, err := c.args(n, "fileinto", []tagSpec{flagsTag, {name: "copy", ext: "copy"}, {name: "create", ext: "mailbox"}}, paramString)
	if err != nil {
		return nil, err
	}
	cmd := cmdFileinto{pos: n.pos, copy: a.has("copy"), create: a.has("create")}
	if cmd.mailbox, err = c.str(a.pos[0].strs[0]); err != nil {
		return nil, err
	}
	if cmd.mailbox.constant() {
		if msg := checkMailbox(cmd.mailbox.text); msg != "" {
			return nil, errorf(a.pos[0].pos, "%s", msg)
		}
	}
	cmd.flags, cmd.hasFlags, err = c.optionalFlags(a)
	return cmd, err
}

func (c *checker) redirect(n *node) (command, error) {
	a, err := c.args(n, "redirect", []tagSpec{{name: "copy", ext: "copy"}}, paramString)
	if err != nil {
		return nil, err
	}
	cmd := cmdRedirect{pos: n.pos, copy: a.has("copy")}
	if cmd.address, err = c.str(a.pos[0].strs[0]); err != nil {
		return nil, err
	}
	if cmd.address.constant() {
		if _, ok := redirectAddress(cmd.address.text); !ok {
			return nil, errorf(a.pos[0].pos, "invalid redirect address %q", cmd.address.text)
		}
	}
	return cmd, nil
}

func (c *checker) reject(n *node) (command, error) {
	if err := c.need(n.pos, n.name, n.name); err != nil {
		return nil, err
	}
	a, err := c.args(n, n.name, nil, paramString)
	if err != nil {
		return nil, err
	}
	cmd := cmdReject{pos: n.pos, extended: n.name == "ereject"}
	cmd.reason, err = c.str(a.pos[0].strs[0])
	return cmd, err
}

func (c *checker) vacation(n *node) (command, error) {
	if err := c.need(n.pos, "vacation", "vacation"); err != nil {
		return nil, err
	}
	a, err := c.args(n, "vacation", []tagSpec{
		{name: "days", param: paramNumber}, {name: "subject", param: paramString},
		{name: "from", param: paramString}, {name: "addresses", param: paramStrings},
		{name: "mime"}, {name: "handle", param: paramString},
	}, paramString)
	if err != nil {
		return nil, err
	}
	cmd := &cmdVacation{pos: n.pos, days: DefaultVacation, mime: a.has("mime")}
	if v, ok := a.tags["days"]; ok {
		cmd.days = int(min(max(v.arg.num, MinVacationDays), MaxVacationDays))
	}
	for _, f := range []struct {
		tag string
		dst **str
	}{{"subject", &cmd.subject}, {"from", &cmd.from}, {"handle", &cmd.handle}} {
		if v, ok := a.tags[f.tag]; ok {
			if *f.dst, err = c.str(v.arg.strs[0]); err != nil {
				return nil, err
			}
		}
	}
	if cmd.from != nil && cmd.from.constant() {
		if _, ok := redirectAddress(cmd.from.text); !ok {
			return nil, errorf(a.tags["from"].arg.pos, "invalid :from address %q", cmd.from.text)
		}
	}
	if v, ok := a.tags["addresses"]; ok {
		if cmd.addresses, err = c.strs(v.arg); err != nil {
			return nil, err
		}
	}
	if cmd.reason, err = c.str(a.pos[0].strs[0]); err != nil {
		return nil, err
	}
	return cmd, nil
}

// set checks "set [MODIFIER]... name value" (RFC 5229 §4): at most one
// modifier of each precedence.
func (c *checker) set(n *node) (command, error) {
	if err := c.need(n.pos, "set", "variables"); err != nil {
		return nil, err
	}
	var tags []tagSpec
	for name, m := range modifierTags {
		tags = append(tags, tagSpec{name: name, group: string(rune('0' + m.precedence/10))})
	}
	a, err := c.args(n, "set", tags, paramString, paramString)
	if err != nil {
		return nil, err
	}
	cmd := cmdSet{}
	var used []string
	for t := range a.tags {
		used = append(used, t)
	}
	sort.Slice(used, func(i, j int) bool { return modifierTags[used[i]].precedence > modifierTags[used[j]].precedence })
	for _, t := range used {
		cmd.modifiers = append(cmd.modifiers, modifierTags[t].mod)
	}
	if cmd.name, err = c.variableName(a.pos[0].strs[0]); err != nil {
		return nil, err
	}
	cmd.value, err = c.str(a.pos[1].strs[0])
	return cmd, err
}

// flagCommand checks setflag, addflag and removeflag (RFC 5232 §3): an
// optional variable name (with the variables extension) and a list of flags.
func (c *checker) flagCommand(n *node) (command, error) {
	if err := c.need(n.pos, n.name, "imap4flags"); err != nil {
		return nil, err
	}
	cmd := cmdFlags{op: n.name}
	var a *parsedArgs
	var err error
	if len(n.args) == 2 {
		if a, err = c.args(n, n.name, nil, paramString, paramStrings); err != nil {
			return nil, err
		}
		if err := c.need(a.pos[0].pos, "a flag variable", "variables"); err != nil {
			return nil, err
		}
		if cmd.variable, err = c.variableName(a.pos[0].strs[0]); err != nil {
			return nil, err
		}
		a.pos = a.pos[1:]
	} else if a, err = c.args(n, n.name, nil, paramStrings); err != nil {
		return nil, err
	}
	cmd.flags, err = c.strs(a.pos[0])
	return cmd, err
}

// checkMailbox returns why a mailbox name is unusable, or "".
func checkMailbox(name string) string {
	if name == "" {
		return "empty mailbox name"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "control character in mailbox name"
		}
	}
	return ""
}

// redirectAddress checks a redirect target, an RFC 5322 addr-spec, and
// returns it without surrounding angle brackets (RFC 5228 §4.2).
func redirectAddress(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>,;()") {
		return "", false
	}
	a := parseAddrSpec(s)
	if !a.valid || strings.Contains(a.domain, "..") || strings.HasPrefix(a.domain, ".") || strings.HasSuffix(a.domain, ".") {
		return "", false
	}
	return s, true
}
