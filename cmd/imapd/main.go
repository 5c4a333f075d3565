// Command imapd is postkit's IMAP server: it serves the users' Maildirs
// under ROOT/mail over IMAP4rev2 and IMAP4rev1 with STARTTLS, or implicit
// TLS with --tls-implicit, however it is started (--listen, systemd,
// inetd). See imapd(8); the work is done by packages imapd and inetd.
package main

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/imapd"
	"github.com/postkit/postkit/inetd"
)

func main() {
	inetd.Main(inetd.Daemon{
		Name:      "imapd",
		Usage:     "serve postkit Maildirs over IMAP",
		UsageText: "imapd [--root DIR] [--listen ADDR]... [--tls-implicit] [--user USER] [flags]",
		Env:       "IMAP",
		Refusal:   "* BYE",
		Flags: []cli.Flag{
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
		},
		New: newServer,
	})
}

func newServer(c *cli.Context, s inetd.Setup) (func(net.Listener) error, func(context.Context) error, error) {
	appendLimit, err := control.ParseSize(c.String("append-limit"))
	if err != nil {
		return nil, nil, inetd.UsageError(fmt.Errorf("--append-limit: %w", err))
	}
	srv := &imapd.Server{
		Root:                   s.Root,
		Hostname:               s.Hostname,
		TLSConfig:              s.TLS,
		AllowPlaintextLoopback: c.Bool("allow-plaintext-loopback"),
		FailureDelay:           c.Duration("login-failure-delay"),
		AppendLimit:            appendLimit,
		MaxSessions:            s.MaxSessions,
		MaxSessionsPerClient:   s.MaxSessionsPerClient,
		Log:                    log.Default(),
	}
	// go-imap has no graceful shutdown (its Close drops every connection
	// at once): inetd's grace period does the waiting.
	return srv.Serve, nil, nil
}
