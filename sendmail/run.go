package sendmail

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/postkit/postkit/sysexits"
)

// Commands are the queue commands that sendmail's -bp and -q run (sendq's
// list and flush).
type Commands struct {
	List  func(w io.Writer) error
	Flush func() error
}

// Run carries out a sendmail command line (args without the program name)
// and returns the exit code (sysexits). Nothing is written on success:
// cron mails whatever its jobs print, so a chatty sendmail would make mail
// about mail. Errors go to stderr.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, env Env, cmds Commands) int {
	inv, err := Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return sysexits.Usage
	}
	switch inv.Mode {
	case ModeList:
		err = cmds.List(stdout)
	case ModeFlush:
		err = cmds.Flush()
	case ModeNewAliases:
		// etc/aliases is read as it is: there is no database to rebuild.
	case ModeSMTP:
		err = ServeSMTP(stdin, stdout, env)
	default:
		_, err = Send(inv, stdin, env)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if (inv.Mode == ModeList || inv.Mode == ModeFlush) && errors.Is(err, fs.ErrPermission) {
			// mailq or -q by a user who may not use the queue: not a
			// temporary failure, trying again will not help.
			return sysexits.NoPerm
		}
		return Code(err)
	}
	return sysexits.OK
}
