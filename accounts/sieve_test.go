package accounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/postkit/postkit/sysexits"
)

func TestSieveScripts(t *testing.T) {
	root := newRoot(t)
	home := filepath.Join(string(root), "mail", "example.org", "alice")
	put := func(name, src string) error {
		return PutSieveScript(root, "Alice@example.org", name, strings.NewReader(src))
	}
	if err := put("main", "require \"fileinto\";\nfileinto \"Lists\";\n"); err != nil {
		t.Fatal(err)
	}
	if err := put("other", "keep;"); err != nil {
		t.Fatal(err)
	}
	if src, err := GetSieveScript(root, "alice@example.org", "main"); err != nil || !strings.Contains(string(src), "fileinto") {
		t.Errorf("GetSieveScript(main) = %q, %v", src, err)
	}
	if err := ActivateSieveScript(root, "alice@example.org", "main"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/main.sieve" {
		t.Errorf("active link = %q, %v; want sieve/main.sieve in the Maildir", target, err)
	}
	list, err := ListSieveScripts(root, "alice@example.org")
	want := []SieveScript{{"main", true}, {"other", false}}
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("ListSieveScripts = %v, %v; want %v", list, err, want)
	}
	wantCode(t, "delete the active script", DeleteSieveScript(root, "alice@example.org", "main"), sysexits.DataErr)
	wantCode(t, "delete other", DeleteSieveScript(root, "alice@example.org", "other"), sysexits.OK)
	wantCode(t, "deactivate", ActivateSieveScript(root, "alice@example.org", ""), sysexits.OK)
	wantCode(t, "delete main", DeleteSieveScript(root, "alice@example.org", "main"), sysexits.OK)
	if list, err := ListSieveScripts(root, "alice@example.org"); err != nil || len(list) != 0 {
		t.Errorf("ListSieveScripts after deleting all = %v, %v", list, err)
	}
}

func TestSieveScriptRefusals(t *testing.T) {
	root := newRoot(t)
	before := snapshot(t, root)
	err := PutSieveScript(root, "alice@example.org", "main", strings.NewReader("keep;\nfileinto \"x\";\n"))
	wantCode(t, "put a script that does not check", err, sysexits.DataErr)
	if err == nil || !strings.Contains(err.Error(), "2:1:") {
		t.Errorf("PutSieveScript(bad) = %v, want line 2 column 1", err)
	}
	wantCode(t, "bad name", PutSieveScript(root, "alice@example.org", "../x", strings.NewReader("keep;")), sysexits.DataErr)
	wantCode(t, "unknown user", PutSieveScript(root, "nobody@example.org", "main", strings.NewReader("keep;")), sysexits.NoUser)
	wantCode(t, "activate a missing script", ActivateSieveScript(root, "alice@example.org", "missing"), sysexits.NoUser)
	wantCode(t, "delete a missing script", DeleteSieveScript(root, "alice@example.org", "missing"), sysexits.NoUser)
	_, err = GetSieveScript(root, "alice@example.org", "missing")
	wantCode(t, "get a missing script", err, sysexits.NoUser)
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("refused commands changed the root:\nbefore %v\nafter  %v", before, after)
	}
}
