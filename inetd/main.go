package inetd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/sysexits"
)

// Daemon describes one of postkit's servers (smtpd, pop3d, imapd) to Main.
type Daemon struct {
	Name, Usage, UsageText string
	// Flags are the program's own; Main adds --root, --hostname, the
	// session limits and the serving flags of Flags().
	Flags []cli.Flag
	// Env names the program in its environment variables
	// (POSTKIT_<Env>_MAX_SESSIONS), and Refusal is what a client over a
	// session limit gets, for the flags' help ("421", "* BYE").
	Env, Refusal string
	// New makes the server from the parsed flags once the root, host name
	// and TLS configuration are known, and returns what Serve runs. An
	// error wrapped with UsageError exits 64, any other 78 (configuration).
	New func(c *cli.Context, s Setup) (serve func(net.Listener) error, shutdown func(context.Context) error, err error)
	// ProcsPerCPU, when above 1, multiplies the Go runtime's default
	// GOMAXPROCS (the CPUs the process may use) unless the GOMAXPROCS
	// environment variable sets it; see BlockingProcs.
	ProcsPerCPU int
}

// BlockingProcs sets GOMAXPROCS to perCPU times the runtime's default,
// unless the GOMAXPROCS environment variable sets it, for programs whose
// goroutines spend much of their time blocked in fsync(2): smtpd's sessions
// wait for each enqueue's fsyncs, `sendq run`'s deliveries for those of the
// Maildir and the spool. A goroutine in a system call keeps its P
// (the runtime's right to run Go code) until the runtime's monitor hands it
// to another thread, 20 µs to 10 ms later; with only one P per CPU, sessions
// whose replies have arrived wait meanwhile, and fewer of them reach the
// spool's shared directory fsync together. Measured on 2 CPUs (BENCHMARKS.md,
// acceptance): 2 Ps per CPU accepted 9% more messages a second with 8%
// fewer cache flushes, 3 as many as 2, and 4 or 8 per CPU fewer than 1,
// their idle Ps spinning for work; local delivery from the queue, 21% more.
func BlockingProcs(perCPU int) {
	if perCPU > 1 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(perCPU * runtime.GOMAXPROCS(0))
	}
}

// Setup is what every server needs besides its own flags.
type Setup struct {
	Root     control.Root
	Hostname string
	TLS      *tls.Config // nil when no certificate is configured
	// MaxSessions and MaxSessionsPerClient are --max-sessions and
	// --max-sessions-per-client, for the server's SessionLimit.
	MaxSessions, MaxSessionsPerClient int
}

// limitFlags are the session limit flags every daemon takes.
func limitFlags(d Daemon) []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{
			Name:    "max-sessions",
			Usage:   "concurrent sessions at most; more get " + d.Refusal,
			EnvVars: []string{"POSTKIT_" + d.Env + "_MAX_SESSIONS"},
			Value:   DefaultMaxSessions,
		},
		&cli.IntFlag{
			Name:    "max-sessions-per-client",
			Usage:   "concurrent sessions from one IP address at most; more get " + d.Refusal,
			EnvVars: []string{"POSTKIT_" + d.Env + "_MAX_SESSIONS_PER_CLIENT"},
			Value:   DefaultMaxSessionsPerClient,
		},
	}
}

type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// UsageError marks err as a mistake in the command line (exit 64).
func UsageError(err error) error { return usageError{err} }

type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// Main runs a daemon's command line and exits. Exit status: 0 after a
// clean shutdown (or a served inetd/Accept=yes connection), 64 for usage
// errors (including no way to get connections: no --listen, no systemd
// sockets, no socket on standard input), 78 for configuration errors (no
// host name, an unusable certificate), 75 when serving fails.
func Main(d Daemon) {
	Init()
	BlockingProcs(d.ProcsPerCPU)
	log.SetFlags(0)
	log.SetPrefix(d.Name + ": ")
	app := &cli.App{
		Name:            d.Name,
		Usage:           d.Usage,
		UsageText:       d.UsageText,
		Flags:           slices.Concat([]cli.Flag{control.RootFlag(), control.HostnameFlag()}, d.Flags, limitFlags(d), Flags()),
		HideHelpCommand: true,
		Action:          func(c *cli.Context) error { return run(c, d) },
		ExitErrHandler:  func(*cli.Context, error) {},
	}
	if err := app.Run(os.Args); err != nil {
		log.Print(err)
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		// urfave/cli's own errors are about the command line.
		os.Exit(sysexits.Usage)
	}
}

func run(c *cli.Context, d Daemon) error {
	if c.NArg() > 0 {
		return exitError{sysexits.Usage, fmt.Errorf("unexpected argument %q (flags go before arguments, and %s takes none)", c.Args().First(), d.Name)}
	}
	for _, name := range []string{"max-sessions", "max-sessions-per-client"} {
		if c.Int(name) < 1 {
			return exitError{sysexits.Usage, fmt.Errorf("--%s must be at least 1", name)}
		}
	}
	root := control.FromContext(c)
	hostname, err := root.Hostname(c.String("hostname"))
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	cfg := ConfigFromContext(c, root)
	// Without --listen, systemd's sockets or a socket on stdin there is
	// nothing to serve: a usage error, whose message says what to give.
	if _, err := cfg.Mode(); err != nil {
		return exitError{sysexits.Usage, err}
	}
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return exitError{sysexits.Config, err}
	}
	serve, shutdown, err := d.New(c, Setup{Root: root, Hostname: hostname, TLS: tlsConf,
		MaxSessions: c.Int("max-sessions"), MaxSessionsPerClient: c.Int("max-sessions-per-client")})
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return exitError{sysexits.Usage, err}
		}
		return exitError{sysexits.Config, err}
	}
	if err := Serve(cfg, tlsConf, serve, shutdown); err != nil {
		return exitError{sysexits.TempFail, err}
	}
	return nil
}
