//go:build unix

package maildir

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// owner returns "uid:gid" of path.
func owner(t *testing.T, path string) string {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	return strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid))
}

// TestOwnerIsInherited: run as root (as mkuser add and an administrator's
// deliver are), Create and Deliver give everything they make under a
// directory owned by another user to that user, as the daemons need; run as
// anyone else, they leave files to the process, with no error.
func TestOwnerIsInherited(t *testing.T) {
	mail := filepath.Join(t.TempDir(), "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(os.Geteuid()) + ":" + strconv.Itoa(os.Getegid())
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		if err := os.Chown(mail, uid, gid); err != nil {
			t.Fatal(err)
		}
		want = nobody.Uid + ":" + nobody.Gid
	}
	path := filepath.Join(mail, "example.org", "alice")
	if err := Create(path, "Sent"); err != nil {
		t.Fatalf("Create = %v", err)
	}
	del, err := Dir(path).Deliver(strings.NewReader("Subject: x\n\nbody\n"), DeliverOptions{})
	if err != nil {
		t.Fatalf("Deliver = %v", err)
	}
	folder, err := Dir(path).Folder("Sent")
	if err != nil {
		t.Fatal(err)
	}
	delCur, err := folder.Deliver(strings.NewReader("Subject: y\n\n"), DeliverOptions{Flags: "S"})
	if err != nil {
		t.Fatalf("Deliver to Sent = %v", err)
	}
	for _, p := range []string{
		filepath.Join(mail, "example.org"), path, Dir(path).Cur(), Dir(path).New(), Dir(path).Tmp(),
		string(folder), folder.Cur(), filepath.Join(string(folder), FolderMarker), del.Path, delCur.Path,
	} {
		if got := owner(t, p); got != want {
			rel, _ := filepath.Rel(mail, p)
			t.Errorf("%s is owned by %s, want %s (the owner of mail/)", rel, got, want)
		}
	}
}

// TestOwnerOfRootOwnedMaildir: a Maildir that belongs to the process's own
// user stays so (nothing is given away to a third user).
func TestOwnerOfRootOwnedMaildir(t *testing.T) {
	d := newMaildir(t)
	del, err := d.Deliver(strings.NewReader("Subject: x\n\n"), DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(os.Geteuid()) + ":" + strconv.Itoa(os.Getegid())
	for _, p := range []string{string(d), d.New(), del.Path} {
		if got := owner(t, p); got != want {
			t.Errorf("%s is owned by %s, want %s", p, got, want)
		}
	}
}
