// Package smtpcmd reads the arguments of SMTP commands where more than one
// program must agree on them. smtpd and sendmail -bs both put a stream
// wrapper in front of go-smtp and must know, before go-smtp reads the next
// byte, whether a BDAT command is followed by a chunk and how long it is
// (RFC 3030 §2: "bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF",
// chunk-size ::= 1*DIGIT, end-marker ::= "LAST"). A wrapper that disagrees
// with go-smtp reads chunk octets as commands, or commands as chunk octets.
//
// The package is small and imports only the standard library, so that
// sendmail, which is linked into small programs, can use it without smtpd.
package smtpcmd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxChunkSize is the largest BDAT chunk size ParseBDAT accepts. RFC 3030
// §2 sets no bound; go-smtp v0.25.1 answers 501, and reads no chunk, for a
// size that does not fit 32 bits.
const MaxChunkSize = 1<<32 - 1

// ErrSyntax is wrapped by every error of ParseBDAT.
var ErrSyntax = errors.New("smtpcmd: syntax error")

// ParseBDAT parses the argument of a BDAT command (the text after "BDAT "),
// accepting exactly what go-smtp v0.25.1's handleBdat accepts, so that a
// wrapper in front of go-smtp knows that go-smtp reads (or, refusing the
// command for another reason, skips) exactly size octets after the command
// line, and none after one whose argument it refuses.
//
// The chunk size is 1*DIGIT (RFC 3030 §2): no sign, leading zeros allowed,
// at most MaxChunkSize. "LAST" may follow in any case (RFC 5321 §2.4:
// keywords are case-insensitive). RFC 5321 §4.1.1 separates them by one
// SP; like go-smtp, ParseBDAT takes any run of white space (strings.Fields)
// before, between and after them, since taking less than go-smtp would
// leave the wrapper and go-smtp disagreeing on where the chunk is.
func ParseBDAT(arg string) (size int64, last bool, err error) {
	f := strings.Fields(arg)
	switch {
	case len(f) == 0:
		return 0, false, fmt.Errorf("%w: BDAT without a chunk size", ErrSyntax)
	case len(f) > 2:
		return 0, false, fmt.Errorf("%w: BDAT with more than a chunk size and LAST", ErrSyntax)
	case len(f) == 2 && !strings.EqualFold(f[1], "LAST"):
		return 0, false, fmt.Errorf("%w: BDAT argument %.40q is not LAST", ErrSyntax, f[1])
	}
	// ParseUint in base 10 takes digits only: no sign, no "0x", no '_'.
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("%w: BDAT chunk size %.40q is not a number up to %d", ErrSyntax, f[0], uint64(MaxChunkSize))
	}
	return int64(n), len(f) == 2, nil
}
