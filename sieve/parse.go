package sieve

// The parser turns tokens into a syntax tree following the grammar of
// RFC 5228 §8.2; it knows no command names. The checker (check.go) gives the
// tree its meaning.

type argKind int

const (
	argStrings argKind = iota // a string or a string list
	argNumber
	argTag
)

type strLit struct {
	pos Pos
	val string
}

type argument struct {
	pos  Pos
	kind argKind
	tag  string   // argTag: name without ':', lower case
	num  uint64   // argNumber
	strs []strLit // argStrings
	list bool     // argStrings written as [ ... ]
}

type node struct {
	pos      Pos
	name     string // lower case
	args     []argument
	tests    []*node // the test or test list after the arguments
	testList bool    // tests were written as ( ... )
	block    []*node
	hasBlock bool
}

type parser struct {
	lex   *lexer
	tok   token
	depth int
}

// parse parses a whole script into its top-level commands.
func parse(src string) ([]*node, error) {
	if len(src) > MaxScriptSize {
		return nil, errorf(Pos{1, 1}, "script too large (%d bytes, limit %d)", len(src), MaxScriptSize)
	}
	p := &parser{lex: newLexer(src)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	cmds, err := p.commands()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, errorf(p.tok.pos, "unexpected %s", p.tok.describe())
	}
	return cmds, nil
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) expect(k tokenKind) error {
	if p.tok.kind != k {
		return errorf(p.tok.pos, "expected %s, found %s", k, p.tok.describe())
	}
	return p.advance()
}

func (p *parser) enter(pos Pos) error {
	p.depth++
	if p.depth > MaxNesting {
		return errorf(pos, "nesting too deep (limit %d)", MaxNesting)
	}
	return nil
}

// commands = *command
func (p *parser) commands() ([]*node, error) {
	var cmds []*node
	for p.tok.kind == tokIdent {
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// command = identifier arguments (";" / block)
func (p *parser) command() (*node, error) {
	n := &node{pos: p.tok.pos, name: p.tok.text}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.arguments(n); err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tokSemicolon:
		return n, p.advance()
	case tokLBrace:
		if err := p.enter(p.tok.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		block, err := p.commands()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tokRBrace); err != nil {
			return nil, err
		}
		p.depth--
		n.block, n.hasBlock = block, true
		return n, nil
	}
	return nil, errorf(p.tok.pos, "expected \";\" or \"{\" after command %s, found %s", n.name, p.tok.describe())
}

// arguments = *argument [ test / test-list ]
func (p *parser) arguments(n *node) error {
	for {
		switch p.tok.kind {
		case tokTag:
			n.args = append(n.args, argument{pos: p.tok.pos, kind: argTag, tag: p.tok.text})
			if err := p.advance(); err != nil {
				return err
			}
		case tokNumber:
			n.args = append(n.args, argument{pos: p.tok.pos, kind: argNumber, num: p.tok.num})
			if err := p.advance(); err != nil {
				return err
			}
		case tokString:
			n.args = append(n.args, argument{pos: p.tok.pos, kind: argStrings, strs: []strLit{{p.tok.pos, p.tok.text}}})
			if err := p.advance(); err != nil {
				return err
			}
		case tokLBracket:
			a, err := p.stringList()
			if err != nil {
				return err
			}
			n.args = append(n.args, a)
		case tokIdent:
			t, err := p.test()
			if err != nil {
				return err
			}
			n.tests = []*node{t}
			return nil
		case tokLParen:
			return p.testList(n)
		default:
			return nil
		}
	}
}

// string-list = "[" string *("," string) "]"
func (p *parser) stringList() (argument, error) {
	a := argument{pos: p.tok.pos, kind: argStrings, list: true}
	if err := p.advance(); err != nil {
		return a, err
	}
	for {
		if p.tok.kind != tokString {
			return a, errorf(p.tok.pos, "expected a string in the string list, found %s", p.tok.describe())
		}
		a.strs = append(a.strs, strLit{p.tok.pos, p.tok.text})
		if err := p.advance(); err != nil {
			return a, err
		}
		switch p.tok.kind {
		case tokComma:
			if err := p.advance(); err != nil {
				return a, err
			}
		case tokRBracket:
			return a, p.advance()
		default:
			return a, errorf(p.tok.pos, "expected \",\" or \"]\" in the string list, found %s", p.tok.describe())
		}
	}
}

// test = identifier arguments
func (p *parser) test() (*node, error) {
	if p.tok.kind != tokIdent {
		return nil, errorf(p.tok.pos, "expected a test, found %s", p.tok.describe())
	}
	if err := p.enter(p.tok.pos); err != nil {
		return nil, err
	}
	n := &node{pos: p.tok.pos, name: p.tok.text}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.arguments(n); err != nil {
		return nil, err
	}
	p.depth--
	return n, nil
}

// test-list = "(" test *("," test) ")"
func (p *parser) testList(n *node) error {
	if err := p.enter(p.tok.pos); err != nil {
		return err
	}
	n.testList = true
	if err := p.advance(); err != nil {
		return err
	}
	for {
		t, err := p.test()
		if err != nil {
			return err
		}
		n.tests = append(n.tests, t)
		switch p.tok.kind {
		case tokComma:
			if err := p.advance(); err != nil {
				return err
			}
		case tokRParen:
			p.depth--
			return p.advance()
		default:
			return errorf(p.tok.pos, "expected \",\" or \")\" in the test list, found %s", p.tok.describe())
		}
	}
}
