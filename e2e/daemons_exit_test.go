package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// smtpd, pop3d and imapd share one command-line policy (inetd.Main): usage
// errors exit 64 with a message saying what to give, configuration errors 78.
func TestDaemonsExitCodes(t *testing.T) {
	root := t.TempDir()
	cert := filepath.Join(root, "only-cert.pem")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"smtpd", "pop3d", "imapd"} {
		for _, tc := range []struct {
			what string
			args []string
			want int
			says string
		}{
			{"nothing to serve", []string{"--root", root}, 64, "--listen"},
			{"stray argument", []string{"--root", root, "--listen", "127.0.0.1:0", "extra"}, 64, "unexpected argument"},
			{"unknown flag", []string{"--root", root, "--no-such-flag"}, 64, "no-such-flag"},
			{"bad certificate", []string{"--root", root, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", cert}, 78, ""},
		} {
			t.Run(name+"/"+tc.what, func(t *testing.T) {
				cmd := exec.Command(Bin(t, name), tc.args...)
				// Standard input is not a socket: no inetd mode.
				cmd.Stdin = strings.NewReader("")
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != tc.want {
					t.Fatalf("%s %v: %v, want exit %d; output %q", name, tc.args, err, tc.want, out)
				}
				said := false
				for _, line := range strings.Split(string(out), "\n") {
					said = said || strings.HasPrefix(line, name+": ") && strings.Contains(line, tc.says)
				}
				if !said {
					t.Errorf("%s %v said %q; want a line starting %q that mentions %q", name, tc.args, out, name+": ", tc.says)
				}
			})
		}
	}
}
