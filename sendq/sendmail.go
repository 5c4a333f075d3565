package sendq

import (
	"io"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sendmail"
	"github.com/postkit/postkit/spool"
)

// SendmailCommands returns what sendmail -bp (List) and -q (Flush) run on
// root's spool.
func SendmailCommands(root control.Root) sendmail.Commands {
	open := func() (*spool.Spool, error) { return spool.Open(root.SpoolDir()) }
	return sendmail.Commands{
		List: func(w io.Writer) error {
			sp, err := open()
			if err != nil {
				return err
			}
			return ExplainPermission(List(w, sp))
		},
		Flush: func() error {
			sp, err := open()
			if err != nil {
				return err
			}
			_, err = Flush(sp, "")
			return ExplainPermission(err)
		},
	}
}
