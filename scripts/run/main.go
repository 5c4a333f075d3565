// Command run is what `make run` starts: it makes ./run a postkit root with a
// self-signed certificate and a demo user, starts every daemon that has been
// built on loopback ports, prints what a mail client needs, and stops them all
// on Ctrl-C. It is a developer's tool, not an installed program.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/selfsigned"
)

const demoUser = "demo@example.org"

// daemon is one process make run starts.
type daemon struct {
	name string   // binary in bin/
	what string   // what it serves, for the summary
	port int      // loopback port it listens on, 0 for none
	args []string // besides --root and --listen
}

var daemons = []daemon{
	{name: "smtpd", what: "SMTP (MX, STARTTLS)", port: 2525},
	{name: "smtpd", what: "submission (STARTTLS)", port: 2587, args: []string{"--submission"}},
	{name: "smtpd", what: "submission (implicit TLS)", port: 2465, args: []string{"--submission", "--tls-implicit"}},
	{name: "pop3d", what: "POP3 (STLS)", port: 2110},
	{name: "pop3d", what: "POP3 (implicit TLS)", port: 2995, args: []string{"--tls-implicit"}},
	{name: "imapd", what: "IMAP (STARTTLS)", port: 2143},
	{name: "imapd", what: "IMAP (implicit TLS)", port: 2993, args: []string{"--tls-implicit"}},
	{name: "sendq", what: "queue runner", args: []string{"run"}},
}

func main() {
	dir := flag.String("dir", "run", "root directory to create and use")
	bin := flag.String("bin", "bin", "directory holding the built binaries")
	offset := flag.Int("port-offset", 0, "added to every port (to run beside another instance)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("make run: ")
	root, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	password, err := setup(control.Root(root), *bin)
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(serve(control.Root(root), *bin, *offset, password))
}

// setup makes the root, its certificate and the demo user, and returns the
// demo user's password (kept in ROOT/demo-password so later runs print it).
func setup(root control.Root, bin string) (string, error) {
	if err := os.MkdirAll(root.Etc("tls"), 0o700); err != nil {
		return "", err
	}
	if _, err := os.Stat(root.Etc("hostname")); os.IsNotExist(err) {
		if err := os.WriteFile(root.Etc("hostname"), []byte("localhost\n"), 0o644); err != nil {
			return "", err
		}
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if _, err := selfsigned.WriteIfMissing(root.Etc("tls/cert.pem"), root.Etc("tls/key.pem"), hosts, 365*24*time.Hour); err != nil {
		return "", err
	}
	pwFile := filepath.Join(string(root), "demo-password")
	if pw, err := os.ReadFile(pwFile); err == nil {
		return strings.TrimSpace(string(pw)), nil
	}
	out, err := exec.Command(filepath.Join(bin, "mkuser"), "--root", string(root), "add", "--random", demoUser).Output()
	if err != nil {
		return "", fmt.Errorf("creating %s with mkuser: %w", demoUser, err)
	}
	pw := strings.TrimSpace(string(out))
	if i := strings.LastIndex(pw, "\n"); i >= 0 {
		pw = strings.TrimSpace(pw[i+1:])
	}
	return pw, os.WriteFile(pwFile, []byte(pw+"\n"), 0o600)
}

// serve starts the daemons, prints the summary and waits for Ctrl-C or for a
// daemon to die; it returns the exit code.
func serve(root control.Root, bin string, offset int, password string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var procs []*exec.Cmd
	died := make(chan string, len(daemons))
	var wg sync.WaitGroup
	var started []daemon
	for _, d := range daemons {
		path := filepath.Join(bin, d.name)
		if _, err := os.Stat(path); err != nil {
			continue // not built yet: this daemon's issue has not landed
		}
		args := []string{"--root", string(root)}
		if d.port != 0 {
			args = append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", d.port+offset))
		}
		args = append(args, d.args...)
		cmd := exec.Command(path, args...)
		stderr, _ := cmd.StderrPipe()
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			log.Printf("starting %s: %v", d.name, err)
			continue
		}
		go prefixLines(d.name, stderr)
		procs = append(procs, cmd)
		started = append(started, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			died <- fmt.Sprintf("%s %v exited: %v", d.name, d.args, err)
		}()
	}
	for _, d := range started {
		if d.port != 0 && !waitPort(d.port+offset, 10*time.Second) {
			log.Printf("%s did not start listening on port %d", d.name, d.port+offset)
		}
	}
	printSummary(root, started, offset, password)
	code := 0
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
	case msg := <-died:
		log.Print(msg)
		code = 1
	}
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, p := range procs {
			p.Process.Kill()
		}
		<-done
	}
	fmt.Println("stopped")
	return code
}

func prefixLines(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
	}
}

func waitPort(port int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func printSummary(root control.Root, started []daemon, offset int, password string) {
	fmt.Printf("\npostkit is running with root %s\n\n", root)
	fmt.Printf("  user:     %s\n  password: %s\n\n", demoUser, password)
	for _, d := range started {
		if d.port != 0 {
			fmt.Printf("  %-26s 127.0.0.1:%d\n", d.what, d.port+offset)
		} else {
			fmt.Printf("  %-26s running\n", d.what)
		}
	}
	fmt.Printf("\nThe certificate %s is self-signed: tell your client to accept it.\n", root.Etc("tls/cert.pem"))
	fmt.Printf("Deliver a test message:  echo 'Subject: hi' | bin/deliver --root %s %s\n", root, demoUser)
	fmt.Println("Press Ctrl-C to stop.")
	fmt.Println("ready")
}
