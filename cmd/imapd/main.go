// Command imapd is postkit's IMAP server: it serves the users' Maildirs
// under ROOT/mail over IMAP4rev2 and IMAP4rev1 with STARTTLS, or implicit
// TLS with --tls-implicit, however it is started (--listen, systemd,
// inetd). See imapd(8); the work is done by packages imapd and inetd.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/imapd"
	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/sysexits"
)

func main() {
	inetd.Init()
	log.SetFlags(0)
	log.SetPrefix("")
	app := &cli.App{
		Name:      "imapd",
		Usage:     "serve postkit Maildirs over IMAP",
		UsageText: "imapd [--root DIR] [--listen ADDR]... [--tls-implicit] [--user USER] [flags]",
		Flags: append([]cli.Flag{
			control.RootFlag(),
			control.HostnameFlag(),
			&cli.BoolFlag{
				Name:    "allow-plaintext-loopback",
				Usage:   "allow LOGIN and AUTHENTICATE without TLS from 127.0.0.0/8 and ::1",
				EnvVars: []string{"POSTKIT_IMAP_ALLOW_PLAINTEXT_LOOPBACK"},
			},
			&cli.DurationFlag{
				Name:    "login-failure-delay",
				Usage:   "pause before answering a failed login, doubled for each further one",
				EnvVars: []string{"POSTKIT_IMAP_LOGIN_FAILURE_DELAY"},
				Value:   imapd.DefaultFailureDelay,
			},
			&cli.StringFlag{
				Name:    "append-limit",
				Usage:   "largest message APPEND accepts (bytes, or with k, M, G)",
				EnvVars: []string{"POSTKIT_IMAP_APPEND_LIMIT"},
				Value:   "50M",
			},
		}, inetd.Flags()...),
		HideHelpCommand: true,
		Action:          run,
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		log.Printf("imapd: %v", err)
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
	appendLimit, err := control.ParseSize(c.String("append-limit"))
	if err != nil {
		return fmt.Errorf("--append-limit: %w", err)
	}
	root := control.FromContext(c)
	hostname, err := root.Hostname(c.String("hostname"))
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	cfg := inetd.ConfigFromContext(c, root)
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	srv := &imapd.Server{
		Root:                   root,
		Hostname:               hostname,
		TLSConfig:              tlsConf,
		AllowPlaintextLoopback: c.Bool("allow-plaintext-loopback"),
		FailureDelay:           c.Duration("login-failure-delay"),
		AppendLimit:            appendLimit,
		Log:                    log.Default(),
	}
	// go-imap has no graceful shutdown (its Close drops every
	// connection at once): inetd's grace period does the waiting.
	if err := inetd.Serve(cfg, tlsConf, srv.Serve, nil); err != nil {
		return exitError{sysexits.TempFail, err}
	}
	return nil
}
