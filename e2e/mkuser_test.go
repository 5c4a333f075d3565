package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// mkuser runs the mkuser binary on root with stdin and returns its exit
// code, standard output and standard error.
func mkuser(t *testing.T, root, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(Bin(t, "mkuser"), append([]string{"--root", root}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "POSTKIT_ROOT=/nonexistent/should-not-be-used")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running mkuser %q: %v", args, err)
	return -1, "", ""
}

// mkuserOK runs mkuser and fails the test unless it exits 0.
func mkuserOK(t *testing.T, root, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := mkuser(t, root, stdin, args...)
	if code != 0 {
		t.Fatalf("mkuser %q exited %d: %s", args, code, errOut)
	}
	return out
}

// mkuserTree returns every file and directory under root with its mode and
// contents, except lock files (which the first writer leaves behind).
func mkuserTree(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || strings.HasSuffix(p, ".lock") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entry := info.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(b)
		}
		tree[strings.TrimPrefix(p, root)] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func mkuserRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var appPasswordRE = regexp.MustCompile(`^[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4}\n$`)

func TestMkuserAddWritesUsersAndMaildir(t *testing.T) {
	root := t.TempDir()
	if out := mkuserOK(t, root, "s3cret pass\n", "add", "Alice@Example.ORG"); out != "" {
		t.Errorf("add printed %q, want nothing", out)
	}
	users := mkuserRead(t, filepath.Join(root, "etc", "users"))
	if !regexp.MustCompile(`^alice@example\.org:\{BLF-CRYPT\}\$2y\$10\$[./A-Za-z0-9]{53}::::::\n$`).MatchString(users) {
		t.Errorf("etc/users = %q, want one line alice@example.org:{BLF-CRYPT}$2y$10$...::::::", users)
	}
	if info, _ := os.Stat(filepath.Join(root, "etc", "users")); info.Mode().Perm() != 0o640 {
		t.Errorf("etc/users mode = %v, want 0640", info.Mode().Perm())
	}
	md := filepath.Join(root, "mail", "example.org", "alice")
	for _, dir := range []string{"", ".Drafts", ".Sent", ".Trash", ".Junk", ".Archive"} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			info, err := os.Stat(filepath.Join(md, dir, sub))
			if err != nil || !info.IsDir() || info.Mode().Perm() != 0o700 {
				t.Errorf("%s/%s: %v, %v; want a 0700 directory", dir, sub, info, err)
			}
		}
		_, err := os.Stat(filepath.Join(md, dir, "maildirfolder"))
		if (err == nil) != (dir != "") {
			t.Errorf("maildirfolder in %q exists = %v, want %v", dir, err == nil, dir != "")
		}
	}
	entries, _ := os.ReadDir(md)
	if len(entries) != 8 {
		t.Errorf("Maildir has %d entries, want cur new tmp and 5 folders", len(entries))
	}
	if code, _, _ := mkuser(t, root, "s3cret pass\n", "check", "alice@example.org"); code != 0 {
		t.Errorf("check with the right password exited %d, want 0", code)
	}
	if code, _, _ := mkuser(t, root, "s3cret Pass\n", "check", "ALICE@example.org"); code != 1 {
		t.Errorf("check with a wrong password exited %d, want 1", code)
	}
}

func TestMkuserRandomAndPasswd(t *testing.T) {
	root := t.TempDir()
	pw := mkuserOK(t, root, "", "add", "--random", "bob@example.org")
	if !appPasswordRE.MatchString(pw) {
		t.Fatalf("add --random printed %q, want a generated password", pw)
	}
	if code, _, _ := mkuser(t, root, pw, "check", "bob@example.org"); code != 0 {
		t.Errorf("check with the --random password exited %d", code)
	}
	mkuserOK(t, root, "new one\n", "passwd", "bob@example.org")
	if code, _, _ := mkuser(t, root, "new one\n", "check", "bob@example.org"); code != 0 {
		t.Errorf("check with the new password exited %d", code)
	}
	if code, _, _ := mkuser(t, root, pw, "check", "bob@example.org"); code != 1 {
		t.Errorf("check with the old password exited %d, want 1", code)
	}
	pw2 := mkuserOK(t, root, "", "passwd", "--random", "bob@example.org")
	if !appPasswordRE.MatchString(pw2) || pw2 == pw {
		t.Errorf("passwd --random printed %q", pw2)
	}
	if code, _, _ := mkuser(t, root, pw2, "check", "bob@example.org"); code != 0 {
		t.Errorf("check with the passwd --random password exited %d", code)
	}
}

func TestMkuserListAndDelete(t *testing.T) {
	root := t.TempDir()
	for _, a := range []string{"carol@example.net", "alice@example.org", "bob@example.org"} {
		mkuserOK(t, root, "pw\n", "add", a)
	}
	if out := mkuserOK(t, root, "", "list"); out != "alice@example.org\nbob@example.org\ncarol@example.net\n" {
		t.Errorf("list = %q", out)
	}
	if out := mkuserOK(t, root, "", "list", "example.net"); out != "carol@example.net\n" {
		t.Errorf("list example.net = %q", out)
	}
	mkuserOK(t, root, "", "alias", "add", "sales@example.org", "bob@example.org")
	mkuserOK(t, root, "", "app-password", "add", "bob@example.org", "phone")
	md := filepath.Join(root, "mail", "example.org", "bob")
	_, _, errOut := mkuser(t, root, "", "del", "bob@example.org")
	if !strings.Contains(errOut, "alias sales@example.org still points to bob@example.org") {
		t.Errorf("del did not warn about the alias: %q", errOut)
	}
	if _, err := os.Stat(filepath.Join(md, ".Sent", "cur")); err != nil {
		t.Errorf("del without --purge removed the Maildir: %v", err)
	}
	if out := mkuserOK(t, root, "", "list", "example.org"); out != "alice@example.org\n" {
		t.Errorf("list after del = %q", out)
	}
	if got := mkuserRead(t, filepath.Join(root, "etc", "app-passwords")); got != "" {
		t.Errorf("app-passwords after del = %q, want empty", got)
	}
	mkuserOK(t, root, "", "del", "--purge", "alice@example.org")
	if _, err := os.Stat(filepath.Join(root, "mail", "example.org", "alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("del --purge left the Maildir: %v", err)
	}
	if got := mkuserRead(t, filepath.Join(root, "etc", "users")); !strings.HasPrefix(got, "carol@example.net:") || strings.Count(got, "\n") != 1 {
		t.Errorf("etc/users after deletes = %q, want only carol", got)
	}
}

func TestMkuserAliases(t *testing.T) {
	root := t.TempDir()
	mkuserOK(t, root, "pw\n", "add", "alice@example.org")
	mkuserOK(t, root, "pw\n", "add", "bob@example.org")
	mkuserOK(t, root, "", "alias", "add", "sales@example.org", "alice@example.org", "partner@remote.example")
	mkuserOK(t, root, "", "alias", "add", "Sales@example.org", "bob@example.org")
	mkuserOK(t, root, "", "alias", "add", "@example.org", "alice@example.org")
	mkuserOK(t, root, "", "alias", "add", "postmaster@example.net", "alice@example.org")
	want := "sales@example.org: alice@example.org, partner@remote.example, bob@example.org\n" +
		"@example.org: alice@example.org\n" +
		"postmaster@example.net: alice@example.org\n"
	if got := mkuserRead(t, filepath.Join(root, "etc", "aliases")); got != want {
		t.Errorf("etc/aliases =\n%s\nwant\n%s", got, want)
	}
	if out := mkuserOK(t, root, "", "alias", "list", "example.org"); out != "@example.org: alice@example.org\n"+
		"sales@example.org: alice@example.org, partner@remote.example, bob@example.org\n" {
		t.Errorf("alias list example.org = %q", out)
	}
	mkuserOK(t, root, "", "alias", "del", "sales@example.org", "partner@remote.example")
	mkuserOK(t, root, "", "alias", "del", "@example.org")
	if out := mkuserOK(t, root, "", "alias", "list"); out != "postmaster@example.net: alice@example.org\n"+
		"sales@example.org: alice@example.org, bob@example.org\n" {
		t.Errorf("alias list after deletes = %q", out)
	}
}

func TestMkuserAppPasswords(t *testing.T) {
	root := t.TempDir()
	mkuserOK(t, root, "main pw\n", "add", "alice@example.org")
	phone := mkuserOK(t, root, "", "app-password", "add", "alice@example.org", "phone")
	laptop := mkuserOK(t, root, "", "app-password", "add", "alice@example.org", "my laptop")
	if !appPasswordRE.MatchString(phone) || !appPasswordRE.MatchString(laptop) || phone == laptop {
		t.Fatalf("app-password add printed %q and %q", phone, laptop)
	}
	line := regexp.MustCompile(`^alice@example\.org:\{BLF-CRYPT\}\$2y\$10\$[./A-Za-z0-9]{53}:phone:[0-9]+\n`)
	if got := mkuserRead(t, filepath.Join(root, "etc", "app-passwords")); !line.MatchString(got) || strings.Contains(got, strings.TrimSpace(phone)) {
		t.Errorf("etc/app-passwords = %q, want hashed lines address:hash:label:time", got)
	}
	list := mkuserOK(t, root, "", "app-password", "list", "alice@example.org")
	if !regexp.MustCompile(`^phone\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nmy laptop\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$`).MatchString(list) {
		t.Errorf("app-password list = %q", list)
	}
	for _, pw := range []string{"main pw\n", phone, laptop} {
		if code, _, errOut := mkuser(t, root, pw, "check", "alice@example.org"); code != 0 {
			t.Errorf("check %q exited %d: %s", pw, code, errOut)
		}
	}
	mkuserOK(t, root, "", "app-password", "revoke", "alice@example.org", "phone")
	if code, _, _ := mkuser(t, root, phone, "check", "alice@example.org"); code != 1 {
		t.Errorf("check with a revoked app password exited %d, want 1", code)
	}
	if code, _, _ := mkuser(t, root, laptop, "check", "alice@example.org"); code != 0 {
		t.Errorf("check with the remaining app password exited %d, want 0", code)
	}
}

// TestMkuserErrorsChangeNothing runs every refused command on a populated
// root and checks its exit code, its one-line message and that no file
// changed.
func TestMkuserErrorsChangeNothing(t *testing.T) {
	root := t.TempDir()
	mkuserOK(t, root, "pw\n", "add", "alice@example.org")
	mkuserOK(t, root, "", "alias", "add", "sales@example.org", "alice@example.org")
	mkuserOK(t, root, "", "app-password", "add", "alice@example.org", "phone")
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
	}{
		{"no command", "", nil, 64},
		{"unknown command", "", []string{"frobnicate"}, 64},
		{"unknown alias subcommand", "", []string{"alias", "frob"}, 64},
		{"missing argument", "", []string{"add"}, 64},
		{"extra argument", "pw\n", []string{"add", "bob@example.org", "extra"}, 64},
		{"flag after argument", "", []string{"add", "bob@example.org", "--random"}, 64},
		{"unknown flag", "", []string{"add", "--bogus", "bob@example.org"}, 64},
		{"bad address", "pw\n", []string{"add", "bob smith@example.org"}, 65},
		{"no domain", "pw\n", []string{"add", "bob"}, 65},
		{"path in domain", "pw\n", []string{"add", "bob@../../etc"}, 65},
		{"empty password", "\n", []string{"add", "bob@example.org"}, 65},
		{"no password at all", "", []string{"add", "bob@example.org"}, 65},
		{"duplicate user", "pw\n", []string{"add", "ALICE@example.org"}, 73},
		{"user named like an alias", "pw\n", []string{"add", "sales@example.org"}, 73},
		{"passwd unknown user", "pw\n", []string{"passwd", "bob@example.org"}, 67},
		{"passwd empty password", "\n", []string{"passwd", "alice@example.org"}, 65},
		{"del unknown user", "", []string{"del", "bob@example.org"}, 67},
		{"check unknown user", "pw\n", []string{"check", "bob@example.org"}, 67},
		{"list bad domain", "", []string{"list", "not a domain"}, 65},
		{"alias to unknown local user", "", []string{"alias", "add", "info@example.org", "bob@example.org"}, 67},
		{"alias to itself", "", []string{"alias", "add", "info@example.org", "info@example.org"}, 65},
		{"alias named like a user", "", []string{"alias", "add", "alice@example.org", "x@remote.example"}, 73},
		{"alias bad target", "", []string{"alias", "add", "info@example.org", "nobody"}, 65},
		{"alias without target", "", []string{"alias", "add", "info@example.org"}, 64},
		{"alias del unknown", "", []string{"alias", "del", "info@example.org"}, 67},
		{"alias del unknown target", "", []string{"alias", "del", "sales@example.org", "bob@example.org"}, 67},
		{"app-password duplicate label", "", []string{"app-password", "add", "alice@example.org", "phone"}, 73},
		{"app-password bad label", "", []string{"app-password", "add", "alice@example.org", "a:b"}, 65},
		{"app-password unknown user", "", []string{"app-password", "add", "bob@example.org", "phone"}, 67},
		{"app-password list unknown user", "", []string{"app-password", "list", "bob@example.org"}, 67},
		{"app-password revoke unknown label", "", []string{"app-password", "revoke", "alice@example.org", "laptop"}, 67},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mkuserTree(t, root)
			code, out, errOut := mkuser(t, root, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("mkuser %q exited %d, want %d; stderr %q", tc.args, code, tc.code, errOut)
			}
			if tc.code != 64 || len(tc.args) > 0 {
				if lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(errOut, "mkuser: ") {
					t.Errorf("mkuser %q stderr = %q, want one line starting mkuser:", tc.args, errOut)
				}
				if out != "" {
					t.Errorf("mkuser %q printed %q on stdout", tc.args, out)
				}
			}
			if after := mkuserTree(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("mkuser %q changed the root:\nbefore %q\nafter  %q", tc.args, before, after)
			}
		})
	}
}

func TestMkuserMalformedUsersFile(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o700)
	os.WriteFile(filepath.Join(root, "etc", "users"), []byte("# ok\nno colon here\n"), 0o640)
	before := mkuserTree(t, root)
	code, _, errOut := mkuser(t, root, "pw\n", "add", "bob@example.org")
	if code != 78 || !strings.Contains(errOut, "users:2:") {
		t.Errorf("add with a malformed etc/users exited %d with %q, want 78 naming users:2", code, errOut)
	}
	if after := mkuserTree(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("add with a malformed etc/users changed the root")
	}
}

func TestMkuserRootFromEnvironment(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(Bin(t, "mkuser"), "add", "--random", "env@example.org")
	cmd.Env = append(os.Environ(), "POSTKIT_ROOT="+root)
	if out, err := cmd.Output(); err != nil || !appPasswordRE.Match(out) {
		t.Fatalf("mkuser add with POSTKIT_ROOT = %q, %v", out, err)
	}
	if got := mkuserRead(t, filepath.Join(root, "etc", "users")); !strings.HasPrefix(got, "env@example.org:") {
		t.Errorf("etc/users = %q", got)
	}
}
