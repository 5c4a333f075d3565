package accounts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/safefile"
	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
)

// snapshot returns every file under root with its contents ("" for
// directories), to show that a refused command changed nothing.
func snapshot(t *testing.T, root control.Root) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(string(root), func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			files[p] = ""
			return nil
		}
		if strings.HasSuffix(p, ".lock") {
			return nil // lock files appear on the first attempt to write
		}
		b, err := os.ReadFile(p)
		files[p] = "file:" + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func newRoot(t *testing.T) control.Root {
	t.Helper()
	root := control.Root(t.TempDir())
	if _, err := AddUser(root, "alice@example.org", "alice pw"); err != nil {
		t.Fatal(err)
	}
	return root
}

func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	if got := Code(err); got != code {
		t.Errorf("%s: error %v has code %d, want %d", what, err, got, code)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error %q is more than one line", what, err)
	}
}

func TestAddUser(t *testing.T) {
	root := control.Root(t.TempDir())
	res, err := AddUser(root, "Alice@EXAMPLE.org", "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := Added{Address: "alice@example.org", Maildir: filepath.Join(string(root), "mail", "example.org", "alice")}
	if res != want {
		t.Errorf("AddUser = %+v, want %+v", res, want)
	}
	data, _ := os.ReadFile(root.Etc("users"))
	if !strings.HasPrefix(string(data), "alice@example.org:{BLF-CRYPT}$2y$10$") || !strings.HasSuffix(string(data), "::::::\n") {
		t.Errorf("etc/users = %q, want alice@example.org:{BLF-CRYPT}$2y$10$...::::::", data)
	}
	for _, f := range append([]string{""}, Folders...) {
		dir := res.Maildir
		if f != "" {
			dir = filepath.Join(dir, "."+f)
			if _, err := os.Stat(filepath.Join(dir, "maildirfolder")); err != nil {
				t.Errorf("folder %s has no maildirfolder: %v", f, err)
			}
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if info, err := os.Stat(filepath.Join(dir, sub)); err != nil || !info.IsDir() {
				t.Errorf("%s/%s missing: %v", dir, sub, err)
			}
		}
	}
	if ok, err := Check(root, "alice@example.org", "pw"); !ok || err != nil {
		t.Errorf("Check(right password) = %v, %v", ok, err)
	}
}

func TestAddUserRefusals(t *testing.T) {
	root := newRoot(t)
	if _, err := AddAlias(root, "sales@example.org", []string{"alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	for _, tc := range []struct {
		name, addr, pw string
		code           int
	}{
		{"duplicate", "alice@example.org", "x", sysexits.CantCreat},
		{"duplicate in other case", "ALICE@Example.Org", "x", sysexits.CantCreat},
		{"alias of that name", "sales@example.org", "x", sysexits.CantCreat},
		{"empty password", "bob@example.org", "", sysexits.DataErr},
		{"password too long for bcrypt", "bob@example.org", strings.Repeat("x", 73), sysexits.DataErr},
		{"not an address", "bob", "x", sysexits.DataErr},
		{"two at signs", "bob@x@example.org", "x", sysexits.DataErr},
		{"subaddress", "bob+x@example.org", "x", sysexits.DataErr},
		{"dot first", ".bob@example.org", "x", sysexits.DataErr},
		{"quoted", `"bob smith"@example.org`, "x", sysexits.DataErr},
		{"address literal", "bob@[192.0.2.1]", "x", sysexits.DataErr},
		{"path escape in domain", "bob@../etc", "x", sysexits.DataErr},
	} {
		_, err := AddUser(root, tc.addr, tc.pw)
		wantCode(t, tc.name, err, tc.code)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("refused AddUser calls changed the root:\nbefore %q\nafter  %q", before, after)
	}
}

func TestAddUserMaildirFailureLeavesNothing(t *testing.T) {
	root := newRoot(t)
	// A file where the domain's directory should be: the Maildir cannot be made.
	os.WriteFile(filepath.Join(root.MailDir(), "example.net"), nil, 0o600)
	before := snapshot(t, root)
	_, err := AddUser(root, "bob@example.net", "pw")
	wantCode(t, "Maildir cannot be created", err, sysexits.CantCreat)
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("failed AddUser changed the root:\nbefore %q\nafter  %q", before, after)
	}
}

func TestSetPassword(t *testing.T) {
	root := newRoot(t)
	if err := SetPassword(root, "ALICE@example.org", "new pw"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Check(root, "alice@example.org", "new pw"); !ok {
		t.Errorf("new password does not work")
	}
	if ok, _ := Check(root, "alice@example.org", "alice pw"); ok {
		t.Errorf("old password still works")
	}
	before := snapshot(t, root)
	wantCode(t, "unknown user", SetPassword(root, "bob@example.org", "x"), sysexits.NoUser)
	wantCode(t, "empty password", SetPassword(root, "alice@example.org", ""), sysexits.DataErr)
	wantCode(t, "bad address", SetPassword(root, "a b@example.org", "x"), sysexits.DataErr)
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("refused SetPassword calls changed the root")
	}
}

func TestSetPasswordKeepsImportedFields(t *testing.T) {
	root := control.Root(t.TempDir())
	os.MkdirAll(filepath.Dir(root.Etc("users")), 0o700)
	src := "# from Dovecot\nCarol@Example.org:{PLAIN}old:1000:1000::/home/carol::userdb_quota_rule=*:storage=1G\n"
	os.WriteFile(root.Etc("users"), []byte(src), 0o640)
	ok, err := Check(root, "carol@example.org", "old")
	if ok || Code(err) != sysexits.DataErr || !strings.Contains(err.Error(), "mkuser passwd") {
		t.Errorf("Check(PLAIN hash) = %v, %v; want an error suggesting mkuser passwd", ok, err)
	}
	if err := SetPassword(root, "carol@example.org", "new"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(root.Etc("users"))
	lines := strings.Split(string(data), "\n")
	if lines[0] != "# from Dovecot" || !strings.HasPrefix(lines[1], "Carol@Example.org:{BLF-CRYPT}$2y$") ||
		!strings.HasSuffix(lines[1], ":1000:1000::/home/carol::userdb_quota_rule=*:storage=1G") {
		t.Errorf("etc/users after passwd = %q, want comment and other fields kept", data)
	}
	if ok, err := Check(root, "carol@example.org", "new"); !ok || err != nil {
		t.Errorf("Check(new) = %v, %v", ok, err)
	}
}

func TestDeleteUser(t *testing.T) {
	root := newRoot(t)
	if _, err := AddAppPassword(root, "alice@example.org", "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := AddAlias(root, "sales@example.org", []string{"alice@example.org", "x@remote.example"}); err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(root.MailDir(), "example.org", "alice")
	before := snapshot(t, root)
	_, err := DeleteUser(root, "bob@example.org", false)
	wantCode(t, "unknown user", err, sysexits.NoUser)
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("refused DeleteUser changed the root")
	}
	res, err := DeleteUser(root, "Alice@example.org", false)
	if err != nil {
		t.Fatal(err)
	}
	want := Deleted{Address: "alice@example.org", Maildir: maildir, AppPasswords: 1, Aliases: []string{"sales@example.org"}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("DeleteUser = %+v, want %+v", res, want)
	}
	if _, err := os.Stat(maildir); err != nil {
		t.Errorf("Maildir gone without purge: %v", err)
	}
	if data, _ := os.ReadFile(root.Etc("app-passwords")); len(data) != 0 {
		t.Errorf("app passwords left: %q", data)
	}
	// Adding the user again gives its mail back; purge removes it.
	res2, err := AddUser(root, "alice@example.org", "pw")
	if err != nil || !res2.Reused {
		t.Errorf("AddUser after delete = %+v, %v; want Reused", res2, err)
	}
	res, err = DeleteUser(root, "alice@example.org", true)
	if err != nil || !res.Purged {
		t.Fatalf("DeleteUser(purge) = %+v, %v", res, err)
	}
	if _, err := os.Stat(maildir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Maildir after purge: %v, want gone", err)
	}
}

func TestListUsers(t *testing.T) {
	root := newRoot(t)
	for _, a := range []string{"bob@example.net", "carol@xn--bcher-kva.example"} {
		if _, err := AddUser(root, a, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"", []string{"alice@example.org", "bob@example.net", "carol@xn--bcher-kva.example"}},
		{"EXAMPLE.net", []string{"bob@example.net"}},
		{"bücher.example", []string{"carol@xn--bcher-kva.example"}},
		{"example.com", nil},
	} {
		got, err := ListUsers(root, tc.domain)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListUsers(%q) = %q, %v; want %q", tc.domain, got, err, tc.want)
		}
	}
	_, err := ListUsers(root, "bad domain")
	wantCode(t, "bad domain", err, sysexits.DataErr)
}

func TestAliases(t *testing.T) {
	root := newRoot(t)
	if _, err := AddUser(root, "bob@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name, key string
		targets   []string
		code      int
	}{
		{"new alias, local and remote", "Sales@Example.org", []string{"alice@example.org", "Someone@Remote.Example"}, 0},
		{"add a target", "sales@example.org", []string{"bob@example.org"}, 0},
		{"subaddress of a user", "lists@example.org", []string{"alice+lists@example.org"}, 0},
		{"alias of an alias", "team@example.org", []string{"sales@example.org"}, 0},
		{"unknown local target", "info@example.org", []string{"carol@example.org"}, sysexits.NoUser},
		{"points to itself", "info@example.org", []string{"info@example.org"}, sysexits.DataErr},
		{"loop", "sales@example.org", []string{"team@example.org"}, sysexits.DataErr},
		{"is a user", "alice@example.org", []string{"x@remote.example"}, sysexits.CantCreat},
		{"bad key", "in fo@example.org", []string{"alice@example.org"}, sysexits.DataErr},
		{"bad target", "info@example.org", []string{"alice"}, sysexits.DataErr},
		{"no targets", "info@example.org", nil, sysexits.Usage},
		{"catch-all to unknown user of its domain", "@example.org", []string{"carol@example.org"}, sysexits.NoUser},
		{"catch-all", "@EXAMPLE.org", []string{"alice@example.org"}, 0},
		{"unknown target covered by the catch-all", "info@example.org", []string{"carol@example.org"}, 0},
		{"new domain through an alias", "postmaster@example.net", []string{"alice@example.org"}, 0},
	}
	for _, s := range steps {
		before := snapshot(t, root)
		_, err := AddAlias(root, s.key, s.targets)
		wantCode(t, s.name, err, s.code)
		if s.code != 0 && !reflect.DeepEqual(before, snapshot(t, root)) {
			t.Errorf("%s: refused AddAlias changed the root", s.name)
		}
	}
	want := `sales@example.org: alice@example.org, Someone@remote.example, bob@example.org
lists@example.org: alice+lists@example.org
team@example.org: sales@example.org
@example.org: alice@example.org
info@example.org: carol@example.org
postmaster@example.net: alice@example.org
`
	if data, _ := os.ReadFile(root.Etc("aliases")); string(data) != want {
		t.Errorf("etc/aliases =\n%s\nwant\n%s", data, want)
	}
	list, err := ListAliases(root, "example.net")
	if err != nil || len(list) != 1 || list[0].Key != "postmaster@example.net" {
		t.Errorf("ListAliases(example.net) = %+v, %v", list, err)
	}
	before := snapshot(t, root)
	wantCode(t, "del unknown alias", DeleteAlias(root, "nope@example.org", nil), sysexits.NoUser)
	wantCode(t, "del unknown target", DeleteAlias(root, "sales@example.org", []string{"carol@example.org"}), sysexits.NoUser)
	if !reflect.DeepEqual(before, snapshot(t, root)) {
		t.Errorf("refused DeleteAlias changed the root")
	}
	if err := DeleteAlias(root, "SALES@example.org", []string{"someone@REMOTE.example"}); err != nil {
		t.Fatal(err)
	}
	if err := DeleteAlias(root, "@example.org", nil); err != nil {
		t.Fatal(err)
	}
	list, _ = ListAliases(root, "")
	var got []string
	for _, al := range list {
		got = append(got, al.Key+": "+strings.Join(al.Targets, ", "))
	}
	wantList := []string{"info@example.org: carol@example.org", "lists@example.org: alice+lists@example.org",
		"postmaster@example.net: alice@example.org", "sales@example.org: alice@example.org, bob@example.org",
		"team@example.org: sales@example.org"}
	if !reflect.DeepEqual(got, wantList) {
		t.Errorf("aliases after deletes = %q, want %q", got, wantList)
	}
}

func TestAppPasswords(t *testing.T) {
	root := newRoot(t)
	pw, err := AddAppPassword(root, "alice@example.org", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Check(root, "alice@example.org", pw); !ok || err != nil {
		t.Errorf("Check(app password) = %v, %v", ok, err)
	}
	before := snapshot(t, root)
	_, err = AddAppPassword(root, "alice@example.org", "phone")
	wantCode(t, "duplicate label", err, sysexits.CantCreat)
	_, err = AddAppPassword(root, "bob@example.org", "phone")
	wantCode(t, "unknown user", err, sysexits.NoUser)
	_, err = AddAppPassword(root, "alice@example.org", "a:b")
	wantCode(t, "bad label", err, sysexits.DataErr)
	wantCode(t, "revoke unknown label", RevokeAppPassword(root, "alice@example.org", "laptop"), sysexits.NoUser)
	_, err = ListAppPasswords(root, "bob@example.org")
	wantCode(t, "list for unknown user", err, sysexits.NoUser)
	if !reflect.DeepEqual(before, snapshot(t, root)) {
		t.Errorf("refused app password commands changed the root")
	}
	list, err := ListAppPasswords(root, "alice@example.org")
	if err != nil || len(list) != 1 || list[0].Label != "phone" || time.Since(list[0].Created) > time.Minute {
		t.Errorf("ListAppPasswords = %+v, %v", list, err)
	}
	if err := RevokeAppPassword(root, "alice@example.org", "phone"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Check(root, "alice@example.org", pw); ok {
		t.Errorf("revoked app password still works")
	}
}

func TestLockTimeoutIsTemporary(t *testing.T) {
	root := newRoot(t)
	lock, err := safefile.LockFile(root.Etc("users")+".lock", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	old := users.LockTimeout
	users.LockTimeout = 20 * time.Millisecond
	defer func() { users.LockTimeout = old }()
	wantCode(t, "locked etc/users", SetPassword(root, "alice@example.org", "x"), sysexits.TempFail)
}

func TestMalformedFileIsConfigError(t *testing.T) {
	root := newRoot(t)
	os.WriteFile(root.Etc("aliases"), []byte("sales@example.org alice@example.org\n"), 0o640)
	_, err := AddAlias(root, "info@example.org", []string{"alice@example.org"})
	wantCode(t, "malformed aliases", err, sysexits.Config)
	if err == nil || !strings.Contains(err.Error(), "aliases:1:") {
		t.Errorf("error %v does not name the line", err)
	}
	_, err = AddUser(root, "bob@example.org", "pw")
	wantCode(t, "add user with malformed aliases", err, sysexits.Config)
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"secret\n", "secret"},
		{"secret\r\nignored\n", "secret"},
		{"no newline", "no newline"},
		{"  spaces kept \n", "  spaces kept "},
		{"", ""},
	} {
		got, err := readLine(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("readLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	_, err := readLine(strings.NewReader(strings.Repeat("x", maxPasswordLine+1) + "\n"))
	wantCode(t, "overlong line", err, sysexits.DataErr)
}
