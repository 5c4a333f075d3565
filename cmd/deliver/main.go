// Command deliver is postkit's local delivery agent: it reads one message on
// standard input and puts it into the Maildirs of local addresses, or into
// one Maildir named with --maildir. See deliver(8).
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/lda"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/resolve"
	"github.com/postkit/postkit/sysexits"
)

func main() {
	unix.Umask(0o077)
	log.SetFlags(0)
	log.SetPrefix("deliver: ")
	app := &cli.App{
		Name:      "deliver",
		Usage:     "deliver one message from standard input to local mailboxes",
		UsageText: "deliver [--root DIR] [-f SENDER] ADDRESS... < message\ndeliver --maildir DIR [-f SENDER] < message",
		Flags: []cli.Flag{
			control.RootFlag(),
			control.HostnameFlag(),
			&cli.StringFlag{Name: "f", Aliases: []string{"from"}, EnvVars: []string{"SENDER"}, Usage: "envelope sender for Return-Path (empty: <>)"},
			&cli.StringFlag{Name: "maildir", Usage: "deliver into this Maildir instead of resolving addresses"},
		},
		HideHelpCommand: true,
		Action:          run,
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		log.Printf("status=failed code=%d error=%q", lda.Code(err), err)
		os.Exit(lda.Code(err))
	}
}

func usage(format string, args ...any) error {
	return &lda.Error{Code: sysexits.Usage, Err: fmt.Errorf(format, args...)}
}

func run(c *cli.Context) error {
	root := control.FromContext(c)
	var sender address.Address // empty -f: the null sender <>
	if f := c.String("f"); f != "" {
		var err error
		if sender, err = address.ParsePath(f); err != nil {
			return usage("bad sender %q: %v", f, err)
		}
	}
	if c.String("maildir") != "" && c.NArg() > 0 {
		return usage("give either --maildir or addresses, not both")
	}
	if c.String("maildir") == "" && c.NArg() == 0 {
		return usage("no recipient: deliver [--root DIR] [-f SENDER] ADDRESS... < message")
	}
	var rcpts []address.Address
	for _, arg := range c.Args().Slice() {
		a, err := address.Parse(arg)
		if err != nil {
			return usage("bad address %q: %v", arg, err)
		}
		rcpts = append(rcpts, a)
	}
	hostname, err := root.Hostname(c.String("hostname"))
	if err != nil {
		return &lda.Error{Code: sysexits.Config, Err: err}
	}
	opt := lda.Options{Sender: sender, Hostname: hostname}
	msg, err := lda.ReadMessage(os.Stdin)
	if err != nil {
		return err
	}
	if dir := c.String("maildir"); dir != "" {
		d, err := lda.ToMaildir(dir, msg, opt)
		if err != nil {
			return err
		}
		log.Printf("maildir=%s status=delivered file=%s size=%d", maillog.Quote(dir), maillog.Quote(d.Path), d.Size)
		return nil
	}
	r, err := resolve.Load(root)
	if err != nil {
		return &lda.Error{Code: sysexits.TempFail, Err: err}
	}
	if code := lda.ToAddresses(r, rcpts, msg, opt, lda.SpoolForwarder(root.SpoolDir()), log.Printf); code != 0 {
		os.Exit(code)
	}
	return nil
}
