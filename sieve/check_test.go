package sieve

import (
	"strings"
	"testing"
)

// TestParseErrors checks that bad scripts are refused with the exact line,
// column and reason.
func TestParseErrors(t *testing.T) {
	deep := strings.Repeat("if true {\n", MaxNesting+1) + strings.Repeat("}\n", MaxNesting+1)
	deepTests := "if " + strings.Repeat("not ", MaxNesting+1) + "true {}"
	tests := []struct {
		name, script, want string
	}{
		{"missing semicolon", "keep", `1:5: expected ";" or "{" after command keep, found end of script`},
		{"missing require", `fileinto "x";`, `1:1: fileinto needs require "fileinto"`},
		{"unknown extension", `require ["fileinto", "foo"];`, `1:22: unknown extension "foo"`},
		{"require after a command", "keep;\nrequire \"fileinto\";", `2:1: require must come before any other command`},
		{"require in a block", "if true {\n  require \"fileinto\";\n}", `2:3: require must come before any other command`},
		{"unknown tag", `if header :foo "a" "b" {}`, `1:11: unknown tag :foo for header`},
		{"conflicting match types", `if header :is :contains "a" "b" {}`, `1:15: tag :contains conflicts with :is`},
		{"duplicate tag", `if header :is :is "a" "b" {}`, `1:15: duplicate tag :is`},
		{"too few arguments", `if header "a" {}`, `1:4: header needs 2 positional argument(s), found 1`},
		{"too many arguments", `stop 1;`, `1:6: too many arguments for stop`},
		{"wrong argument type", `if size :over "1" {}`, `1:15: argument 1 of size must be a number, found a string`},
		{"list where a string is needed", `redirect ["a@example.org"];`, `1:10: argument 1 of redirect must be a string, found a string list`},
		{"size without over or under", `if size 100 {}`, `1:4: size needs :over or :under`},
		{"tag after positional", `if header "a" "b" :is {}`, `1:19: tag :is after the positional arguments of header`},
		{"bad redirect address", `redirect "not an address";`, `1:10: invalid redirect address "not an address"`},
		{"elsif without if", "keep;\nelsif true {}", `2:1: elsif without if`},
		{"else after else", `if true { keep; } else { keep; } else {}`, `1:34: else without if`},
		{"if without block", `if true;`, `1:1: if needs a block`},
		{"block on an action", `keep {}`, `1:1: keep takes no block; end it with ";"`},
		{"unterminated string", `keep "abc`, `1:6: unterminated string`},
		{"unterminated comment", "keep; /* never\nends", `1:7: unterminated comment`},
		{"unterminated multi-line", "require \"reject\";\nreject text:\nno dot", `2:8: unterminated multi-line string`},
		{"text: with junk", "require \"reject\";\nreject text: x\n.\n;", `2:14: expected a line end after text:`},
		{"unexpected character", `keep; @`, `1:7: unexpected character '@'`},
		{"bad tag", `if header : "a" {}`, `1:11: expected a tag name after ':'`},
		{"number too large", `if size :over 99999999999999999999 {}`, `1:15: number too large (limit 9223372036854775807)`},
		{"quantifier overflow", `if size :over 9999999999G {}`, `1:15: number too large (limit 9223372036854775807)`},
		{"junk after number", `if size :over 10X {}`, `1:17: unexpected character 'X' after number`},
		{"unknown command", `foo;`, `1:1: unknown command foo`},
		{"unknown test", `if foo {}`, `1:4: unknown test foo`},
		{"test with a test", `if true keep {}`, `1:9: true takes no test`},
		{"not without test", `if not {}`, `1:4: not needs exactly one test`},
		{"anyof without list", `if anyof true {}`, `1:4: anyof needs a test list in parentheses`},
		{"empty string list", `if header [] "a" {}`, `1:12: expected a string in the string list, found "]"`},
		{"test list without comma", `if anyof (true false) {}`, `1:16: true takes no test`},
		{"unclosed test list", `if anyof (true, false {}`, `1:23: expected "," or ")" in the test list, found "{"`},
		{"invalid header name", `if header :is "a:b" "x" {}`, `1:15: invalid header name "a:b"`},
		{"invalid header name in exists", `if exists ["ok", ""] {}`, `1:18: invalid header name ""`},
		{"copy not required", "require \"fileinto\";\nfileinto :copy \"x\";", `2:10: :copy needs require "copy"`},
		{"copy on keep", `keep :copy;`, `1:6: unknown tag :copy for keep`},
		{"flags not required", `keep :flags "\\Seen";`, `1:6: :flags needs require "imap4flags"`},
		{"empty mailbox", "require \"fileinto\";\nfileinto \"\";", `2:10: empty mailbox name`},
		{"numeric comparator not required", `if header :comparator "i;ascii-numeric" "a" "b" {}`,
			`1:23: comparator i;ascii-numeric needs require "comparator-i;ascii-numeric"`},
		{"unknown comparator", `if header :comparator "i;foo" "a" "b" {}`, `1:23: unknown comparator "i;foo"`},
		{"numeric contains", "require \"comparator-i;ascii-numeric\";\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"b\" {}",
			`2:11: comparator i;ascii-numeric cannot do :contains`},
		{"relational not required", `if header :value "gt" "a" "b" {}`, `1:11: :value needs require "relational"`},
		{"unknown relational operator", "require \"relational\";\nif header :value \"egt\" \"a\" \"b\" {}",
			`2:18: unknown relational operator "egt" (want gt, ge, lt, le, eq or ne)`},
		{"count without operator", "require \"relational\";\nif header :count \"a\" {}", `2:4: header needs 2 positional argument(s), found 0`},
		{"envelope part", "require \"envelope\";\nif envelope \"auth\" \"x\" {}", `2:13: unknown envelope part "auth" (want "from" or "to")`},
		{"subaddress not required", "if address :detail \"to\" \"x\" {}", `1:12: :detail needs require "subaddress"`},
		{"address part conflict", "if address :all :domain \"to\" \"x\" {}", `1:17: tag :domain conflicts with :all`},
		{"set without variables", `set "a" "b";`, `1:1: set needs require "variables"`},
		{"set match variable", "require \"variables\";\nset \"1\" \"x\";", `2:5: invalid variable name "1"`},
		{"set namespace", "require \"variables\";\nset \"env.x\" \"x\";", `2:5: unknown variable namespace in "env.x"`},
		{"reference to a namespace", "require [\"variables\", \"fileinto\"];\nfileinto \"${env.x}\";",
			`2:10: unknown variable namespace in ${env.x}`},
		{"set modifiers conflict", "require \"variables\";\nset :lower :upper \"a\" \"b\";", `2:12: tag :upper conflicts with :lower`},
		{"string test without variables", `if string "a" "b" {}`, `1:4: string needs require "variables"`},
		{"flag variable without variables", "require \"imap4flags\";\nsetflag \"v\" \"\\\\Seen\";",
			`2:9: a flag variable needs require "variables"`},
		{"bad flag variable", "require [\"imap4flags\", \"variables\"];\naddflag \"a b\" \"x\";", `2:9: invalid variable name "a b"`},
		{"hasflag too many", "require \"imap4flags\";\nif hasflag \"a\" \"b\" \"c\" {}", `2:16: too many arguments for hasflag`},
		{"date part", "require \"date\";\nif date \"date\" \"bogus\" \"x\" {}", `2:16: unknown date part "bogus"`},
		{"time zone", "require \"date\";\nif currentdate :zone \"0100\" \"hour\" \"1\" {}", `2:22: invalid time zone "0100" (want +hhmm or -hhmm)`},
		{"originalzone on currentdate", "require \"date\";\nif currentdate :originalzone \"hour\" \"1\" {}",
			`2:16: unknown tag :originalzone for currentdate`},
		{"last without index", "require \"index\";\nif header :last \"a\" \"b\" {}", `2:11: :last needs :index`},
		{"index not required", `if header :index 1 "a" "b" {}`, `1:11: :index needs require "index"`},
		{"index zero", "require \"index\";\nif header :index 0 \"a\" \"b\" {}", `2:18: :index must be between 1 and 1048576`},
		{"body count", "require [\"body\", \"relational\"];\nif body :count \"eq\" \"1\" {}", `2:9: body cannot do :count`},
		{"vacation days type", "require \"vacation\";\nvacation :days \"x\" \"r\";", `2:10: tag :days needs a number`},
		{"vacation from", "require \"vacation\";\nvacation :from \"nobody\" \"r\";", `2:16: invalid :from address "nobody"`},
		{"reject not required", `reject "no";`, `1:1: reject needs require "reject"`},
		{"ereject not required by reject", "require \"reject\";\nereject \"no\";", `2:1: ereject needs require "ereject"`},
		{"mailboxexists not required", `if mailboxexists "a" {}`, `1:4: mailboxexists needs require "mailbox"`},
		{"create not required", "require \"fileinto\";\nfileinto :create \"a\";", `2:10: :create needs require "mailbox"`},
		{"bad code point", "require [\"encoded-character\", \"fileinto\"];\nfileinto \"${unicode:D800}\";",
			`2:10: encoded character is not a Unicode scalar value: ${unicode:D800}`},
		{"code point too large", "require [\"encoded-character\", \"fileinto\"];\nfileinto \"${unicode:110000}\";",
			`2:10: encoded character is not a Unicode scalar value: ${unicode:110000}`},
		{"invalid UTF-8", "require \"fileinto\";\nfileinto \"\xff\";", `2:10: string is not valid UTF-8`},
		{"columns count characters", "# ü\n\tfileinto \"x\";", `2:2: fileinto needs require "fileinto"`},
		{"columns after UTF-8", `if header "ü" "x" "y" {}`, `1:19: too many arguments for header`},
		{"nesting of blocks", deep, `33:4: nesting too deep (limit 32)`},
		{"nesting of tests", deepTests, `1:132: nesting too deep (limit 32)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.script))
			want := "sieve: " + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("Parse(%q) = %v, want %s", tt.script, err, want)
			}
		})
	}
}

// TestParseValid checks scripts that must be accepted.
func TestParseValid(t *testing.T) {
	tests := []struct{ name, script string }{
		{"empty", ""},
		{"only comments", "# nothing\n/* at all */"},
		{"case-insensitive identifiers", `IF NOT Address :DOMAIN :Is ["From"] "example.com" { KEEP; }`},
		{"crlf", "if size :over 100K {\r\n  discard;\r\n}\r\n"},
		{"comment in text: line", "require \"reject\";\nreject text: # why\nno\n.\n;"},
		{"text: with CRLF", "require \"reject\";\r\nreject text:\r\nno\r\n.\r\n;"},
		{"empty block", "if true {}"},
		{"nested tests", "if allof(anyof(true, not false), not anyof(false)) { stop; }"},
		{"escapes", `if header :is "Subject" "a\"b\\c\d" { keep; }`},
		{"multiple requires", "require \"fileinto\";\nrequire [\"copy\", \"Mailbox\"];\nfileinto :copy :create \"x\";"},
		{"implicit comparator require", "require [\"comparator-i;octet\"];\nif header :comparator \"i;octet\" \"a\" \"b\" {}"},
		{"variables in header names", "require \"variables\";\nset \"h\" \"Subject\";\nif header :is \"${h}\" \"x\" {}"},
		{"quantifiers", "if anyof(size :over 1k, size :under 2m, size :over 1g) {}"},
		{"hasflag with tags", "require [\"imap4flags\", \"variables\", \"relational\"];\nif hasflag :count \"ge\" :comparator \"i;ascii-casemap\" \"v\" \"2\" {}"},
		{"tags in any order", "require [\"relational\", \"comparator-i;ascii-numeric\"];\nif header :comparator \"i;ascii-numeric\" :value \"gt\" \"x\" \"1\" {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.script)); err != nil {
				t.Errorf("Parse(%q) = %v, want no error", tt.script, err)
			}
		})
	}
}

func TestExtensions(t *testing.T) {
	for _, ext := range Extensions() {
		s, err := Parse([]byte("require \"" + ext + "\";"))
		if err != nil || !s.Requires(ext) {
			t.Errorf("require %q: %v", ext, err)
		}
	}
	if len(Extensions()) != len(extensions)-2 { // i;octet and i;ascii-casemap are implicit
		t.Errorf("Extensions() lists %d, the checker knows %d", len(Extensions()), len(extensions))
	}
}
