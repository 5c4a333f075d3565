package smtpd

import "strings"

// Command line limits, counted in octets with the line ending.
const (
	// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets.
	maxCommandLine = 512
	// MAIL may be longer by what its parameters need: SIZE 26 (RFC 1870
	// §3), RET and ENVID 100 (RFC 3461 §4), AUTH= 500 (RFC 4954 §5), and
	// 64 for BODY=8BITMIME, SMTPUTF8 and REQUIRETLS, whose RFCs name no
	// figure.
	maxMailLine = maxCommandLine + 26 + 100 + 500 + 64
	// RCPT may carry NOTIFY and ORCPT: 500 more (RFC 3461 §4).
	maxRcptLine = maxCommandLine + 500
	// AUTH with an initial response, and each answer to a 334 challenge,
	// may be 12288 octets (RFC 4954 §4).
	maxAuthLine = 12288
	// maxLine is the longest line the connection reads into memory; the
	// rest of a longer one is read and thrown away.
	maxLine = maxAuthLine
)

// knownVerbs are the commands go-smtp answers itself. Any other verb is
// answered 500 before it reaches go-smtp (see conn), so that go-smtp's own
// error counter (three errors, then a 500 and a hang-up) never runs.
var knownVerbs = map[string]bool{
	"HELO": true, "EHLO": true, "LHLO": true, "MAIL": true, "RCPT": true, "DATA": true,
	"BDAT": true, "RSET": true, "NOOP": true, "QUIT": true, "VRFY": true, "AUTH": true,
	"SEND": true, "SOML": true, "SAML": true, "EXPN": true, "HELP": true, "TURN": true,
}

// commandKind classifies a command line the way go-smtp's parser reads it.
type commandKind int

const (
	cmdOK        commandKind = iota // verb is one go-smtp knows: hand the line on
	cmdEmpty                        // an empty line
	cmdMalformed                    // no four-letter verb followed by a space
	cmdUnknown                      // a verb go-smtp does not know
	cmdStartTLS                     // starts with STARTTLS: the connection handles it
)

// trimLine removes the line ending the way go-smtp sees a line: net/textproto
// strips "\n" or "\r\n", then go-smtp strips any further trailing CR and LF.
func trimLine(line string) string {
	return strings.TrimRight(strings.TrimSuffix(line, "\n"), "\r\n")
}

// parseCommand splits a command line (without its line ending) into its
// upper-cased verb and argument exactly as go-smtp v0.25.1's parseCmd does,
// so that the connection knows which command go-smtp will run: a line
// starting with STARTTLS in any case; a four-octet verb alone; or a verb, a
// space and the argument.
func parseCommand(text string) (kind commandKind, verb, arg string) {
	switch l := len(text); {
	case strings.HasPrefix(strings.ToUpper(text), "STARTTLS"):
		return cmdStartTLS, "STARTTLS", strings.TrimSpace(text[len("STARTTLS"):])
	case l == 0:
		return cmdEmpty, "", ""
	case l < 4, l == 5:
		return cmdMalformed, "", ""
	case l == 4:
		verb = strings.ToUpper(text)
	default:
		if text[4] != ' ' {
			return cmdMalformed, "", ""
		}
		verb, arg = strings.ToUpper(text[:4]), strings.TrimSpace(text[5:])
	}
	if !knownVerbs[verb] {
		return cmdUnknown, verb, arg
	}
	return cmdOK, verb, arg
}

// lineLimit is the longest line, with its ending, allowed for verb.
func lineLimit(verb string) int {
	switch verb {
	case "MAIL":
		return maxMailLine
	case "RCPT":
		return maxRcptLine
	case "AUTH":
		return maxAuthLine
	}
	return maxCommandLine
}

// pathArg returns the path of a MAIL FROM or RCPT TO command as the client
// wrote it: after the prefix ("FROM:" or "TO:", any case) and optional
// spaces, the text from '<' to the '>' that closes it (a '>' inside a quoted
// local part does not), or without angle brackets the text up to the first
// space outside quotes. go-smtp hands the session a path with its quoting
// removed and its source route dropped, which cannot tell "a@b"@c from
// a@b@c; package address must see the original.
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	s := strings.TrimLeft(arg[len(prefix):], " \t")
	bracket := strings.HasPrefix(s, "<")
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && bracket && !quoted:
			return s[:i+1], true
		case (c == ' ' || c == '\t') && !bracket && !quoted:
			return s[:i], s[:i] != ""
		}
	}
	if bracket || quoted {
		return "", false
	}
	return s, s != ""
}
