package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
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

// instExpected is the tree `make install DESTDIR=D` (PREFIX /usr/local)
// lays out under D: path, then the mode or "-> TARGET" for a symbolic link,
// then an optional condition: "cmd:NAME" (installed once cmd/NAME exists)
// or "man:FILE" (once man/FILE exists). Every directory is 0755.
const instExpected = `
usr/local/lib/systemd/system/postkit-imap-accept.socket 0644
usr/local/lib/systemd/system/postkit-imap-accept@.service 0644
usr/local/lib/systemd/system/postkit-imap.service 0644
usr/local/lib/systemd/system/postkit-imap.socket 0644
usr/local/lib/systemd/system/postkit-imaps-accept.socket 0644
usr/local/lib/systemd/system/postkit-imaps-accept@.service 0644
usr/local/lib/systemd/system/postkit-imaps.service 0644
usr/local/lib/systemd/system/postkit-imaps.socket 0644
usr/local/lib/systemd/system/postkit-pop3-accept.socket 0644
usr/local/lib/systemd/system/postkit-pop3-accept@.service 0644
usr/local/lib/systemd/system/postkit-pop3.service 0644
usr/local/lib/systemd/system/postkit-pop3.socket 0644
usr/local/lib/systemd/system/postkit-pop3s-accept.socket 0644
usr/local/lib/systemd/system/postkit-pop3s-accept@.service 0644
usr/local/lib/systemd/system/postkit-pop3s.service 0644
usr/local/lib/systemd/system/postkit-pop3s.socket 0644
usr/local/lib/systemd/system/postkit-sendq.service 0644
usr/local/lib/systemd/system/postkit-smtp-accept.socket 0644
usr/local/lib/systemd/system/postkit-smtp-accept@.service 0644
usr/local/lib/systemd/system/postkit-smtp.service 0644
usr/local/lib/systemd/system/postkit-smtp.socket 0644
usr/local/lib/systemd/system/postkit-submission-accept.socket 0644
usr/local/lib/systemd/system/postkit-submission-accept@.service 0644
usr/local/lib/systemd/system/postkit-submission.service 0644
usr/local/lib/systemd/system/postkit-submission.socket 0644
usr/local/lib/systemd/system/postkit-submissions-accept.socket 0644
usr/local/lib/systemd/system/postkit-submissions-accept@.service 0644
usr/local/lib/systemd/system/postkit-submissions.service 0644
usr/local/lib/systemd/system/postkit-submissions.socket 0644
usr/local/sbin/deliver 0755 cmd:deliver
usr/local/sbin/imapd 0755 cmd:imapd
usr/local/sbin/mailq -> sendq
usr/local/sbin/mkuser 0755 cmd:mkuser
usr/local/sbin/pop3d 0755 cmd:pop3d
usr/local/sbin/postkit-setup 0755
usr/local/sbin/sendmail -> sendq
usr/local/sbin/sendq 0755 cmd:sendq
usr/local/sbin/smtpd 0755 cmd:smtpd
usr/local/share/doc/postkit/examples/etc/aliases 0644
usr/local/share/doc/postkit/examples/etc/concurrency 0644
usr/local/share/doc/postkit/examples/etc/concurrency-per-destination 0644
usr/local/share/doc/postkit/examples/etc/delay-warning 0644
usr/local/share/doc/postkit/examples/etc/hostname 0644
usr/local/share/doc/postkit/examples/etc/queue-lifetime 0644
usr/local/share/doc/postkit/examples/etc/recipient-limit 0644
usr/local/share/doc/postkit/examples/etc/relay-clients 0644
usr/local/share/doc/postkit/examples/etc/retry-max 0644
usr/local/share/doc/postkit/examples/etc/retry-min 0644
usr/local/share/doc/postkit/examples/etc/routes 0644
usr/local/share/doc/postkit/examples/etc/size-limit 0644
usr/local/share/doc/postkit/examples/inetd.conf 0644
usr/local/share/doc/postkit/examples/tcpserver/postkit-imap/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-imaps/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-pop3/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-pop3s/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-smtp/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-submission/run 0755
usr/local/share/doc/postkit/examples/tcpserver/postkit-submissions/run 0755
usr/local/share/doc/postkit/examples/xinetd.d/postkit-imap 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-imaps 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-pop3 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-pop3s 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-smtp 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-submission 0644
usr/local/share/doc/postkit/examples/xinetd.d/postkit-submissions 0644
usr/local/share/man/man5/postkit-aliases.5 0644
usr/local/share/man/man5/postkit-control.5 0644
usr/local/share/man/man5/postkit-spool.5 0644
usr/local/share/man/man5/postkit-users.5 0644
usr/local/share/man/man7/postkit.7 0644
usr/local/share/man/man8/deliver.8 0644 man:deliver.8
usr/local/share/man/man8/imapd.8 0644 man:imapd.8
usr/local/share/man/man8/mkuser.8 0644 man:mkuser.8
usr/local/share/man/man8/pop3d.8 0644 man:pop3d.8
usr/local/share/man/man8/postkit-setup.8 0644
usr/local/share/man/man8/sendq.8 0644 man:sendq.8
usr/local/share/man/man8/smtpd.8 0644 man:smtpd.8
`

var (
	instOnce sync.Once
	instDir  string
	instErr  error
)

// instMake runs make in the module root with the given arguments.
func instMake(args ...string) error {
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = moduleRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// instInstall runs `make install DESTDIR=DIR` (default PREFIX, /usr/local)
// once per test run and returns DIR. Tests must not change DIR.
func instInstall(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	instOnce.Do(func() {
		instDir = filepath.Join(binDir, "install")
		instErr = instMake("install", "DESTDIR="+instDir)
	})
	if instErr != nil {
		t.Fatal(instErr)
	}
	return instDir
}

// instTree lists every file and link under dir as "path mode" or
// "path -> target", and reports directories whose mode is not 0755.
func instTree(t *testing.T, dir string) []string {
	t.Helper()
	var tree []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if info.Mode().Perm() != 0o755 {
				t.Errorf("directory %s has mode %04o, want 0755", rel, info.Mode().Perm())
			}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			tree = append(tree, rel+" -> "+target)
		default:
			tree = append(tree, fmt.Sprintf("%s %04o", rel, info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tree)
	return tree
}

func instExists(path string) bool {
	_, err := os.Stat(filepath.Join(moduleRoot(), path))
	return err == nil
}

// TestInstallTree checks that make install lays out exactly instExpected:
// nothing missing, nothing more, modes and links as listed.
func TestInstallTree(t *testing.T) {
	dir := instInstall(t)
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(instExpected), "\n") {
		f := strings.Fields(line)
		entry := strings.Join(f[:2], " ")
		if f[1] == "->" {
			entry, f = strings.Join(f[:3], " "), f[1:]
		}
		if len(f) == 3 {
			kind, name, _ := strings.Cut(f[2], ":")
			src := map[string]string{"cmd": "cmd/" + name, "man": "man/" + name}[kind]
			if !instExists(src) {
				t.Logf("%s not installed: %s does not exist yet", f[0], src)
				continue
			}
		}
		want = append(want, entry)
	}
	// A page someone adds to man/ is installed too; the list above holds
	// the ones that must be there.
	pages, _ := filepath.Glob(filepath.Join(moduleRoot(), "man", "*.[578]"))
	for _, p := range pages {
		name := filepath.Base(p)
		entry := fmt.Sprintf("usr/local/share/man/man%s/%s 0644", name[len(name)-1:], name)
		if !slices.Contains(want, entry) {
			t.Logf("also installed: %s", entry)
			want = append(want, entry)
		}
	}
	slices.Sort(want)
	got := instTree(t, dir)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("make install did not install %s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("make install installed %s, which is not expected", g)
		}
	}
	// The installed files are the sources, with PREFIX/sbin in paths.
	for _, pair := range [][2]string{
		{"scripts/systemd/postkit-smtp.service", "usr/local/lib/systemd/system/postkit-smtp.service"},
		{"inetd/examples/inetd.conf", "usr/local/share/doc/postkit/examples/inetd.conf"},
		{"inetd/examples/tcpserver/postkit-pop3/run", "usr/local/share/doc/postkit/examples/tcpserver/postkit-pop3/run"},
		{"etc-example/hostname", "usr/local/share/doc/postkit/examples/etc/hostname"},
		{"scripts/setup.sh", "usr/local/sbin/postkit-setup"},
		{"man/postkit.7", "usr/local/share/man/man7/postkit.7"},
	} {
		src, err := os.ReadFile(filepath.Join(moduleRoot(), pair[0]))
		if err != nil {
			t.Fatal(err)
		}
		inst, err := os.ReadFile(filepath.Join(dir, pair[1]))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(src, inst) {
			t.Errorf("installed %s differs from %s", pair[1], pair[0])
		}
	}
}

// TestInstallOtherPrefix installs with PREFIX=/usr and the units where
// Debian's own packages put them: every installed unit, inetd line, xinetd
// file and run script then names /usr/sbin, and nothing says /usr/local.
func TestInstallOtherPrefix(t *testing.T) {
	instInstall(t) // builds once, and skips without make
	dir := t.TempDir()
	if err := instMake("install", "DESTDIR="+dir, "PREFIX=/usr", "UNITDIR=/lib/systemd/system"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"usr/sbin/sendq", "usr/sbin/postkit-setup", "usr/share/man/man8/postkit-setup.8",
		"lib/systemd/system/postkit-sendq.service", "usr/share/doc/postkit/examples/inetd.conf"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("PREFIX=/usr: %v", err)
		}
	}
	checked := 0
	for _, pattern := range []string{"lib/systemd/system/*", "usr/share/doc/postkit/examples/inetd.conf",
		"usr/share/doc/postkit/examples/xinetd.d/*", "usr/share/doc/postkit/examples/tcpserver/*/run"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			if bytes.Contains(data, []byte("/usr/local")) {
				t.Errorf("%s still names /usr/local", f)
			}
			if !strings.HasSuffix(f, ".socket") && !bytes.Contains(data, []byte("/usr/sbin/")) {
				t.Errorf("%s names no program in /usr/sbin", f)
			}
		}
	}
	if checked != 29+1+7+7 {
		t.Errorf("checked %d installed units and examples, want 44", checked)
	}
	unit, _ := os.ReadFile(filepath.Join(dir, "lib/systemd/system/postkit-submissions.service"))
	if !bytes.Contains(unit, []byte("\nExecStart=/usr/sbin/smtpd --submission --tls-implicit\n")) {
		t.Errorf("postkit-submissions.service with PREFIX=/usr:\n%s", unit)
	}
}

// TestInstallExampleEtc runs smtpd and sendq on a root whose etc/ is the
// installed example: both accept every file, and the values mean what the
// comments say (127.0.0.1 may relay, sendq's defaults, the host name).
func TestInstallExampleEtc(t *testing.T) {
	inst := instInstall(t)
	examples := filepath.Join(inst, "usr/local/share/doc/postkit/examples/etc")
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "etc"), os.DirFS(examples)); err != nil {
		t.Fatal(err)
	}
	// postkit-control(5) describes each file under a tag of its FILES
	// section (".B name" or ".BR name1 \", \" name2").
	files, _ := manSectionText(manPageText(t, "postkit-control.5"), "FILES")
	lines := strings.Split(files, "\n")
	documented := map[string]bool{}
	for i, line := range lines {
		if line == ".TP" && i+1 < len(lines) {
			for _, name := range strings.FieldsFunc(manPlain(lines[i+1]), func(r rune) bool { return r == ' ' || r == ',' || r == '"' })[1:] {
				documented[name] = true
			}
		}
	}
	names, _ := os.ReadDir(examples)
	for _, n := range names {
		if !documented[n.Name()] {
			t.Errorf("example etc/%s is not described in postkit-control(5)", n.Name())
		}
	}

	if instExists("cmd/smtpd") {
		smtpd := unitStart(t, exec.Command(Bin(t, "smtpd"), "--root", root, "--listen", "127.0.0.1:0"))
		addr := smtpd.waitLine(t, regexp.MustCompile(`mode=listen addr=(\S+)`))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for _, step := range []struct{ send, want string }{
			{"", "220 mail.example.org "},
			{"HELO client.test", "250 "},
			{"MAIL FROM:<app@mail.example.org>", "250 "},
			{"RCPT TO:<someone@remote.example>", "250 "}, // relay-clients: 127.0.0.1
			{"QUIT", "221 "},
		} {
			if step.send != "" {
				fmt.Fprintf(c, "%s\r\n", step.send)
			}
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, step.want) {
				t.Errorf("smtpd with the example etc/: after %q got %q, %v; want %q...", step.send, line, err, step.want)
				break
			}
		}
	}
	if instExists("cmd/sendq") {
		sendq := unitStart(t, exec.Command(Bin(t, "sendq"), "--root", root, "run"))
		line := sendq.waitLine(t, regexp.MustCompile(`(event=start .*)`))
		for _, want := range []string{"hostname=mail.example.org", "concurrency=20", "per_destination=5"} {
			if !strings.Contains(line, want) {
				t.Errorf("sendq with the example etc/ logged %q, want %s", line, want)
			}
		}
	}
}

// setupRun runs scripts/setup.sh with args and returns its exit code and
// output.
func setupRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{filepath.Join(moduleRoot(), "scripts/setup.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "POSTKIT_ROOT=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// setupUser makes up a system user name that does not exist, and removes
// the user and group of that name when the test ends.
func setupUser(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"useradd", "groupadd", "userdel", "groupdel", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	name := fmt.Sprintf("pktest%d", os.Getpid()%1000000)
	if _, err := user.Lookup(name); err == nil {
		t.Fatalf("user %s exists already", name)
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
		if _, err := user.Lookup(name); err == nil {
			t.Errorf("could not remove the test user %s", name)
		}
	})
	return name
}

// setupBase makes a directory everyone may enter, for a root that
// unprivileged users must reach.
func setupBase(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "postkit-setup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

// setupSnapshot describes every file under root: mode, owner, group, inode,
// modification time and contents, so that two snapshots are equal only if
// nothing was touched.
func setupSnapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d ino=%d mtime=%d ctime=%d", info.Mode(), st.Uid, st.Gid, st.Ino,
			info.ModTime().UnixNano(), time.Unix(st.Ctim.Sec, st.Ctim.Nsec).UnixNano())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(data))
		}
		rel, _ := filepath.Rel(root, path)
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// setupModes returns "path mode owner:group" for every file under root.
func setupModes(t *testing.T, root string) []string {
	t.Helper()
	var modes []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, path)
		mode := uint32(info.Mode().Perm())
		if info.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		modes = append(modes, fmt.Sprintf("%s %04o %s:%s", rel, mode, setupName(st.Uid, user.LookupId), setupName(st.Gid, func(id string) (*user.User, error) {
			g, err := user.LookupGroupId(id)
			if err != nil {
				return nil, err
			}
			return &user.User{Username: g.Name}, nil
		})))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(modes)
	return modes
}

func setupName(id uint32, lookup func(string) (*user.User, error)) string {
	s := strconv.FormatUint(uint64(id), 10)
	if u, err := lookup(s); err == nil {
		return u.Username
	}
	return s
}

// setupAs runs a command as user name (with its groups) and reports
// whether it succeeded.
func setupAs(t *testing.T, name string, args ...string) bool {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed (util-linux)")
	}
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + name, "--regid=" + name, "--init-groups", "--"}, args...)...)
	return cmd.Run() == nil
}

func setupNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("postkit-setup creates a system user and gives files away: run the tests as root")
	}
}

// TestSetupScript runs postkit-setup on a new root: it creates the user,
// the directories and files with the documented owners and modes, and a
// certificate; a second run changes nothing at all; after mkuser (as root)
// and a control file added by hand, a third run gives them back to the
// daemons' user.
func TestSetupScript(t *testing.T) {
	setupNeedRoot(t)
	name := setupUser(t)
	root := filepath.Join(setupBase(t), "root")
	_, opensslErr := exec.LookPath("openssl")

	code, out := setupRun(t, "--root", root, "--user", name, "--hostname", "mail.example.test")
	if code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	for _, want := range []string{"created system user " + name, "Next steps", "mkuser add", "systemctl enable"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup output lacks %q:\n%s", want, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid == 0 || uid >= 1000 || u.Gid != g.Gid || u.HomeDir != root {
		t.Errorf("user %s: uid %s gid %s home %s; want a system uid, group %s (%s), home %s", name, u.Uid, u.Gid, u.HomeDir, name, g.Gid, root)
	}
	passwd, _ := exec.Command("getent", "passwd", name).Output()
	if !strings.HasSuffix(strings.TrimSpace(string(passwd)), "nologin") {
		t.Errorf("user %s can log in: %s", name, passwd)
	}

	want := []string{
		". 0755 root:root",
		"etc 0750 root:" + name,
		"etc/aliases 0640 root:" + name,
		"etc/app-passwords 0640 root:" + name,
		"etc/hostname 0640 root:" + name,
		"etc/tls 0750 root:" + name,
		"etc/tls/cert.pem 0644 root:" + name,
		"etc/tls/key.pem 0640 root:" + name,
		"etc/users 0640 root:" + name,
		"mail 0700 " + name + ":" + name,
		"spool 0711 " + name + ":" + name,
		"spool/maildrop 1733 " + name + ":" + name,
	}
	if opensslErr != nil {
		t.Log("openssl not installed: no certificate expected")
		want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "etc/tls/") })
	}
	if got := setupModes(t, root); !slices.Equal(got, want) {
		t.Errorf("after setup, the root holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(data) != "mail.example.test\n" {
		t.Errorf("etc/hostname = %q", data)
	}
	if opensslErr == nil {
		pair, err := tls.LoadX509KeyPair(filepath.Join(root, "etc/tls/cert.pem"), filepath.Join(root, "etc/tls/key.pem"))
		if err != nil {
			t.Fatalf("the certificate setup made does not load: %v", err)
		}
		if err := pair.Leaf.VerifyHostname("mail.example.test"); err != nil {
			t.Errorf("the certificate setup made: %v", err)
		}
		if !setupAs(t, name, "cat", filepath.Join(root, "etc/tls/key.pem")) {
			t.Errorf("user %s cannot read the TLS key", name)
		}
		if setupAs(t, "nobody", "cat", filepath.Join(root, "etc/tls/key.pem")) {
			t.Error("nobody can read the TLS key")
		}
	}
	if !setupAs(t, name, "sh", "-c", `test -r "$1/etc/users" && test -w "$1/mail" && test -w "$1/spool" && ! test -w "$1/etc"`, "sh", root) {
		t.Errorf("user %s cannot read etc/ and write mail/ and spool/, or can write etc/", name)
	}

	before := setupSnapshot(t, root)
	code, out = setupRun(t, "--root", root, "--user", name, "--hostname", "mail.example.test")
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second setup exited %d, output:\n%s", code, out)
	}
	after := setupSnapshot(t, root)
	for path, desc := range after {
		if before[path] != desc {
			t.Errorf("the second setup touched %s: was %s, is %s", path, before[path], desc)
		}
	}
	if len(after) != len(before) {
		t.Errorf("the second setup changed the number of files from %d to %d", len(before), len(after))
	}

	// Root's own changes, which the daemons could not read or write.
	if instExists("cmd/mkuser") {
		mk := exec.Command(Bin(t, "mkuser"), "--root", root, "add", "alice@example.test")
		mk.Stdin = strings.NewReader("secret\n")
		if out, err := mk.CombinedOutput(); err != nil {
			t.Fatalf("mkuser add: %v\n%s", err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/relay-clients"), []byte("127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dkim := filepath.Join(root, "etc/dkim/example.test")
	if err := os.MkdirAll(dkim, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dkim, "rsa.key"), []byte("key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = setupRun(t, "--root", root, "--user", name)
	if code != 0 || !strings.Contains(out, "relay-clients: now readable by group "+name) || !strings.Contains(out, "rsa.key: now readable by group "+name) {
		t.Errorf("third setup exited %d, output:\n%s", code, out)
	}
	for _, m := range setupModes(t, root) {
		f := strings.Fields(m)
		if (strings.HasPrefix(f[0], "mail/") || strings.HasPrefix(f[0], "spool/")) && f[2] != name+":"+name {
			t.Errorf("after the third setup: %s", m)
		}
	}
	for _, f := range []string{"etc/relay-clients", "etc/dkim/example.test/rsa.key"} {
		if !setupAs(t, name, "cat", filepath.Join(root, f)) {
			t.Errorf("user %s cannot read %s", name, f)
		}
		if setupAs(t, "nobody", "cat", filepath.Join(root, f)) {
			t.Errorf("nobody can read %s", f)
		}
	}
	if code, out = setupRun(t, "--root", root, "--user", name); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("fourth setup exited %d, output:\n%s", code, out)
	}
}

// TestSetupInstallsGivenCertificate gives setup a certificate and key: they
// are copied in with the documented modes, and given again they are left
// alone.
func TestSetupInstallsGivenCertificate(t *testing.T) {
	setupNeedRoot(t)
	name := setupUser(t)
	base := setupBase(t)
	root := filepath.Join(base, "root")
	certPEM, keyPEM, err := selfsigned.Generate([]string{"mail.example.test"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(base, "fullchain.pem"), filepath.Join(base, "privkey.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--root", root, "--user", name, "--hostname", "mail.example.test", "--tls-cert", cert, "--tls-key", key}
	if code, out := setupRun(t, args...); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode fs.FileMode
	}{{"cert.pem", certPEM, 0o644}, {"key.pem", keyPEM, 0o640}} {
		path := filepath.Join(root, "etc/tls", f.name)
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.data) {
			t.Errorf("%s is not the given file (%v)", path, err)
		}
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %04o (%v)", path, info.Mode(), f.mode, err)
		}
	}
	before := setupSnapshot(t, root)
	if code, out := setupRun(t, args...); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second setup exited %d:\n%s", code, out)
	}
	if after := setupSnapshot(t, root); !mapsEqual(before, after) {
		t.Error("setup given the same certificate again changed the root")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestSetupRefuses checks the usage errors, --no-user without the user,
// and a run as an ordinary user: each exits with its documented code and
// creates nothing.
func TestSetupRefuses(t *testing.T) {
	base := setupBase(t)
	root := filepath.Join(base, "root")
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown option", []string{"--root", root, "--bogus"}, 64},
		{"relative root", []string{"--root", "relative/root"}, 64},
		{"missing value", []string{"--root"}, 64},
		{"cert without key", []string{"--root", root, "--tls-cert", "/etc/hostname"}, 64},
		{"bad user name", []string{"--root", root, "--user", "Root;rm"}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := setupRun(t, tc.args...)
			if code != tc.code {
				t.Errorf("setup %v exited %d, want %d:\n%s", tc.args, code, tc.code, out)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		code, out := setupRun(t, "--help")
		if code != 0 || !strings.Contains(out, "--tls-cert FILE") {
			t.Errorf("setup --help exited %d:\n%s", code, out)
		}
	})
	t.Run("no-user without the user", func(t *testing.T) {
		setupNeedRoot(t)
		name := setupUser(t)
		code, out := setupRun(t, "--root", root, "--user", name, "--no-user")
		if code != 1 || !strings.Contains(out, "does not exist") {
			t.Errorf("setup --no-user exited %d:\n%s", code, out)
		}
	})
	t.Run("not root", func(t *testing.T) {
		setupNeedRoot(t)
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("setpriv not installed (util-linux)")
		}
		cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
			"sh", filepath.Join(moduleRoot(), "scripts/setup.sh"), "--root", root)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 77 {
			t.Errorf("setup as nobody: %v, want exit 77:\n%s", err, out)
		}
	})
	if _, err := os.Stat(root); err == nil {
		t.Errorf("a refused setup created %s", root)
	}
}

// TestSetupServesMail runs a server the way the README sets it up: setup,
// mkuser as root, then smtpd, sendq and pop3d started as the shipped units
// start them (ExecStart, socket activation) as the setup's user. mkuser and
// deliver run as root, sendmail run as root and as nobody (a user who can
// neither read etc/ nor enter the queue) while no queue runner runs, and
// broken drops in maildrop/: sendq, once started, delivers the mail and
// refuses the drops. A message sent over SMTP and one from sendmail while
// sendq runs arrive too. Every file in the Maildir belongs to the setup's
// user, and pop3d, running as that user, serves every message over TLS.
func TestSetupServesMail(t *testing.T) {
	setupNeedRoot(t)
	for _, tool := range []string{"systemd-socket-activate", "setpriv", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	for _, prog := range []string{"smtpd", "sendq", "pop3d", "mkuser"} {
		unitNeedProg(t, prog)
	}
	name := setupUser(t)
	root := filepath.Join(setupBase(t), "root")
	if code, out := setupRun(t, "--root", root, "--user", name, "--hostname", "mail.example.test"); code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}
	mk := exec.Command(Bin(t, "mkuser"), "--root", root, "add", "alice@example.test")
	mk.Stdin = strings.NewReader("secret\n")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkuser add: %v\n%s", err, out)
	}
	// mkuser, run as root, gave the new Maildir to the daemons' user:
	// setup has nothing to repair under mail/.
	if code, out := setupRun(t, "--root", root, "--user", name); code != 0 || strings.Contains(out, "gave ") {
		t.Errorf("setup after mkuser exited %d, repaired mail/:\n%s", code, out)
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	asUser := []string{"setpriv", "--reuid=" + name, "--regid=" + name, "--init-groups", "--"}
	asNobody := []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}
	run := func(argv []string, stdin string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	sendmail := func(as []string, subject string) {
		t.Helper()
		run(append(slices.Clone(as), Bin(t, "sendq"), "--root", root, "sendmail", "-i", "alice@example.test"),
			"Subject: "+subject+"\n\nhello\n")
	}
	// No queue runner runs yet: the admin delivers by hand, cron mails as
	// root, a user's job as nobody; and a user drops junk.
	run([]string{Bin(t, "deliver"), "--root", root, "alice@example.test"}, "Subject: deliver as root\n\nhello\n")
	sendmail(nil, "sendmail as root")
	sendmail(asNobody, "sendmail as nobody")
	maildrop := filepath.Join(root, "spool/maildrop")
	run(append(slices.Clone(asNobody), "sh", "-c", `printf 'postkit-envelope 1\nhold yes\n\nx\n' >"$1/0PQ3K7T2M1A4B5C6.0123456789abcdefghijklmnop" &&
		ln -s /etc/passwd "$1/0PQ3K7T2M1A4B5C6.abcdefghijklmnop0123456789" && ! ls "$1"`, "sh", maildrop), "")
	execStart := func(unit string) []string {
		argv := strings.Fields(unitParse(t, filepath.Join(unitDir(), unit)).get("Service", "ExecStart"))
		return append(append(slices.Clone(asUser), Bin(t, filepath.Base(argv[0]))), argv[1:]...)
	}
	activate := func(unit string) string {
		addr, _ := unitFreeAddr(t)
		args := append([]string{"-l", addr, "-E", "POSTKIT_ROOT=" + root}, execStart(unit)...)
		p := unitStart(t, exec.Command("systemd-socket-activate", args...))
		p.waitLine(t, regexp.MustCompile(`^Listening on `+regexp.QuoteMeta(addr)))
		return addr
	}
	sendq := exec.Command(execStart("postkit-sendq.service")[0], execStart("postkit-sendq.service")[1:]...)
	sendq.Env = append(os.Environ(), "POSTKIT_ROOT="+root)
	sendqProc := unitStart(t, sendq)
	sendqProc.waitLine(t, regexp.MustCompile(`event=start`))
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	sendqProc.waitLine(t, regexp.MustCompile(`event=pickup drop=\S+ uid=`+nobody.Uid+` id=\S+ status=queued`))
	for _, drop := range []string{"0PQ3K7T2M1A4B5C6.0123456789abcdefghijklmnop", "0PQ3K7T2M1A4B5C6.abcdefghijklmnop0123456789"} {
		sendqProc.waitLine(t, regexp.MustCompile(`event=pickup drop=`+drop+` uid=`+nobody.Uid+` status=refused`))
	}

	c, err := net.Dial("tcp", activate("postkit-smtp.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, step := range []struct{ send, want string }{
		{"", "220 "},
		{"HELO client.example", "250 "},
		{"MAIL FROM:<bob@remote.example>", "250 "},
		{"RCPT TO:<alice@example.test>", "250 "},
		{"DATA", "354 "},
		{"Subject: via postkit-setup\r\n\r\nhello\r\n.", "250 "},
		{"QUIT", "221 "},
	} {
		if step.send != "" {
			fmt.Fprintf(c, "%s\r\n", step.send)
		}
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, step.want) {
			t.Fatalf("SMTP: after %q got %q, %v; want %q...", step.send, line, err, step.want)
		}
	}

	// While sendq runs, a drop wakes it at once.
	sendmail(asNobody, "sendmail as nobody, sendq running")

	subjects := []string{"deliver as root", "sendmail as root", "sendmail as nobody", "via postkit-setup", "sendmail as nobody, sendq running"}
	newDir := filepath.Join(root, "mail/example.test/alice/new")
	deadline := time.Now().Add(60 * time.Second)
	var files []os.DirEntry
	for len(files) < len(subjects) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 60s, want %d", len(files), newDir, len(subjects))
		}
		time.Sleep(10 * time.Millisecond)
		files, _ = os.ReadDir(newDir)
	}
	u, _ := user.Lookup(name)
	err = filepath.WalkDir(filepath.Join(root, "mail"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if strconv.FormatUint(uint64(st.Uid), 10) != u.Uid || strconv.FormatUint(uint64(st.Gid), 10) != u.Gid {
			t.Errorf("%s belongs to %d:%d, want %s's", path, st.Uid, st.Gid, name)
		}
		if info.Mode().IsRegular() && info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", path, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(maildrop); err != nil || len(left) != 0 {
		t.Errorf("maildrop/ holds %v (%v), want nothing", left, err)
	}

	certPEM, err := os.ReadFile(filepath.Join(root, "etc/tls/cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	pc, err := tls.Dial("tcp", activate("postkit-pop3s.service"), &tls.Config{RootCAs: pool, ServerName: "mail.example.test"})
	if err != nil {
		t.Fatalf("POP3 over TLS with setup's certificate: %v", err)
	}
	defer pc.Close()
	pr := bufio.NewReader(pc)
	for _, step := range []struct{ send, want string }{
		{"", "+OK"},
		{"USER alice@example.test", "+OK"},
		{"PASS secret", "+OK"},
		{"STAT", fmt.Sprintf("+OK %d ", len(subjects))},
	} {
		if step.send != "" {
			fmt.Fprintf(pc, "%s\r\n", step.send)
		}
		pc.SetReadDeadline(time.Now().Add(60 * time.Second))
		line, err := pr.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, step.want) {
			t.Fatalf("POP3: after %q got %q, %v; want %q...", step.send, line, err, step.want)
		}
	}
	var all strings.Builder
	for i := 1; i <= len(subjects); i++ {
		fmt.Fprintf(pc, "RETR %d\r\n", i)
		var msg strings.Builder
		for {
			pc.SetReadDeadline(time.Now().Add(60 * time.Second))
			line, err := pr.ReadString('\n')
			if err != nil {
				t.Fatalf("POP3 RETR %d: %v after %q", i, err, msg.String())
			}
			if line == ".\r\n" {
				break
			}
			msg.WriteString(line)
		}
		if !strings.HasPrefix(msg.String(), "+OK") || !strings.HasSuffix(msg.String(), "\r\nhello\r\n") {
			t.Errorf("POP3 RETR %d =\n%s", i, msg.String())
		}
		all.WriteString(msg.String())
	}
	for _, subject := range subjects {
		if strings.Count(all.String(), "Subject: "+subject+"\r\n") != 1 {
			t.Errorf("POP3 served no message (or more than one) with subject %q:\n%s", subject, all.String())
		}
	}
	fmt.Fprintf(pc, "QUIT\r\n")
}
