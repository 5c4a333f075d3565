package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/mx/dnstest"
)

// builtDaemons builds every program that exists under cmd/ and returns the
// directory holding them, as `make build` would fill bin/.
func builtDaemons(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(moduleRoot(), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		Bin(t, e.Name())
	}
	return binDir
}

// freePortOffset returns an offset that makes every make-run port free.
func freePortOffset(t *testing.T) int {
	t.Helper()
	ports := []int{2525, 2587, 2465, 2110, 2995, 2143, 2993}
	for range 50 {
		off := 20000 + rand.IntN(30000)
		free := true
		for _, p := range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return off
		}
	}
	t.Fatal("no free port range")
	return 0
}

// startRun starts the make-run driver and returns it with the lines it
// printed up to "ready".
func startRun(t *testing.T, bin, dir string, offset int) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(Bin(t, "scripts/run"), "-bin", bin, "-dir", dir, "-port-offset", fmt.Sprint(offset))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("make run exited before ready; printed:\n%s", strings.Join(got, "\n"))
			}
			got = append(got, line)
			if line == "ready" {
				go func() {
					for range lines {
					}
				}()
				return cmd, got
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("make run not ready after 2 minutes; printed:\n%s", strings.Join(got, "\n"))
		}
	}
}

func TestMakeRun(t *testing.T) {
	bin := builtDaemons(t)
	dir := filepath.Join(t.TempDir(), "run")
	// smtpd's SPF, DKIM and DMARC lookups go to an empty DNS server on
	// loopback, never the machine's resolver; make run keeps an etc/dns
	// it finds.
	writeFile(t, filepath.Join(dir, "etc", "dns"), dnstest.Start(t).Addr+"\n")
	offset := freePortOffset(t)
	cmd, out := startRun(t, bin, dir, offset)
	text := strings.Join(out, "\n")
	m := regexp.MustCompile(`(?m)^\s*password: (\S+)$`).FindStringSubmatch(text)
	if m == nil || !strings.Contains(text, "user:     demo@example.org") {
		cmd.Process.Kill()
		t.Fatalf("make run did not print the demo user and password:\n%s", text)
	}
	password := m[1]
	check := exec.Command(filepath.Join(bin, "mkuser"), "--root", dir, "check", "demo@example.org")
	check.Stdin = strings.NewReader(password + "\n")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("mkuser check with the printed password: %v %s", err, out)
	}
	for _, f := range []string{"etc/tls/cert.pem", "etc/tls/key.pem", "mail/example.org/demo/new", "mail/example.org/demo/.Sent/cur"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("make run did not create %s: %v", f, err)
		}
	}
	// Every daemon that is built listens on its port.
	var ports []int
	for _, l := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(text, -1) {
		var p int
		fmt.Sscan(l[1], &p)
		ports = append(ports, p)
		c, err := net.DialTimeout("tcp", l[0], 5*time.Second)
		if err != nil {
			t.Errorf("make run says %s, but dialing it: %v", l[0], err)
			continue
		}
		c.Close()
	}
	if _, err := os.Stat(filepath.Join(bin, "pop3d")); err == nil && len(ports) == 0 {
		t.Error("pop3d is built but make run lists no port")
	}
	// Mail sent to the demo user over SMTP reaches its Maildir through
	// smtpd, the spool and sendq run.
	if err := sendOverStartTLS(fmt.Sprintf("127.0.0.1:%d", 2525+offset), filepath.Join(dir, "etc/tls/cert.pem"),
		"someone@example.net", "demo@example.org", "Subject: make run\r\n\r\nhello\r\n"); err != nil {
		t.Errorf("sending to demo@example.org over SMTP: %v", err)
	} else {
		newDir := filepath.Join(dir, "mail/example.org/demo/new")
		deadline := time.Now().Add(30 * time.Second)
		for {
			entries, _ := os.ReadDir(newDir)
			if len(entries) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the message sent over SMTP is not in %s after 30s (%d files)", newDir, len(entries))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Ctrl-C stops everything cleanly.
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("make run after Ctrl-C: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("make run did not stop within 30s of Ctrl-C")
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts after make run stopped", p)
		}
	}
	// A second run keeps the demo user and prints the same password.
	cmd2, out2 := startRun(t, bin, dir, offset)
	cmd2.Process.Signal(syscall.SIGINT)
	cmd2.Wait()
	if !strings.Contains(strings.Join(out2, "\n"), "password: "+password) {
		t.Errorf("second make run printed another password:\n%s", strings.Join(out2, "\n"))
	}
}

// sendOverStartTLS sends one message with STARTTLS, trusting only the
// certificate in certFile (which must be valid for the address dialled).
func sendOverStartTLS(addr, certFile, from, to, msg string) error {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(addr)
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: host}); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
