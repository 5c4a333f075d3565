package pop3

import (
	"errors"
	"strings"
)

// MaxCommandLine is the longest command line accepted, CRLF included
// (RFC 2449 §4 raises RFC 1939's 47 octets to 255).
const MaxCommandLine = 255

// maxAuthLine bounds a SASL client response sent on its own line after "+ ".
// RFC 5034 §4 lets responses exceed the 255-octet command limit; a PLAIN
// response with a 254-octet address and a long password fits easily.
const maxAuthLine = 4096

// A Command is one parsed command line.
type Command struct {
	// Name is the keyword in upper case ("RETR").
	Name string
	// Args are the space-separated arguments.
	Args []string
	// Rest is everything after the keyword and its single space, unsplit:
	// RFC 1939 §7 lets PASS treat spaces as part of the password.
	Rest string
}

var (
	errEmptyCommand = errors.New("pop3: empty command")
	errBadKeyword   = errors.New("pop3: malformed command keyword")
	errBadArgument  = errors.New("pop3: control character in command")
)

// ParseCommand parses one command line, with or without its line ending.
// Keywords are case-insensitive, 3 or 4 letters (RFC 1939 §3); arguments may
// be any printable octets, including 8-bit ones (passwords), but no control
// characters.
func ParseCommand(line string) (Command, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return Command{}, errEmptyCommand
	}
	name, rest, _ := strings.Cut(line, " ")
	if len(name) < 3 || len(name) > 4 {
		return Command{}, errBadKeyword
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return Command{}, errBadKeyword
		}
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < 0x20 || c == 0x7f {
			return Command{}, errBadArgument
		}
	}
	cmd := Command{Name: strings.ToUpper(name), Rest: rest}
	if args := strings.Fields(rest); len(args) > 0 {
		cmd.Args = args
	}
	return cmd, nil
}

// parseMsgNumber parses a message number argument: decimal digits only (no
// sign), 1 to count.
func parseMsgNumber(s string, count int) (int, bool) {
	n, ok := parseDecimal(s)
	if !ok || n < 1 || n > int64(count) {
		return 0, false
	}
	return int(n), true
}

// parseDecimal parses a non-negative decimal number of digits only,
// saturating at 1<<62 so that "TOP 1 99999999999999999999" means "all lines".
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<62/10 {
			n = n*10 + int64(c-'0')
		} else {
			n = 1 << 62
		}
	}
	return n, true
}
