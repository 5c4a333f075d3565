// Package inetd gives the network daemons (smtpd, pop3d, imapd) their
// connections, whichever way the operator starts them:
//
//  1. --listen ADDR (repeatable): the daemon listens itself and serves many
//     connections; SIGTERM or SIGINT stops it gracefully.
//  2. systemd socket activation with Accept=no: listening sockets passed from
//     fd 3 (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES; sd_listen_fds(3)).
//  3. systemd Accept=yes: one connected socket passed as fd 3.
//  4. inetd "nowait" or ucspi-tcp's tcpserver: the connection is stdin/stdout.
//     When stdin is instead a listening socket (inetd "wait", or
//     systemd-socket-activate --inetd without --accept), it is served like
//     mode 2 (InetdWait).
//
// The modes are tried in that order; when none applies Serve says what to do. In modes 3 and 4 the single connection
// is presented as a net.Listener (ConnListener) that returns it once, so
// server libraries that only have Serve(net.Listener) (go-smtp, go-imap) serve
// it and return when the session is over.
//
// --tls-implicit wraps every mode's connections in TLS from the first byte
// (ports 465, 993, 995). Without it, a certificate at --tls-cert/--tls-key
// (default ROOT/etc/tls/cert.pem and key.pem) is offered through STARTTLS by
// the daemon itself.
//
// Every daemon runs with umask 077 (Init), and with --user it switches to that
// user after binding its sockets and loading its keys (DropPrivileges).
package inetd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/urfave/cli/v2"
)

// DefaultGrace is how long open sessions may continue after SIGTERM when
// --grace is not given.
const DefaultGrace = 30 * time.Second

// Config says how a daemon gets its connections. ConfigFromContext fills it
// from the command line.
type Config struct {
	// Listen holds the addresses to listen on ("127.0.0.1:25", "[::1]:25",
	// ":25"). When empty the connections come from systemd or inetd.
	Listen []string
	// TLSImplicit makes every connection TLS from the first byte.
	TLSImplicit bool
	// CertFile and KeyFile are the PEM certificate chain and private key.
	CertFile, KeyFile string
	// User is the account to switch to after binding; empty keeps the
	// current one.
	User string
	// Grace is how long open sessions may continue after SIGTERM or SIGINT
	// before they are closed; 0 means DefaultGrace.
	Grace time.Duration
}

// Flags returns the command-line flags ConfigFromContext reads.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{
			Name:    "listen",
			Usage:   "listen on `ADDR` (host:port, repeatable); without it the connections come from systemd or inetd",
			EnvVars: []string{"POSTKIT_LISTEN"},
		},
		&cli.BoolFlag{
			Name:    "tls-implicit",
			Usage:   "speak TLS from the first byte on every connection (ports 465, 993, 995)",
			EnvVars: []string{"POSTKIT_TLS_IMPLICIT"},
		},
		&cli.StringFlag{
			Name:    "tls-cert",
			Usage:   "TLS certificate chain `FILE`, PEM (default: ROOT/etc/tls/cert.pem)",
			EnvVars: []string{"POSTKIT_TLS_CERT"},
		},
		&cli.StringFlag{
			Name:    "tls-key",
			Usage:   "TLS private key `FILE`, PEM (default: ROOT/etc/tls/key.pem)",
			EnvVars: []string{"POSTKIT_TLS_KEY"},
		},
		&cli.StringFlag{
			Name:    "user",
			Usage:   "when started as root, switch to `USER` after binding sockets and loading keys",
			EnvVars: []string{"POSTKIT_USER"},
		},
		&cli.DurationFlag{
			Name:    "grace",
			Usage:   "after SIGTERM, how long open sessions may continue before they are closed",
			EnvVars: []string{"POSTKIT_GRACE"},
			Value:   DefaultGrace,
		},
	}
}

// ConfigFromContext reads the flags of Flags; the certificate and key default
// to ROOT/etc/tls/cert.pem and ROOT/etc/tls/key.pem.
func ConfigFromContext(c *cli.Context, root control.Root) Config {
	cfg := Config{
		Listen:      c.StringSlice("listen"),
		TLSImplicit: c.Bool("tls-implicit"),
		CertFile:    c.String("tls-cert"),
		KeyFile:     c.String("tls-key"),
		User:        c.String("user"),
		Grace:       c.Duration("grace"),
	}
	if cfg.CertFile == "" {
		cfg.CertFile = root.Etc("tls/cert.pem")
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = root.Etc("tls/key.pem")
	}
	return cfg
}

// TLSConfig loads the certificate and key. When neither file exists it
// returns nil and no error: the daemon then offers no STARTTLS (and Serve
// refuses --tls-implicit). Only one of the two existing, or files that do not
// load, is an error. TLS 1.2 is the minimum version (RFC 8996 deprecates 1.0
// and 1.1).
func (c Config) TLSConfig() (*tls.Config, error) {
	certExists, err := exists(c.CertFile)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(c.KeyFile)
	if err != nil {
		return nil, err
	}
	switch {
	case !certExists && !keyExists:
		return nil, nil
	case !certExists:
		return nil, fmt.Errorf("inetd: TLS key %s exists but certificate %s does not", c.KeyFile, c.CertFile)
	case !keyExists:
		return nil, fmt.Errorf("inetd: TLS certificate %s exists but key %s does not", c.CertFile, c.KeyFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("inetd: loading TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func exists(name string) (bool, error) {
	if name == "" {
		return false, nil
	}
	_, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inetd: %w", err)
	}
	return true, nil
}

// Init sets the process umask to 077, so that mail, queue files and locks
// are private to the daemon's user whatever the library creating them asks
// for (go-maildir creates files 0666). Every daemon calls it first; Serve
// calls it too.
func Init() {
	syscall.Umask(0o077)
}
