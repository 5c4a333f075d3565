package address

import "strings"

// barePostmaster is RFC 5321's "<Postmaster>" path, in lower case.
const barePostmaster = "<postmaster>"

// IsBarePostmaster reports whether path, a Forward-path as it appears on
// the RCPT line, is RFC 5321's "<Postmaster>": the local part in any case and
// no domain. RFC 5321 §4.1.1.3 and §4.5.1 require every SMTP receiver to
// accept it as the postmaster of the receiving host, although it is no
// Mailbox (ParsePath refuses it).
func IsBarePostmaster(path string) bool { return strings.EqualFold(path, barePostmaster) }

// QualifyPostmasterRCPT returns the command line to run in place of an RCPT
// command whose path is the bare "<Postmaster>": "RCPT TO:<postmaster@" domain
// ">", then whatever followed the path in arg (its parameters), then CRLF.
// verb and arg are the command's verb and argument ("TO:" [blanks] path
// [SP parameters]). ok is false, and the command is to be run as it is, for
// any other command or path, or when domain is no valid domain.
//
// SMTP servers built on a parser that wants a domain in every path (such as
// go-smtp's, which answers 501) hand it the rewritten line, so that RFC 5321
// §4.1.1.3 holds without a parser of their own.
func QualifyPostmasterRCPT(verb, arg, domain string) (line string, ok bool) {
	const prefix = "TO:"
	if !strings.EqualFold(verb, "RCPT") || len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	// RFC 5321 §4.1.1.3 has no blank after the colon; like most servers we
	// let blanks through.
	path := strings.TrimLeft(arg[len(prefix):], " \t")
	// The path ends at its first '>': "<Postmaster>" holds no quoted string
	// whose '>' would not count.
	if len(path) < len(barePostmaster) || !IsBarePostmaster(path[:len(barePostmaster)]) {
		return "", false
	}
	d, err := ParseDomain(domain)
	if err != nil {
		return "", false
	}
	return "RCPT TO:<postmaster@" + d + ">" + path[len(barePostmaster):] + "\r\n", true
}
