package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postkit/postkit/selfsigned"
)

// unitService is one network service postkit ships systemd units, an
// inetd.conf line, an xinetd file and a tcpserver run script for.
type unitService struct {
	name     string // postkit-NAME units, xinetd service, tcpserver directory
	inetd    string // the service's name in /etc/services, for inetd.conf
	port     int
	prog     string
	args     []string
	greeting string // prefix of the server's first line
	tls      bool   // implicit TLS from the first byte
}

var unitServices = []unitService{
	{"smtp", "smtp", 25, "smtpd", nil, "220 ", false},
	{"submission", "submission", 587, "smtpd", []string{"--submission"}, "220 ", false},
	{"submissions", "submissions", 465, "smtpd", []string{"--submission", "--tls-implicit"}, "220 ", true},
	{"pop3", "pop3", 110, "pop3d", nil, "+OK", false},
	{"pop3s", "pop3s", 995, "pop3d", []string{"--tls-implicit"}, "+OK", true},
	{"imap", "imap2", 143, "imapd", nil, "* OK", false},
	{"imaps", "imaps", 993, "imapd", []string{"--tls-implicit"}, "* OK", true},
}

// unitWritable is what each program may write (ReadWritePaths) and what it
// must not even see (InaccessiblePaths; "-" = ignored when missing).
var unitWritable = map[string][2]string{
	"smtpd": {"/var/lib/postkit/spool", "-/var/lib/postkit/mail"},
	"pop3d": {"/var/lib/postkit/mail", "-/var/lib/postkit/spool"},
	"imapd": {"/var/lib/postkit/mail", "-/var/lib/postkit/spool"},
	"sendq": {"/var/lib/postkit/spool /var/lib/postkit/mail", ""},
}

// unitHardening is the [Service] sandbox every postkit service has; keys
// given several times are joined with "|".
var unitHardening = map[string]string{
	"User":                    "postkit",
	"Group":                   "postkit",
	"UMask":                   "0077",
	"NoNewPrivileges":         "yes",
	"CapabilityBoundingSet":   "",
	"AmbientCapabilities":     "",
	"ProtectSystem":           "strict",
	"ProtectHome":             "yes",
	"PrivateTmp":              "yes",
	"PrivateDevices":          "yes",
	"PrivateIPC":              "yes",
	"PrivateMounts":           "yes",
	"ProtectHostname":         "yes",
	"ProtectClock":            "yes",
	"ProtectKernelTunables":   "yes",
	"ProtectKernelModules":    "yes",
	"ProtectKernelLogs":       "yes",
	"ProtectControlGroups":    "yes",
	"ProtectProc":             "invisible",
	"ProcSubset":              "pid",
	"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	"RestrictNamespaces":      "yes",
	"RestrictRealtime":        "yes",
	"RestrictSUIDSGID":        "yes",
	"LockPersonality":         "yes",
	"MemoryDenyWriteExecute":  "yes",
	"RemoveIPC":               "yes",
	"KeyringMode":             "private",
	"DevicePolicy":            "closed",
	"SystemCallArchitectures": "native",
	"SystemCallFilter":        "@system-service|~@privileged",
	"SystemCallErrorNumber":   "EPERM",
}

// unitFile is a parsed systemd unit: section, key, values in order.
type unitFile map[string]map[string][]string

func (u unitFile) get(section, key string) string {
	return strings.Join(u[section][key], "|")
}

// unitParse reads a unit file (no line continuations: ours have none).
func unitParse(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: cannot parse %q", path, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func unitDir() string { return filepath.Join(moduleRoot(), "scripts", "systemd") }

// TestUnitsShipped checks the unit files themselves: both forms for every
// service, the ports, Accept=, the programs and their arguments, the
// sandbox, and what each program may write.
func TestUnitsShipped(t *testing.T) {
	var want []string
	for _, s := range unitServices {
		want = append(want, "postkit-"+s.name+".socket", "postkit-"+s.name+".service",
			"postkit-"+s.name+"-accept.socket", "postkit-"+s.name+"-accept@.service")
	}
	want = append(want, "postkit-sendq.service")
	slices.Sort(want)
	entries, err := os.ReadDir(unitDir())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("scripts/systemd holds\n%v\nwant\n%v", got, want)
	}

	checkService := func(t *testing.T, u unitFile, prog string, args []string) {
		t.Helper()
		exec := strings.Join(append([]string{"/usr/local/sbin/" + prog}, args...), " ")
		if got := u.get("Service", "ExecStart"); got != exec {
			t.Errorf("ExecStart=%s, want %s", got, exec)
		}
		if got := u.get("Service", "Type"); got != "simple" {
			t.Errorf("Type=%s, want simple", got)
		}
		for k, v := range unitHardening {
			if got, ok := u["Service"][k]; !ok || strings.Join(got, "|") != v {
				t.Errorf("%s=%s, want %s=%s", k, strings.Join(got, "|"), k, v)
			}
		}
		w := unitWritable[prog]
		if got := u.get("Service", "ReadWritePaths"); got != w[0] {
			t.Errorf("ReadWritePaths=%s, want %s", got, w[0])
		}
		if got := u.get("Service", "InaccessiblePaths"); got != w[1] {
			t.Errorf("InaccessiblePaths=%s, want %s", got, w[1])
		}
		if prog == "smtpd" && u.get("Unit", "Wants") != "postkit-sendq.service" {
			t.Errorf("Wants=%s: smtpd's mail goes nowhere without postkit-sendq.service", u.get("Unit", "Wants"))
		}
		if u.get("Unit", "Documentation") != "man:"+prog+"(8) man:postkit(7)" {
			t.Errorf("Documentation=%s", u.get("Unit", "Documentation"))
		}
	}
	for _, s := range unitServices {
		t.Run(s.name, func(t *testing.T) {
			single, accept := "postkit-"+s.name, "postkit-"+s.name+"-accept"
			for _, sock := range []struct{ name, accept, other string }{{single, "no", accept}, {accept, "yes", single}} {
				u := unitParse(t, filepath.Join(unitDir(), sock.name+".socket"))
				if got := u.get("Socket", "ListenStream"); got != strconv.Itoa(s.port) {
					t.Errorf("%s.socket: ListenStream=%s, want %d", sock.name, got, s.port)
				}
				if got := u.get("Socket", "Accept"); got != sock.accept {
					t.Errorf("%s.socket: Accept=%s, want %s", sock.name, got, sock.accept)
				}
				if got := u.get("Unit", "Conflicts"); got != sock.other+".socket" {
					t.Errorf("%s.socket: Conflicts=%s, want %s.socket (both bind port %d)", sock.name, got, sock.other, s.port)
				}
				if got := u.get("Install", "WantedBy"); got != "sockets.target" {
					t.Errorf("%s.socket: WantedBy=%s", sock.name, got)
				}
			}
			if got := unitParse(t, filepath.Join(unitDir(), accept+".socket")).get("Socket", "MaxConnectionsPerSource"); got == "" {
				t.Errorf("%s.socket has no MaxConnectionsPerSource: one client could start any number of %s", accept, s.prog)
			}
			u := unitParse(t, filepath.Join(unitDir(), single+".service"))
			checkService(t, u, s.prog, s.args)
			if u.get("Unit", "Requires") != single+".socket" || u.get("Service", "Restart") != "on-failure" {
				t.Errorf("%s.service: Requires=%s Restart=%s", single, u.get("Unit", "Requires"), u.get("Service", "Restart"))
			}
			checkService(t, unitParse(t, filepath.Join(unitDir(), accept+"@.service")), s.prog, s.args)
		})
	}
	t.Run("sendq", func(t *testing.T) {
		u := unitParse(t, filepath.Join(unitDir(), "postkit-sendq.service"))
		checkService(t, u, "sendq", []string{"run"})
		if u.get("Service", "Restart") != "on-failure" || u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("postkit-sendq.service: Restart=%s WantedBy=%s", u.get("Service", "Restart"), u.get("Install", "WantedBy"))
		}
	})
}

// TestUnitsDocumentation checks that every manual page a unit names is
// shipped (a program's page once its cmd/ directory exists).
func TestUnitsDocumentation(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(unitDir(), "*"))
	missing := map[string][]string{}
	for _, f := range files {
		for _, doc := range strings.Fields(unitParse(t, f).get("Unit", "Documentation")) {
			m := regexp.MustCompile(`^man:([a-z0-9-]+)\(([1-8])\)$`).FindStringSubmatch(doc)
			if m == nil {
				t.Errorf("%s: Documentation=%s is not man:PAGE(SECTION)", f, doc)
				continue
			}
			if !instExists("man/"+m[1]+"."+m[2]) && m[2] == "8" && !instExists("cmd/"+m[1]) {
				t.Logf("%s names %s, whose program is not written yet", filepath.Base(f), doc)
			} else if !instExists("man/" + m[1] + "." + m[2]) {
				missing[m[1]+"."+m[2]] = append(missing[m[1]+"."+m[2]], filepath.Base(f))
			}
		}
	}
	for page, units := range missing {
		t.Errorf("man/%s does not exist; named by %d units (%s...)", page, len(units), units[0])
	}
}

// unitVerifyRoot makes a directory for systemd-analyze --root: the
// installed tree (hard links) plus this host's own units, which the
// installed ones depend on (sockets.target, sysinit.target...).
func unitVerifyRoot(t *testing.T) string {
	t.Helper()
	inst := instInstall(t)
	vroot := t.TempDir()
	err := filepath.WalkDir(inst, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(inst, path)
		dst := filepath.Join(vroot, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		if os.Link(path, dst) == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/lib/systemd/system", "/usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, "sockets.target")); err != nil {
			continue
		}
		dst := filepath.Join(vroot, "lib/systemd/system")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", dir+"/.", dst).CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v\n%s", dir, err, out)
		}
		return vroot
	}
	t.Skip("this host has no systemd units (sockets.target) for systemd-analyze to check against")
	return ""
}

// TestUnitsVerify runs systemd-analyze verify on every installed unit,
// with the installed binaries in place, and wants it silent; and
// systemd-analyze security, which must rate every service's exposure at
// 2.0 or better ("OK").
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (systemd)")
	}
	vroot := unitVerifyRoot(t)
	// Binaries not written yet would fail the ExecStart check; the install
	// test reports them, here a stand-in checks the units regardless.
	for _, prog := range []string{"smtpd", "pop3d", "imapd", "sendq"} {
		path := filepath.Join(vroot, "usr/local/sbin", prog)
		if _, err := os.Stat(path); err != nil {
			t.Logf("%s is not built yet: checking its units with a stand-in", prog)
			if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	unitsDir := filepath.Join(vroot, "usr/local/lib/systemd/system")
	entries, err := os.ReadDir(unitsDir)
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, e := range entries {
		units = append(units, e.Name())
	}
	verify := func(units ...string) (string, error) {
		args := append([]string{"verify", "--man=no", "--root=" + vroot}, units...)
		out, err := exec.Command(sa, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(units...); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", strings.Join(units, " "), err, out)
	}
	// The check can fail: a unit whose program is missing does.
	bad := "[Service]\nExecStart=/usr/local/sbin/no-such-program\n"
	if err := os.WriteFile(filepath.Join(unitsDir, "postkit-broken.service"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verify("postkit-broken.service"); err == nil && out == "" {
		t.Error("systemd-analyze verify accepts a unit whose program does not exist: the check above proves nothing")
	}

	security := func(unit string) (string, error) {
		out, err := exec.Command(sa, "security", "--offline=yes", "--root="+vroot, "--threshold=20", unit).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1], err
	}
	for _, u := range units {
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		name := strings.Replace(u, "@.", "@test.", 1)
		if last, err := security(name); err != nil {
			t.Errorf("systemd-analyze security %s: %v: %s", name, err, last)
		}
	}
	// And a service without a sandbox fails it.
	bare := "[Service]\nExecStart=/usr/local/sbin/sendq run\n"
	if err := os.WriteFile(filepath.Join(unitsDir, "postkit-bare.service"), []byte(bare), 0o644); err != nil {
		t.Fatal(err)
	}
	if last, err := security("postkit-bare.service"); err == nil {
		t.Errorf("systemd-analyze security passes a service without a sandbox (%s): the check above proves nothing", last)
	}
}

// unitProc is a program a test started, with its output lines.
type unitProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	more chan struct{}
	done chan struct{}
}

// unitStart starts cmd in its own process group, collecting standard output
// and error; when the test ends it stops the group (tcpserver and
// systemd-socket-activate leave children) and logs the output of a failed
// test.
func unitStart(t *testing.T, cmd *exec.Cmd) *unitProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &unitProc{cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		<-p.done
		r.Close()
		if t.Failed() {
			t.Logf("%s output:\n%s", strings.Join(cmd.Args, " "), strings.Join(p.lines(), "\n"))
		}
	})
	return p
}

func (p *unitProc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.out)
}

// waitLine waits for an output line matching re and returns its first
// submatch (or the whole match).
func (p *unitProc) waitLine(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		for _, l := range p.lines() {
			if m := re.FindStringSubmatch(l); m != nil {
				return m[len(m)-1]
			}
		}
		select {
		case <-p.more:
		case <-p.done:
			for _, l := range p.lines() {
				if m := re.FindStringSubmatch(l); m != nil {
					return m[len(m)-1]
				}
			}
			t.Fatalf("%s ended without a line matching %s", p.cmd.Path, re)
		case <-timeout:
			t.Fatalf("no line matching %s after 60s", re)
		}
	}
}

// unitRunAs is the account the tests run daemons as in place of postkit:
// nobody when the tests run as root (so that the daemons run unprivileged
// as the units have them), else the current user.
func unitRunAs(t *testing.T) (name string, uid, gid int) {
	t.Helper()
	u, err := user.Current()
	if os.Geteuid() == 0 {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return u.Username, uid, gid
}

// unitRoot makes a postkit root for greeting checks, owned by the account
// of unitRunAs and reachable by it, with a certificate for localhost.
func unitRoot(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	base, err := os.MkdirTemp("", "postkit-units-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, "root")
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"hostname": []byte("mail.example.test\n"), "tls/cert.pem": certPEM, "tls/key.pem": keyPEM} {
		path := filepath.Join(root, "etc", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"mail", "spool"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// The daemons run as unitRunAs and must reach the binaries too.
		if err := os.Chmod(binDir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, uid, gid := unitRunAs(t)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return root, pool
}

// unitGreeting connects to addr and checks the server's first line.
func unitGreeting(t *testing.T, addr string, s unitService, pool *x509.CertPool) {
	t.Helper()
	var c net.Conn
	var err error
	if s.tls {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 60 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, ServerName: "localhost"})
	} else {
		c, err = net.DialTimeout("tcp", addr, 60*time.Second)
	}
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, s.greeting) {
		t.Errorf("%s on %s greeted %q, %v; want %q...", s.name, addr, line, err, s.greeting)
	}
}

// unitFreeAddr returns a loopback address with a port nothing listens on.
func unitFreeAddr(t *testing.T) (string, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	return addr, port
}

// unitNeedProg skips when the program's cmd/ directory does not exist yet.
func unitNeedProg(t *testing.T, prog string) {
	t.Helper()
	if !instExists("cmd/" + prog) {
		t.Skipf("cmd/%s does not exist yet", prog)
	}
}

// TestUnitsSocketActivation runs every service the way its shipped units
// do, under systemd-socket-activate: the socket unit's ListenStream (mapped
// to a free loopback port) and Accept=, the service's ExecStart with the
// built program, and its User= (as unitRunAs, through setpriv, when the
// tests run as root). Each form must greet two clients in a row.
func TestUnitsSocketActivation(t *testing.T) {
	ssa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (systemd)")
	}
	var wrap []string
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("setpriv not installed (util-linux): cannot run as the units' User=")
		}
		_, uid, gid := unitRunAs(t)
		wrap = []string{"setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups", "--"}
	}
	root, pool := unitRoot(t)
	for _, s := range unitServices {
		for _, form := range []struct{ socket, service string }{
			{"postkit-" + s.name + ".socket", "postkit-" + s.name + ".service"},
			{"postkit-" + s.name + "-accept.socket", "postkit-" + s.name + "-accept@.service"},
		} {
			t.Run(form.service, func(t *testing.T) {
				sock := unitParse(t, filepath.Join(unitDir(), form.socket))
				svc := unitParse(t, filepath.Join(unitDir(), form.service))
				if got := sock.get("Socket", "ListenStream"); got != strconv.Itoa(s.port) {
					t.Fatalf("%s: ListenStream=%s", form.socket, got)
				}
				argv := strings.Fields(svc.get("Service", "ExecStart"))
				if len(argv) == 0 || argv[0] != "/usr/local/sbin/"+s.prog {
					t.Fatalf("%s: ExecStart=%s", form.service, svc.get("Service", "ExecStart"))
				}
				if svc.get("Service", "User") != "postkit" {
					t.Fatalf("%s: User=%s", form.service, svc.get("Service", "User"))
				}
				unitNeedProg(t, s.prog)
				addr, _ := unitFreeAddr(t)
				args := []string{"-l", addr, "-E", "POSTKIT_ROOT=" + root}
				if sock.get("Socket", "Accept") == "yes" {
					args = append(args, "--accept")
				}
				args = append(append(append(args, wrap...), Bin(t, s.prog)), argv[1:]...)
				p := unitStart(t, exec.Command(ssa, args...))
				p.waitLine(t, regexp.MustCompile(`^Listening on `+regexp.QuoteMeta(addr)))
				for range 2 {
					unitGreeting(t, addr, s, pool)
				}
			})
		}
	}
}

// unitInstalled rewrites a shipped file's /usr/local/sbin/PROG to the
// built binaries, as make install does for another PREFIX, and returns the
// new text.
func unitInstalled(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`/usr/local/sbin/([a-z0-9]+)`).ReplaceAllStringFunc(string(data), func(m string) string {
		prog := strings.TrimPrefix(m, "/usr/local/sbin/")
		if !instExists("cmd/" + prog) {
			return m
		}
		return Bin(t, prog)
	})
}

// TestUnitsTcpserverRunScripts runs each shipped daemontools run script as
// supervise would, with HOST, PORT and RUN_AS set for the test, and talks
// to it twice.
func TestUnitsTcpserverRunScripts(t *testing.T) {
	if _, err := exec.LookPath("tcpserver"); err != nil {
		t.Skip("tcpserver not installed (ucspi-tcp)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the run scripts switch users (tcpserver -u, -g), which needs root")
	}
	root, pool := unitRoot(t)
	runAs, _, _ := unitRunAs(t)
	for _, s := range unitServices {
		t.Run(s.name, func(t *testing.T) {
			src := filepath.Join(moduleRoot(), "inetd/examples/tcpserver/postkit-"+s.name+"/run")
			if info, err := os.Stat(src); err != nil || info.Mode().Perm()&0o111 == 0 {
				t.Fatalf("%s: missing or not executable (%v)", src, err)
			}
			orig, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf(`"${PORT:-%d}" /usr/local/sbin/%s`, s.port, strings.Join(append([]string{s.prog}, s.args...), " "))
			if !strings.HasSuffix(strings.TrimSpace(string(orig)), want) {
				t.Errorf("%s does not end with %s", src, want)
			}
			unitNeedProg(t, s.prog)
			script := unitInstalled(t, src)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "run"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			addr, port := unitFreeAddr(t)
			cmd := exec.Command("./run")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+port, "RUN_AS="+runAs, "POSTKIT_ROOT="+root)
			p := unitStart(t, cmd)
			p.waitLine(t, regexp.MustCompile(`^tcpserver: status: 0/100`))
			for range 2 {
				unitGreeting(t, addr, s, pool)
			}
		})
	}
}

// unitServicesPorts reads /etc/services: name or alias to TCP port.
func unitServicesPorts(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile("/etc/services")
	if err != nil {
		t.Skip("no /etc/services to check service names against")
	}
	ports := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(f[1], "/tcp") {
			continue
		}
		port, _ := strconv.Atoi(strings.TrimSuffix(f[1], "/tcp"))
		for _, name := range append([]string{f[0]}, f[2:]...) {
			ports[name] = port
		}
	}
	return ports
}

// unitInetdStyle serves argv the way inetd and xinetd do, with tcpserver:
// one process per connection as the given user, the connection on
// standard input, output and error (so a program that logged to stderr
// would corrupt the protocol), and greets two clients.
func unitInetdStyle(t *testing.T, s unitService, argv []string, root string, pool *x509.CertPool) {
	t.Helper()
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("tcpserver not installed (ucspi-tcp)")
	}
	_, uid, gid := unitRunAs(t)
	addr, port := unitFreeAddr(t)
	args := []string{"-v", "-R", "-H", "-l", "0", "-c", "10"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", strconv.Itoa(uid), "-g", strconv.Itoa(gid))
	}
	args = append(args, "127.0.0.1", port, "sh", "-c", `exec "$@" 2>&1`, "sh")
	cmd := exec.Command(tcpserver, append(args, argv...)...)
	cmd.Env = append(os.Environ(), "POSTKIT_ROOT="+root)
	p := unitStart(t, cmd)
	p.waitLine(t, regexp.MustCompile(`^tcpserver: status: 0/10`))
	for range 2 {
		unitGreeting(t, addr, s, pool)
	}
}

// TestUnitsInetdConf checks the shipped inetd.conf lines (service names
// known to /etc/services with the right ports, nowait, user postkit,
// programs and arguments) and serves each line's command inetd-style.
func TestUnitsInetdConf(t *testing.T) {
	ports := unitServicesPorts(t)
	root, pool := unitRoot(t)
	path := filepath.Join(moduleRoot(), "inetd/examples/inetd.conf")
	lines := map[string][]string{}
	for _, line := range strings.Split(unitInstalled(t, path), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if lines[f[0]] != nil {
			t.Errorf("inetd.conf names %s twice", f[0])
		}
		lines[f[0]] = f
	}
	if len(lines) != len(unitServices) {
		t.Errorf("inetd.conf has %d services, want %d", len(lines), len(unitServices))
	}
	for _, s := range unitServices {
		t.Run(s.name, func(t *testing.T) {
			f := lines[s.inetd]
			if f == nil {
				t.Fatalf("inetd.conf has no line for %s", s.inetd)
			}
			if ports[s.inetd] != s.port {
				t.Errorf("/etc/services gives %s port %d, want %d", s.inetd, ports[s.inetd], s.port)
			}
			if len(f) < 7 || f[1] != "stream" || f[2] != "tcp" || f[3] != "nowait" || f[4] != "postkit" || f[6] != s.prog {
				t.Fatalf("inetd.conf: %q, want %s stream tcp nowait postkit /usr/local/sbin/%s %s", f, s.inetd, s.prog, s.prog)
			}
			if !slices.Equal(f[7:], s.args) && !(len(f) == 7 && s.args == nil) {
				t.Errorf("inetd.conf %s: arguments %q, want %q", s.inetd, f[7:], s.args)
			}
			unitNeedProg(t, s.prog)
			if f[5] != Bin(t, s.prog) {
				t.Errorf("inetd.conf %s: program %s, want /usr/local/sbin/%s", s.inetd, f[5], s.prog)
			}
			unitInetdStyle(t, s, append([]string{f[5]}, f[7:]...), root, pool)
		})
	}
}

// TestUnitsXinetd checks the shipped xinetd.d files the same way.
func TestUnitsXinetd(t *testing.T) {
	ports := unitServicesPorts(t)
	root, pool := unitRoot(t)
	dir := filepath.Join(moduleRoot(), "inetd/examples/xinetd.d")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(unitServices) {
		t.Errorf("xinetd.d has %d files, want %d", len(entries), len(unitServices))
	}
	attr := regexp.MustCompile(`^\s*([a-z_]+)\s*=\s*(.*?)\s*$`)
	for _, s := range unitServices {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(dir, "postkit-"+s.name)
			text := unitInstalled(t, path)
			if !regexp.MustCompile(`(?m)^service ` + s.name + `\n\{\n(?:[^{}]*\n)\}\n*$`).MatchString(text) {
				t.Fatalf("%s is not one \"service %s { ... }\" block:\n%s", path, s.name, text)
			}
			if ports[s.name] != s.port {
				t.Errorf("/etc/services gives %s port %d, want %d", s.name, ports[s.name], s.port)
			}
			got := map[string]string{}
			for _, line := range strings.Split(text, "\n") {
				if m := attr.FindStringSubmatch(line); m != nil {
					got[m[1]] = m[2]
				}
			}
			want := map[string]string{
				"socket_type": "stream", "protocol": "tcp", "port": strconv.Itoa(s.port), "wait": "no",
				"user": "postkit", "group": "postkit", "disable": "no", "flags": "IPv6",
				"instances": "100", "per_source": "10",
				"server": "/usr/local/sbin/" + s.prog, "server_args": strings.Join(s.args, " "),
			}
			if instExists("cmd/" + s.prog) {
				want["server"] = Bin(t, s.prog)
			}
			if s.args == nil {
				delete(want, "server_args")
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: unexpected attribute %s = %s", path, k, got[k])
				}
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %s = %q, want %q", path, k, got[k], v)
				}
			}
			unitNeedProg(t, s.prog)
			unitInetdStyle(t, s, append([]string{got["server"]}, strings.Fields(got["server_args"])...), root, pool)
		})
	}
}
