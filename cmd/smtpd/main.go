// Command smtpd is postkit's SMTP server: in MX mode (the default) it
// receives mail for local domains, in submission mode (--submission) mail
// from authenticated users, and puts it into the spool for sendq. See
// smtpd(8); the work is done by packages smtpd and inetd.
package main

import (
	"context"
	"log"
	"net"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/inetd"
	"github.com/postkit/postkit/smtpd"
)

func main() {
	inetd.Main(inetd.Daemon{
		Name:      "smtpd",
		Usage:     "receive mail over SMTP into the postkit spool",
		UsageText: "smtpd [--root DIR] [--submission] [--listen ADDR]... [--tls-implicit] [--user USER] [flags]",
		Env:       "SMTP",
		Refusal:   "421",
		// Sessions wait for the spool's fsyncs (inetd.BlockingProcs).
		ProcsPerCPU: 2,
		Flags: []cli.Flag{
			&cli.BoolFlag{
				Name:    "submission",
				Usage:   "submission mode (ports 587 and 465): AUTH required, send as your own addresses to anyone",
				EnvVars: []string{"POSTKIT_SUBMISSION"},
			},
			&cli.DurationFlag{
				Name:    "command-timeout",
				Usage:   "time a client has to send each command line (RFC 5321: at least 5m)",
				EnvVars: []string{"POSTKIT_SMTP_COMMAND_TIMEOUT"},
				Value:   smtpd.DefaultCommandTimeout,
			},
			&cli.DurationFlag{
				Name:    "data-timeout",
				Usage:   "time a client has to send a whole DATA block or BDAT chunk",
				EnvVars: []string{"POSTKIT_SMTP_DATA_TIMEOUT"},
				Value:   smtpd.DefaultDataTimeout,
			},
			&cli.StringFlag{
				Name:    "dns",
				Usage:   "DNS resolver ADDR[:PORT] for SPF, DKIM, DMARC and DNSBL lookups (default: etc/dns, else /etc/resolv.conf's)",
				EnvVars: []string{"POSTKIT_DNS"},
			},
			&cli.DurationFlag{
				Name:    "auth-failure-delay",
				Usage:   "pause before answering a failed AUTH, doubled for each further one",
				EnvVars: []string{"POSTKIT_SMTP_AUTH_FAILURE_DELAY"},
				Value:   smtpd.DefaultAuthFailureDelay,
			},
		},
		New: newServer,
	})
}

func newServer(c *cli.Context, s inetd.Setup) (func(net.Listener) error, func(context.Context) error, error) {
	srv, err := smtpd.New(smtpd.Config{
		Root:                 s.Root,
		Hostname:             s.Hostname,
		Submission:           c.Bool("submission"),
		TLS:                  s.TLS,
		CommandTimeout:       c.Duration("command-timeout"),
		DataTimeout:          c.Duration("data-timeout"),
		MaxSessions:          s.MaxSessions,
		MaxSessionsPerClient: s.MaxSessionsPerClient,
		AuthFailureDelay:     c.Duration("auth-failure-delay"),
		DNS:                  c.String("dns"),
		Log:                  log.Default(),
	})
	if err != nil {
		return nil, nil, err
	}
	return srv.Serve, srv.Shutdown, nil
}
