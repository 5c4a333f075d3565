package inetd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"testing"
)

func TestDropPrivilegesRefusals(t *testing.T) {
	uidBefore, gidBefore := os.Getuid(), os.Getgid()
	tests := []struct {
		name, user, wantErr string
	}{
		{"unknown user", "no-such-user-inetd-test", "--user"},
		{"root", "root", "refusing to run as root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DropPrivileges(tt.user)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DropPrivileges(%q) = %v, want an error containing %q", tt.user, err, tt.wantErr)
			}
		})
	}
	if os.Getuid() != uidBefore || os.Getgid() != gidBefore {
		t.Errorf("a refused DropPrivileges changed uid/gid from %d/%d to %d/%d", uidBefore, gidBefore, os.Getuid(), os.Getgid())
	}
}

// TestDropPrivileges switches a child process (this test binary, see
// TestMain) to nobody and checks every id, that it cannot get root back, and
// that as non-root DropPrivileges is a no-op for the same user and an error
// for another.
func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("DropPrivileges needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropUserEnv+"=nobody")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		got[k] = v
	}
	want := map[string]string{
		"drop":   "nil",
		"uids":   fmt.Sprintf("%s,%s,%s", nobody.Uid, nobody.Uid, nobody.Uid),
		"gids":   fmt.Sprintf("%s,%s,%s", nobody.Gid, nobody.Gid, nobody.Gid),
		"groups": fmt.Sprintf("[%s]", nobody.Gid),
		"again":  "nil",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("child after DropPrivileges(nobody): %s = %q, want %q", k, got[k], w)
		}
	}
	wantErrs := map[string]string{
		"root":    "refusing to run as root",
		"setuid0": "operation not permitted",
	}
	if _, err := user.Lookup("daemon"); err == nil {
		wantErrs["daemon"] = "only root can switch"
	}
	for k, wantErr := range wantErrs {
		if !strings.Contains(got[k], wantErr) {
			t.Errorf("child after DropPrivileges(nobody): %s = %q, want an error containing %q", k, got[k], wantErr)
		}
	}
	if !strings.Contains(stderr.String(), "inetd: privileges=dropped user=nobody uid="+nobody.Uid) {
		t.Errorf("child log = %q, want the switch logged", stderr.String())
	}
}
