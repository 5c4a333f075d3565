// Package sieve is postkit's Sieve interpreter: it parses and checks a user's
// mail filter script (RFC 5228 and the extensions listed below) and runs it
// on one message, returning the actions the caller (deliver) performs.
//
// Parse refuses a script that does not parse, names an unknown command, test,
// tag or extension, uses an extension it did not require, or gives a command
// arguments of the wrong number or type; the *Error says at which line and
// column. A checked Script runs any number of times, also concurrently:
//
//	script, err := sieve.Parse(src)
//	msg, err := sieve.NewMessage(file, size)
//	res, err := script.Run(msg, sieve.Envelope{From: sender, To: rcpt}, env)
//	for _, a := range res.Actions { ... }
//
// store.go knows where a user's scripts live (Pigeonhole's layout, with the
// user's Maildir as home): HOME/sieve/NAME.sieve, and the symbolic link
// HOME/.dovecot.sieve -> sieve/NAME.sieve to the active one. LoadActive reads
// and checks the active script for deliver; SaveScript, Activate,
// DeleteScript and ListScripts manage them.
//
// The result always holds at least one action that keeps, stores, forwards or
// rejects the message, unless the script said discard. A runtime error (too
// many actions, conflicting actions, a failing Environment) returns the error
// and exactly one action, the implicit keep, so the message lands in INBOX as
// RFC 5228 §2.10.6 asks.
//
// Extensions: fileinto, envelope, encoded-character (RFC 5228), copy
// (RFC 3894), body (RFC 5173), variables (RFC 5229), vacation (RFC 5230),
// relational (RFC 5231), imap4flags (RFC 5232), subaddress (RFC 5233), reject
// and ereject (RFC 5429), date and index (RFC 5260), mailbox (RFC 5490), and
// the comparators i;octet, i;ascii-casemap and i;ascii-numeric.
//
// Limits (see also man/postkit-sieve.5): scripts of at most MaxScriptSize
// bytes and MaxNesting levels of nested blocks and tests; at most MaxActions actions
// and MaxRedirects redirects per run; at most MaxVariables variables of at
// most MaxVariableSize bytes each. The :matches matcher needs time
// proportional to the product of pattern and text length and no
// backtracking stack, and gives up (a runtime error) after MaxMatchSteps
// steps in one run; the body test reads at most MaxBodyText bytes of
// decoded text.
package sieve

// Limits on scripts and on one run.
const (
	MaxScriptSize    = 1 << 20 // bytes of script text
	MaxNesting       = 32      // nested blocks and tests together
	MaxActions       = 32      // actions of one run, after duplicates are merged
	MaxRedirects     = 4       // redirect actions of one run
	MaxVariables     = 256     // distinct variables set by one run
	MaxVariableSize  = 4096    // bytes of one variable's value; longer values are cut
	MaxMatchVariable = 9       // highest match variable ${N} kept from :matches
	MaxBodyText      = 4 << 20 // bytes of decoded body text the body test reads
	MaxMatchSteps    = 1 << 26 // steps of the :matches matcher in one run
	MinVacationDays  = 1       // :days below this count as this
	MaxVacationDays  = 90      // :days above this count as this
	DefaultVacation  = 7       // :days when the script does not say

	maxNumber = 1<<63 - 1
)
