package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ptyDriver runs argv[1:] on a pseudo-terminal, answers the "Password: " and
// "Again: " prompts with $PW1 and $PW2, prints everything the terminal showed
// and exits with the program's status.
const ptyDriver = `
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
def read_until(s):
    global out
    while s is None or s not in out:
        r, _, _ = select.select([fd], [], [], 10)
        if not r:
            sys.exit('timeout waiting for %r; terminal showed %r' % (s, out))
        try:
            data = os.read(fd, 1024)
        except OSError:
            data = b''
        if not data:
            if s is None:
                return
            sys.exit('end of output waiting for %r; terminal showed %r' % (s, out))
        out += data
read_until(b'Password: ')
os.write(fd, os.environ['PW1'].encode() + b'\n')
read_until(b'Again: ')
os.write(fd, os.environ['PW2'].encode() + b'\n')
read_until(None)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`

func runOnTerminal(t *testing.T, pw1, pw2 string, args ...string) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is needed to drive a pseudo-terminal")
	}
	cmd := exec.Command("python3", append([]string{"-c", ptyDriver}, args...)...)
	cmd.Env = append(cmd.Environ(), "PW1="+pw1, "PW2="+pw2)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// On a terminal, mkuser asks for the password twice and does not echo it.
func TestMkuserAsksPasswordTwiceOnTerminal(t *testing.T) {
	mkuser := Bin(t, "mkuser")
	root := t.TempDir()
	const pw = "correct-horse-battery"
	code, out := runOnTerminal(t, pw, pw, mkuser, "--root", root, "add", "alice@example.org")
	if code != 0 {
		t.Fatalf("mkuser add on a terminal: exit %d, terminal showed %q", code, out)
	}
	if strings.Contains(out, pw) {
		t.Errorf("the terminal echoed the password: %q", out)
	}
	check := exec.Command(mkuser, "--root", root, "check", "alice@example.org")
	check.Stdin = strings.NewReader(pw + "\n")
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("mkuser check with the typed password: %v %s", err, out)
	}

	code, out = runOnTerminal(t, "one-password", "another-one", mkuser, "--root", root, "add", "bob@example.org")
	if code != 65 {
		t.Errorf("mismatching passwords: exit %d (terminal %q), want 65", code, out)
	}
	if _, err := exec.Command("test", "-e", filepath.Join(root, "mail/example.org/bob")).CombinedOutput(); err == nil {
		t.Error("mismatching passwords still created bob's Maildir")
	}
	list, _ := exec.Command(mkuser, "--root", root, "list").CombinedOutput()
	if strings.Contains(string(list), "bob@") {
		t.Errorf("mismatching passwords still added bob: %s", list)
	}
}
