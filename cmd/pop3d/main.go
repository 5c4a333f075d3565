// Command pop3d is postkit's POP3 server: it serves the users' Maildirs
// under ROOT/mail over POP3 with STLS, or implicit TLS with --tls-implicit,
// however it is started (--listen, systemd, inetd). See pop3d(8); the work
// is done by packages pop3 and inetd.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/pop3"
	"github.com/postkit/postkit/sysexits"
)

func main() {
	inetd.Init()
	log.SetFlags(0)
	log.SetPrefix("pop3d: ")
	app := &cli.App{
		Name:      "pop3d",
		Usage:     "serve postkit Maildirs over POP3",
		UsageText: "pop3d [--root DIR] [--listen ADDR]... [--tls-implicit] [--user USER] [flags]",
		Flags: append([]cli.Flag{
			control.RootFlag(),
			control.HostnameFlag(),
			&cli.BoolFlag{
				Name:    "allow-plaintext-loopback",
				Usage:   "allow logins without TLS from 127.0.0.0/8 and ::1",
				EnvVars: []string{"POSTKIT_POP3_ALLOW_PLAINTEXT_LOOPBACK"},
			},
			&cli.DurationFlag{
				Name:  "idle-timeout",
				Usage: "close connections idle this long, deleting nothing (RFC 1939: at least 10m)",
				Value: pop3.DefaultIdleTimeout,
			},
			&cli.DurationFlag{
				Name:  "login-failure-delay",
				Usage: "pause before answering a failed login, doubled for each further one",
				Value: pop3.DefaultFailureDelay,
			},
		}, inetd.Flags()...),
		HideHelpCommand: true,
		Action:          run,
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		log.Print(err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(sysexits.Usage)
	}
}

// exitError carries the exit status of a failure after the flags parsed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	root := control.FromContext(c)
	hostname, err := root.Hostname(c.String("hostname"))
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	cfg := inetd.ConfigFromContext(c, root)
	// Without --listen, systemd's sockets or a socket on stdin there is
	// nothing to serve: a usage error, whose message says what to give.
	if _, err := cfg.Mode(); err != nil {
		return exitError{sysexits.Usage, err}
	}
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	logger := log.Default()
	accounts := pop3.Accounts{Root: root, Log: logger, Maildirs: &pop3.Maildirs{}}
	srv := &pop3.Server{
		Hostname:               hostname,
		TLSConfig:              tlsConf,
		AllowPlaintextLoopback: c.Bool("allow-plaintext-loopback"),
		IdleTimeout:            c.Duration("idle-timeout"),
		FailureDelay:           c.Duration("login-failure-delay"),
		Authenticate:           accounts.Authenticate,
		Open:                   accounts.Open,
		Log:                    logger,
	}
	if err := inetd.Serve(cfg, tlsConf, srv.Serve, srv.Shutdown); err != nil {
		return exitError{sysexits.TempFail, err}
	}
	return nil
}
