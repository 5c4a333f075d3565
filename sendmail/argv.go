// Package sendmail is postkit's sendmail(1) interface, what cron, mail(1),
// PHP's mail() and other local programs call to send mail: it parses
// sendmail's command line, completes the message header (Date, Message-ID,
// From), takes recipients from the header with -t, and writes the message
// into the spool itself, like Postfix's postdrop, so it works whether or not
// the queue runner is running: run by the spool's owner or root it enqueues
// directly, run by any other user it drops the message into the spool's
// maildrop/, from where the runner imports it (spool.Submit). Messages are
// limited to MaxMessageSize. -bs speaks SMTP on standard input and output.
//
// sendmail's options are single letters, clustered ("-ti") or not, with
// their argument attached ("-fuser") or in the next word ("-f user"); option
// parsing stops at the first non-option or at "--". urfave/cli cannot parse
// that, hence this package's own parser. Options that only tune Sendmail
// itself (-oem, -odb, -v, -n, -U, -G, -m, -L, -O, -B, -C, -h, -X, -A...) are
// accepted and ignored, as Postfix does.
package sendmail

import (
	"errors"
	"fmt"
	"strings"
)

// Mode is what the invocation asks for.
type Mode int

// The modes: -bm (the default), -bp, -bs, -q, -bi.
const (
	ModeDeliver Mode = iota
	ModeList
	ModeSMTP
	ModeFlush
	ModeNewAliases
)

// Invocation is a parsed sendmail command line.
type Invocation struct {
	Mode Mode
	// ReadRecipients is -t: recipients from To, Cc and Bcc.
	ReadRecipients bool
	// IgnoreDots is -i or -oi: a line with a single dot does not end the
	// message.
	IgnoreDots bool
	// From is -f or -r; FromSet tells "-f ''" (the null sender) from none.
	From     string
	FromSet  bool
	FullName string // -F
	Notify   string // -N: NEVER or SUCCESS,FAILURE,DELAY
	Ret      string // -R: FULL or HDRS
	EnvID    string // -V
	// Recipients are the arguments, split at commas.
	Recipients []string
}

// ErrUsage is wrapped by every error of Parse (exit code 64).
var ErrUsage = errors.New("sendmail: usage")

func usage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// withArgument are the options that take an argument.
const withArgument = "fFrNRVBCdhLOXpeo"

// ignoredFlags are options without argument that are accepted and ignored.
const ignoredFlags = "vnUGmsx78"

// Parse parses sendmail's arguments (without the program name).
func Parse(args []string) (*Invocation, error) {
	inv := &Invocation{}
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		for j := 1; j < len(arg); j++ {
			c := arg[j]
			switch {
			case c == 'b':
				if err := inv.mode(arg[j+1:]); err != nil {
					return nil, err
				}
				j = len(arg)
			case c == 'q':
				// -q, -q30m (an interval: a single run here), -qI..., -qR...
				inv.Mode = ModeFlush
				j = len(arg)
			case c == 'A':
				// -Am, -Ac: which configuration file Sendmail reads.
				j = len(arg)
			case c == 't':
				inv.ReadRecipients = true
			case c == 'i':
				inv.IgnoreDots = true
			case strings.IndexByte(ignoredFlags, c) >= 0:
			case strings.IndexByte(withArgument, c) >= 0:
				value := arg[j+1:]
				if value == "" {
					if i+1 >= len(args) {
						return nil, usage("option -%c needs an argument", c)
					}
					i++
					value = args[i]
				}
				if err := inv.option(c, value); err != nil {
					return nil, err
				}
				j = len(arg)
			default:
				return nil, usage("invalid option -- '%c'", c)
			}
		}
	}
	for _, arg := range args[i:] {
		inv.Recipients = append(inv.Recipients, splitList(arg)...)
	}
	if inv.Mode == ModeDeliver && !inv.ReadRecipients && len(inv.Recipients) == 0 {
		return nil, usage("no recipients given (and no -t)")
	}
	return inv, nil
}

// mode handles -bX.
func (inv *Invocation) mode(m string) error {
	switch m {
	case "m", "":
		inv.Mode = ModeDeliver
	case "p":
		inv.Mode = ModeList
	case "s":
		inv.Mode = ModeSMTP
	case "i":
		inv.Mode = ModeNewAliases
	case "d", "D":
		return usage("-b%s: the queue runner is `sendq run`, not sendmail -bd", m)
	default:
		return usage("-b%s is not supported", m)
	}
	return nil
}

// option handles an option with its argument.
func (inv *Invocation) option(c byte, value string) error {
	switch c {
	case 'f', 'r':
		inv.From, inv.FromSet = strings.TrimSpace(value), true
		if inv.From == "<>" {
			inv.From = ""
		}
	case 'F':
		inv.FullName = value
	case 'N':
		n, err := parseNotify(value)
		if err != nil {
			return err
		}
		inv.Notify = n
	case 'R':
		switch strings.ToLower(value) {
		case "full":
			inv.Ret = "FULL"
		case "hdrs":
			inv.Ret = "HDRS"
		default:
			return usage("-R %q: want full or hdrs", value)
		}
	case 'V':
		if value == "" || len(value) > 100 {
			return usage("-V: envelope ID must be 1 to 100 characters")
		}
		for i := 0; i < len(value); i++ {
			if value[i] < '!' || value[i] > '~' {
				return usage("-V: envelope ID must be printable ASCII")
			}
		}
		inv.EnvID = value
	case 'o':
		// -oi is the only Sendmail option that changes what we do.
		if value == "i" {
			inv.IgnoreDots = true
		}
	}
	// B, C, d, h, L, O, X, p, e: Sendmail's own settings, ignored.
	return nil
}

// parseNotify parses -N's value (RFC 3461 §4.1).
func parseNotify(v string) (string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range strings.Split(strings.ToUpper(v), ",") {
		n = strings.TrimSpace(n)
		switch n {
		case "NEVER", "SUCCESS", "FAILURE", "DELAY":
		default:
			return "", usage("-N %q: want never, or success, failure and delay separated by commas", v)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if seen["NEVER"] && len(out) > 1 {
		return "", usage("-N %q: never goes alone", v)
	}
	return strings.Join(out, ","), nil
}

// splitList splits a recipient argument at commas outside quotes and angle
// brackets ("a@x, b@y"), dropping empty items.
func splitList(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '<' && !quoted:
			depth++
		case c == '>' && !quoted && depth > 0:
			depth--
		case c == ',' && !quoted && depth == 0:
			if item := strings.TrimSpace(s[start:i]); item != "" {
				out = append(out, item)
			}
			start = i + 1
		}
	}
	if start <= len(s) {
		if item := strings.TrimSpace(s[start:]); item != "" {
			out = append(out, item)
		}
	}
	return out
}
