// Command echod is a line-echo server for package inetd's tests: it gets its
// connections through inetd.Serve, so the tests can run it under --listen,
// systemd-socket-activate and tcpserver. Its server imitates go-smtp's:
// Serve(l) accepts until the listener fails, Shutdown(ctx) closes the
// listeners and waits for the sessions.
//
// Protocol, one line per command, answers end in CRLF:
//
//	(on connect)  HELLO remote=ADDR tls=yes|no
//	ENV NAME      ENV NAME=VALUE, or ENV NAME unset
//	ID            ID uid=U euid=U gid=G egid=G groups=G,...
//	UMASK         UMASK 0077
//	QUIT          BYE, then the server closes the connection
//	anything      ECHO anything
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/inetd"
	"github.com/urfave/cli/v2"
)

func main() {
	log.SetFlags(0)
	app := &cli.App{
		Name:   "echod",
		Usage:  "line-echo server for inetd's tests",
		Flags:  append([]cli.Flag{control.RootFlag()}, inetd.Flags()...),
		Action: run,
	}
	if err := app.Run(os.Args); err != nil {
		log.Printf("echod: %v", err)
		os.Exit(1)
	}
	log.Print("echod: exit status=0")
}

func run(c *cli.Context) error {
	inetd.Init()
	cfg := inetd.ConfigFromContext(c, control.FromContext(c))
	tlsConf, err := cfg.TLSConfig()
	if err != nil {
		return err
	}
	srv := &server{done: make(chan struct{})}
	return inetd.Serve(cfg, tlsConf, srv.serve, srv.shutdown)
}

type server struct {
	mu        sync.Mutex
	listeners []net.Listener
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
}

func (s *server) serve(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
				return err
			}
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			session(c)
		}()
	}
}

func (s *server) shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	_, isTLS := c.(*tls.Conn)
	yesNo := map[bool]string{true: "yes", false: "no"}
	log.Printf("echod: session remote=%s tls=%s", c.RemoteAddr(), yesNo[isTLS])
	fmt.Fprintf(c, "HELLO remote=%s tls=%s\r\n", c.RemoteAddr(), yesNo[isTLS])
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "QUIT":
			fmt.Fprint(c, "BYE\r\n")
			return
		case "ENV":
			if v, ok := os.LookupEnv(arg); ok {
				fmt.Fprintf(c, "ENV %s=%s\r\n", arg, v)
			} else {
				fmt.Fprintf(c, "ENV %s unset\r\n", arg)
			}
		case "ID":
			groups, _ := syscall.Getgroups()
			var gs []string
			for _, g := range groups {
				gs = append(gs, fmt.Sprint(g))
			}
			fmt.Fprintf(c, "ID uid=%d euid=%d gid=%d egid=%d groups=%s\r\n",
				os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), strings.Join(gs, ","))
		case "UMASK":
			m := syscall.Umask(0o077)
			syscall.Umask(m)
			fmt.Fprintf(c, "UMASK %04o\r\n", m)
		default:
			fmt.Fprintf(c, "ECHO %s\r\n", line)
		}
	}
}
