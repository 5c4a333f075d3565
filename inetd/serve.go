package inetd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// Serve obtains the listeners of the mode that applies (see the package
// comment), wraps them in TLS with --tls-implicit, switches to cfg.User if
// set (after binding and after the caller loaded tlsConf), and runs serve on
// each listener concurrently.
//
// It stops when SIGTERM or SIGINT arrives or when any serve returns (in modes
// 3 and 4 that is when the one connection has been served): it closes the
// listeners, calls shutdown once with a context that ends after cfg.Grace (a
// second signal ends it at once), waits up to then for the open sessions to
// end, closes the ones still open, and returns when every serve has
// returned. shutdown may be nil: the waiting and closing above then give a
// server without graceful shutdown (go-imap) the same behaviour.
//
// Serve returns an error when no mode applies, the sockets cannot be had,
// privileges cannot be dropped, or a serve failed before the stop. Errors
// serve returns once stopping began (net.ErrClosed, the library's "server
// closed") are expected and not reported.
func Serve(cfg Config, tlsConf *tls.Config, serve func(net.Listener) error, shutdown func(context.Context) error) error {
	Init()
	if cfg.TLSImplicit && tlsConf == nil {
		return fmt.Errorf("inetd: --tls-implicit needs a certificate and key (%s, %s)", cfg.CertFile, cfg.KeyFile)
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	// Catch signals before taking the sockets: a SIGTERM arriving between
	// the two must stop us gracefully, not kill us mid-session.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	act, err := activate(cfg)
	if err != nil {
		return err
	}
	for _, line := range act.logs {
		if cfg.TLSImplicit {
			line += " tls=implicit"
		}
		log.Print(line)
	}
	if cfg.User != "" {
		if err := DropPrivileges(cfg.User); err != nil {
			act.close()
			return err
		}
	} else if os.Geteuid() == 0 {
		log.Print(`inetd: privileges=root warning="use --user to switch to an unprivileged account"`)
	}

	sess := newSessions()
	listeners := make([]net.Listener, len(act.listeners))
	for i, l := range act.listeners {
		tl := &trackedListener{Listener: l, s: sess}
		act.listeners[i] = tl
		listeners[i] = tl
		if cfg.TLSImplicit {
			listeners[i] = tls.NewListener(tl, tlsConf)
		}
	}
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errs <- serve(l) }()
	}

	running := len(listeners)
	var serveErr error
	select {
	case sig := <-sigs:
		act.close()
		log.Printf("inetd: signal=%s action=stopping listening=no sessions=%d grace=%s", sig, sess.count(), grace)
	case err := <-errs:
		running--
		act.close()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			serveErr = fmt.Errorf("inetd: serve: %w", err)
			log.Printf("inetd: action=stopping error=%q", "serve: "+err.Error())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			log.Printf("inetd: signal=%s action=closing-sessions reason=second-signal", sig)
			cancel()
		case <-ctx.Done():
		}
	}()
	if shutdown != nil {
		if err := shutdown(ctx); err != nil && ctx.Err() == nil {
			log.Printf("inetd: action=shutdown error=%q", err)
		}
	}
	sess.wait(ctx)
	if n := sess.closeAll(); n > 0 {
		log.Printf("inetd: action=closing-sessions reason=grace-period-over sessions=%d", n)
	}
	for ; running > 0; running-- {
		<-errs
	}
	return serveErr
}
