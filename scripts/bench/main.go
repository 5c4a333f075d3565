// Command bench runs postkit's whole-program benchmarks and, where the peer is
// installed (Debian's dovecot-core for dovecot-lda), the same workload against
// it on the same machine in the same run, and prints one table. `make bench`
// runs it after the Go micro-benchmarks. It is a developer's tool.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const dovecotLDA = "/usr/lib/dovecot/dovecot-lda"

type row struct {
	workload string
	postkit  float64 // operations per second
	peer     float64 // 0 when the peer is not installed
	peerName string
}

func main() {
	bin := flag.String("bin", "bin", "directory holding the built binaries")
	n := flag.Int("n", 300, "deliveries per workload")
	mail := flag.Int("mail", 5000, "messages per smtpd and sendq workload (against Postfix)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	binDir, err := filepath.Abs(*bin)
	if err != nil {
		log.Fatal(err)
	}
	var rows []row
	for _, size := range []int{4 << 10, 100 << 10} {
		msg := message(size)
		r := row{workload: fmt.Sprintf("deliver, one process per message, %d KiB", size>>10), peerName: "dovecot-lda"}
		r.postkit = postkitDeliver(filepath.Join(binDir, "deliver"), msg, *n)
		if _, err := os.Stat(dovecotLDA); err == nil {
			r.peer = dovecotDeliver(msg, *n)
		}
		rows = append(rows, r)
	}
	rows = append(rows, mailRows(binDir, *mail)...)
	fmt.Printf("\n%-46s %14s %14s %8s\n", "workload", "postkit/s", "peer/s", "ratio")
	for _, r := range rows {
		peer, ratio := "not installed", "-"
		if r.peer > 0 {
			peer = fmt.Sprintf("%.0f", r.peer)
			ratio = fmt.Sprintf("%.2fx", r.postkit/r.peer)
		}
		fmt.Printf("%-46s %14.0f %14s %8s  (peer: %s)\n", r.workload, r.postkit, peer, ratio, r.peerName)
	}
}

// message returns a plausible message of about size bytes with CRLF lines, as
// an MTA hands it over.
func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Bob <bob@example.net>\r\nTo: demo@example.org\r\nSubject: benchmark\r\n" +
		"Message-ID: <bench@example.net>\r\nDate: Sun, 22 Nov 2026 07:00:00 +0000\r\n\r\n")
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:76] + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func timeRuns(n int, run func() error) float64 {
	start := time.Now()
	for range n {
		if err := run(); err != nil {
			log.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func postkitDeliver(deliver string, msg []byte, n int) float64 {
	root, err := os.MkdirTemp("", "postkit-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.MkdirAll(filepath.Join(root, "etc"), 0o700)
	users := "demo@example.org:{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu5Pb1f1S1mNrQbQJZvY4E8mC5Ck3sNVu::::::\n"
	if err := os.WriteFile(filepath.Join(root, "etc", "users"), []byte(users), 0o600); err != nil {
		log.Fatal(err)
	}
	return timeRuns(n, func() error {
		cmd := exec.Command(deliver, "--root", root, "-f", "bob@example.net", "demo@example.org")
		cmd.Stdin = bytes.NewReader(msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("deliver: %v: %s", err, out)
		}
		return nil
	})
}

// dovecotDeliver runs a private Dovecot (only its auth service is used) from a
// configuration in a temporary directory, as Postfix's dovecot-lda transport
// would find it, and times dovecot-lda with its default mail_fsync=optimized.
func dovecotDeliver(msg []byte, n int) float64 {
	dir, err := os.MkdirTemp("", "dovecot-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	os.Chown(home, 65534, 65534)
	conf := filepath.Join(dir, "dovecot.conf")
	config := fmt.Sprintf(`base_dir = %[1]s/base
state_dir = %[1]s/base
protocols =
ssl = no
log_path = %[1]s/dovecot.log
first_valid_uid = 0
default_login_user = nobody
default_internal_user = root
mail_location = maildir:%[2]s/Maildir
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[2]s
}
passdb {
  driver = static
  args = nopassword=y
}
`, dir, home)
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		log.Fatal(err)
	}
	// Not CombinedOutput: the daemon keeps the pipe open and would block it.
	if err := exec.Command("/usr/sbin/dovecot", "-c", conf).Run(); err != nil {
		log.Fatalf("starting dovecot (see %s/dovecot.log): %v", dir, err)
	}
	defer exec.Command("/usr/sbin/dovecot", "-c", conf, "stop").Run()
	return timeRuns(n, func() error {
		cmd := exec.Command(dovecotLDA, "-c", conf, "-d", "demo", "-f", "bob@example.net")
		cmd.Stdin = bytes.NewReader(msg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("dovecot-lda: %v: %s", err, out)
		}
		return nil
	})
}
