// Command sendq runs postkit's mail queue (`sendq run`), lets the operator
// inspect and steer it (list, stats, show, flush, rm, hold, release) and is
// postkit's sendmail(1) and mailq(1) when called by those names. See
// sendq(8).
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/queue"
	"github.com/postkit/postkit/queuestats"
	"github.com/postkit/postkit/sendmail"
	"github.com/postkit/postkit/sendq"
	"github.com/postkit/postkit/spool"
	"github.com/postkit/postkit/sysexits"
)

func main() {
	unix.Umask(0o077)
	log.SetFlags(0)
	switch filepath.Base(os.Args[0]) {
	case "sendmail", "newaliases":
		log.SetPrefix("sendmail: ")
		root := control.Root(os.Getenv("POSTKIT_ROOT"))
		if root == "" {
			root = control.DefaultRoot
		}
		args := os.Args[1:]
		if filepath.Base(os.Args[0]) == "newaliases" {
			args = []string{"-bi"}
		}
		os.Exit(runSendmail(root, os.Getenv("POSTKIT_HOSTNAME"), args))
	case "mailq":
		os.Args = append([]string{"sendq", "list"}, os.Args[1:]...)
	}
	log.SetPrefix("sendq: ")
	id := func(c *cli.Context) string { return c.Args().First() }
	withSpool := func(f func(c *cli.Context, sp *spool.Spool) error) cli.ActionFunc {
		return func(c *cli.Context) error {
			sp, err := spool.Open(control.FromContext(c).SpoolDir())
			if err != nil {
				return err
			}
			return sendq.ExplainPermission(f(c, sp))
		}
	}
	// nargs checks the number of arguments before f opens anything, so that
	// a wrong one is a usage error whatever the state of the root.
	nargs := func(min, max int, f cli.ActionFunc) cli.ActionFunc {
		return func(c *cli.Context) error {
			if c.NArg() < min || c.NArg() > max {
				return fmt.Errorf("%w: sendq %s", errUsage, strings.TrimSpace(c.Command.Name+" "+c.Command.ArgsUsage))
			}
			return f(c)
		}
	}
	needID := func(f func(sp *spool.Spool, id string) error) cli.ActionFunc {
		return nargs(1, 1, withSpool(func(c *cli.Context, sp *spool.Spool) error { return f(sp, id(c)) }))
	}
	app := &cli.App{
		Name:            "sendq",
		Usage:           "postkit's queue runner, queue commands and sendmail interface",
		Flags:           []cli.Flag{control.RootFlag(), control.HostnameFlag()},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main reports errors and picks the exit code
		OnUsageError:    usageError,
		Action: func(c *cli.Context) error { // no command matched
			if c.NArg() == 0 {
				cli.ShowAppHelp(c)
				return fmt.Errorf("%w: no command given", errUsage)
			}
			return fmt.Errorf("%w: unknown command %q; see sendq --help", errUsage, c.Args().First())
		},
		Commands: []*cli.Command{
			{Name: "run", Usage: "run the queue until SIGTERM or SIGINT", Action: nargs(0, 0, run),
				Flags: []cli.Flag{&cli.StringFlag{Name: "dns", Usage: "DNS resolver ADDR[:PORT] (default: etc/dns, else /etc/resolv.conf)"}}},
			{Name: "list", Usage: "list the queue (mailq)", Action: nargs(0, 0, withSpool(func(c *cli.Context, sp *spool.Spool) error { return sendq.List(os.Stdout, sp) }))},
			{Name: "stats", Usage: "count the queue by state and destination, and the last hour's deliveries and failures",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "write one JSON object"}}, Action: nargs(0, 0, withSpool(func(c *cli.Context, sp *spool.Spool) error { return sendq.WriteStats(os.Stdout, sp, c.Bool("json")) }))},
			{Name: "show", Usage: "show an entry's envelope and message", ArgsUsage: "ID",
				Action: needID(func(sp *spool.Spool, id string) error { return sendq.Show(os.Stdout, sp, id) })},
			{Name: "flush", Usage: "retry an entry, or every entry, now", ArgsUsage: "[ID]",
				Action: nargs(0, 1, withSpool(func(c *cli.Context, sp *spool.Spool) error { _, err := sendq.Flush(sp, id(c)); return err }))},
			{Name: "rm", Usage: "remove an entry without delivering it", ArgsUsage: "ID", Action: needID(sendq.Remove)},
			{Name: "hold", Usage: "keep the runner away from an entry", ArgsUsage: "ID",
				Action: needID(func(sp *spool.Spool, id string) error { return sendq.Hold(sp, id, true) })},
			{Name: "release", Usage: "undo hold", ArgsUsage: "ID",
				Action: needID(func(sp *spool.Spool, id string) error { return sendq.Hold(sp, id, false) })},
			{Name: "sendmail", Usage: "the sendmail(1) interface (sendq sendmail [sendmail options])", SkipFlagParsing: true,
				Action: func(c *cli.Context) error {
					if code := runSendmail(control.FromContext(c), c.String("hostname"), c.Args().Slice()); code != 0 {
						os.Exit(code)
					}
					return nil
				}},
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usageError
	}
	if err := app.Run(os.Args); err != nil {
		log.Print(err)
		os.Exit(exitCode(err))
	}
}

var errUsage = errors.New("usage")

// usageError makes urfave/cli's complaints (an unknown flag, a bad flag
// value) exit 64 (EX_USAGE), as sendq(8) says.
func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w: %v; see sendq --help", errUsage, err)
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, errUsage):
		return sysexits.Usage
	case errors.Is(err, spool.ErrNotFound):
		return sysexits.NoInput
	case errors.Is(err, fs.ErrPermission):
		// Not temporary: trying again as the same user will not help.
		return sysexits.NoPerm
	case spool.IsTemporary(err), errors.Is(err, spool.ErrRunnerActive):
		return sysexits.TempFail
	}
	return sysexits.Software
}

func run(c *cli.Context) error {
	// Deliveries wait for fsyncs of Maildir files and the spool.
	inetd.BlockingProcs(2)
	root := control.FromContext(c)
	cfg, err := sendq.LoadConfig(root, sendq.Overrides{Hostname: c.String("hostname"), DNS: c.String("dns")})
	if err != nil {
		return fmt.Errorf("%w (configuration)", err)
	}
	cfg.Logf = log.Printf
	// QUIT the connections the remote client keeps for reuse.
	defer cfg.Remote.Close()
	sp, err := spool.Open(root.SpoolDir())
	if err != nil {
		return err
	}
	outcomes := queuestats.NewRecorder(queuestats.Dir(sp.Dir()))
	outcomes.Logf = log.Printf
	defer outcomes.Close()
	cfg.Outcome = outcomes.Outcome
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := queue.New(cfg, sp).Run(ctx); err != nil {
		return err
	}
	log.Printf("event=stop")
	return nil
}

func runSendmail(root control.Root, hostnameFlag string, args []string) int {
	env, err := sendmail.NewEnv(root, hostnameFlag)
	if err != nil {
		log.Print(err)
		return sysexits.Config
	}
	return sendmail.Run(args, os.Stdin, os.Stdout, os.Stderr, env, sendq.SendmailCommands(root))
}
