// Command pop3d is postkit's POP3 server: it serves the users' Maildirs
// under ROOT/mail over POP3 with STLS, or implicit TLS with --tls-implicit,
// however it is started (--listen, systemd, inetd). See pop3d(8); the work
// is done by packages pop3 and inetd.
package main

import (
	"context"
	"log"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/pop3"
)

func main() {
	inetd.Main(inetd.Daemon{
		Name:      "pop3d",
		Usage:     "serve postkit Maildirs over POP3",
		UsageText: "pop3d [--root DIR] [--listen ADDR]... [--tls-implicit] [--user USER] [flags]",
		Env:       "POP3",
		Refusal:   "-ERR [SYS/TEMP]",
		Flags: []cli.Flag{
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
		},
		New: newServer,
	})
}

func newServer(c *cli.Context, s inetd.Setup) (func(net.Listener) error, func(context.Context) error, error) {
	logger := log.Default()
	accounts := pop3.Accounts{Root: s.Root, Log: logger, Maildirs: &pop3.Maildirs{}}
	srv := &pop3.Server{
		Hostname:               s.Hostname,
		TLSConfig:              s.TLS,
		AllowPlaintextLoopback: c.Bool("allow-plaintext-loopback"),
		IdleTimeout:            c.Duration("idle-timeout"),
		FailureDelay:           c.Duration("login-failure-delay"),
		Authenticate:           accounts.Authenticate,
		Open:                   accounts.Open,
		MaxSessions:            s.MaxSessions,
		MaxSessionsPerClient:   s.MaxSessionsPerClient,
		Log:                    logger,
	}
	return srv.Serve, srv.Shutdown, nil
}
