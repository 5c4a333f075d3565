package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/spool"
)

// diskfullMount mounts a tmpfs of the given size on dir (made if missing)
// for the test, as TestDeliverDiskFullIsTemporary does, and skips the test
// when the mount is refused (not root, or no mount(8)).
func diskfullMount(t *testing.T, dir, size, mode string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode="+mode, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small tmpfs on %s (needs root): %v %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// diskfullFill fills the file system of dir with the file dir/filler and
// returns its path.
func diskfullFill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// tmpfs counts pages: a last partial write may leave part of one.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Fatalf("%s still has %d blocks free after filling", dir, st.Bavail)
	}
	return path
}

// diskfullSend sends one message to smtpd at addr from the local address
// from (127.0.0.1 is a relay client here, whose message streams into the
// spool; 127.0.0.2 is not, and its message is held while it is checked).
// It returns the reply to the end of the data, 250 or the failure's code
// (0 for no reply), and the reply to a NOOP after it (the session goes on).
func diskfullSend(addr, from, msg string) (code int, text string, err error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 30 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return smtpCode(err), "", err
	}
	if err := c.Mail("sender@remote.test", nil); err != nil {
		return smtpCode(err), "", err
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		return smtpCode(err), "", err
	}
	w, err := c.Data()
	if err != nil {
		return smtpCode(err), "", err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return 0, "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			text = se.Error()
		}
		code = smtpCode(err)
	} else {
		code, text = 250, resp.StatusText
	}
	if nerr := c.Noop(); nerr != nil {
		return code, text, fmt.Errorf("NOOP after the reply %d: %w", code, nerr)
	}
	c.Quit()
	return code, text, nil
}

func diskfullMessage(token string, size int) string {
	return "From: sender@remote.test\r\nTo: alice@example.org\r\nSubject: " + token + "\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", size/65) + "end of " + token + "\r\n"
}

// diskfullMaildir returns the files of alice's INBOX: new/ and cur/, and tmp/.
func diskfullMaildir(t *testing.T, root string) (visible, tmp []string) {
	t.Helper()
	dir := filepath.Join(root, "mail", "example.org", "alice")
	for _, sub := range []string{"new", "cur", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if sub == "tmp" {
				tmp = append(tmp, e.Name())
			} else {
				visible = append(visible, readFile(t, filepath.Join(dir, sub, e.Name())))
			}
		}
	}
	return visible, tmp
}

// diskfullSpool returns the spool's entries and what queue/ and env/ hold.
func diskfullSpool(t *testing.T, root string) ([]*spool.Envelope, []string) {
	t.Helper()
	envs, err := sqSpool(root).List()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, d := range []string{"queue", "env"} {
		for _, name := range sqDir(root, d) {
			files = append(files, d+"/"+name)
		}
	}
	return envs, files
}

// TestDiskFullSMTPdSendq puts the spool and the Maildirs on small file
// systems and fills them. With the spool's full, smtpd answers 4xx (never
// 250 for a message it did not store, never 5xx) and leaves nothing in
// the spool; with the Maildirs' full, deliver exits 75 and the runner
// keeps the messages, and neither leaves a file in the Maildir. Once space
// is freed, mail flows again: smtpd accepts, and the runner delivers what
// it kept.
func TestDiskFullSMTPdSendq(t *testing.T) {
	root := sqRoot(t, "", map[string]string{"relay-clients": "127.0.0.1\n"})
	spoolDir, mailDir := filepath.Join(root, "spool"), filepath.Join(root, "mail")
	diskfullMount(t, spoolDir, "1m", "0711")
	diskfullMount(t, mailDir, "1m", "0700")
	srv := startSMTPd(t, root)
	runner := startSendq(t, root)
	delivered := func(n int) func() bool {
		return func() bool {
			visible, _ := diskfullMaildir(t, root)
			return len(visible) >= n && sqSpoolEmpty(root)
		}
	}

	// The whole chain works, and alice's Maildir exists.
	if code, text, err := diskfullSend(srv.addr, "127.0.0.1", diskfullMessage("first", 100)); code != 250 || err != nil {
		t.Fatalf("before the disks are full: %d %q, %v; want 250", code, text, err)
	}
	sqWait(t, "the first message's delivery", 30*time.Second, delivered(1))

	// The spool's file system full: every message, streamed or held,
	// small or large, gets a 4xx, and nothing of it stays in the spool.
	filler := diskfullFill(t, spoolDir)
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		for _, size := range []int{100, 200 << 10} {
			code, text, err := diskfullSend(srv.addr, from, diskfullMessage("refused", size))
			t.Logf("spool full: message of %d bytes from %s: %d %q", size, from, code, text)
			switch {
			case err != nil:
				t.Errorf("spool full, message of %d bytes from %s: %v", size, from, err)
			case code == 250:
				t.Errorf("spool full, message of %d bytes from %s: 250 %q for a message that cannot have been stored", size, from, text)
			case code != 451 && code != 452:
				t.Errorf("spool full, message of %d bytes from %s: %d %q, want 451 or 452", size, from, code, text)
			}
			if envs, files := diskfullSpool(t, root); len(envs) != 0 || len(files) != 0 {
				t.Errorf("spool full: after the refusal the spool lists %d entries and holds %v", len(envs), files)
			}
		}
	}
	srv.waitContains(t, "storing the message")

	// Space again in the spool, none in the Maildirs: smtpd accepts, and
	// the runner tries, fails for now and keeps the messages.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	diskfullFill(t, mailDir)
	kept := []string{"kept-1", "kept-2", "kept-3"}
	for i, token := range kept {
		if code, text, err := diskfullSend(srv.addr, "127.0.0.1", diskfullMessage(token, 100+i*(100<<10))); code != 250 || err != nil {
			t.Fatalf("spool freed: %d %q, %v; want 250", code, text, err)
		}
	}
	sqWait(t, "the runner's attempts on a full Maildir", 30*time.Second, func() bool {
		envs, _ := diskfullSpool(t, root)
		tried := 0
		for _, e := range envs {
			if e.Recipients[0].Attempts >= 1 {
				tried++
			}
		}
		return len(envs) == len(kept) && tried == len(kept)
	})
	envs, _ := diskfullSpool(t, root)
	for _, e := range envs {
		rc := e.Recipients[0]
		t.Logf("Maildir full: entry %s: state %s, %d attempts, last error %q", e.ID, rc.State, rc.Attempts, rc.LastError)
		if rc.State != spool.Pending {
			t.Errorf("Maildir full: entry %s is %s, want pending", e.ID, rc.State)
		}
	}
	code, stderr := runDeliver(t, diskfullMessage("deliver", 100), "--root", root, "alice@example.org")
	if code != 75 {
		t.Errorf("deliver on a full Maildir: exit %d (%s), want 75", code, stderr)
	}
	visible, tmp := diskfullMaildir(t, root)
	if len(visible) != 1 || len(tmp) != 0 {
		t.Errorf("Maildir full: alice has %d messages in new/ and cur/ (want the first only) and %v in tmp/", len(visible), tmp)
	}

	// Space again in the Maildirs: the runner delivers what it kept, and
	// a new message goes all the way.
	if err := os.Remove(filepath.Join(mailDir, "filler")); err != nil {
		t.Fatal(err)
	}
	if code, text, err := diskfullSend(srv.addr, "127.0.0.2", diskfullMessage("last", 100)); code != 250 || err != nil {
		t.Fatalf("all freed: %d %q, %v; want 250", code, text, err)
	}
	sqWait(t, "the kept messages' delivery", 30*time.Second, delivered(2+len(kept)))
	visible, tmp = diskfullMaildir(t, root)
	for _, token := range append([]string{"first", "last"}, kept...) {
		n := 0
		for _, m := range visible {
			if strings.Contains(m, "Subject: "+token+"\n") && strings.HasSuffix(m, "\nend of "+token+"\n") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("alice has %d copies of %q, want 1", n, token)
		}
	}
	if len(visible) != 2+len(kept) || len(tmp) != 0 {
		t.Errorf("alice has %d messages (want %d) and %v in tmp/", len(visible), 2+len(kept), tmp)
	}
	t.Logf("runner: %d attempts failed for lack of space, then delivered", runner.count(`status=deferred`))
}

// TestDiskFullSpoolOutOfInodes: a spool file system with blocks to spare
// but no inodes left is full too. smtpd answers 451 and keeps nothing,
// and accepts again once files can be created.
func TestDiskFullSpoolOutOfInodes(t *testing.T) {
	root := sqRoot(t, "", map[string]string{"relay-clients": "127.0.0.1\n"})
	spoolDir := filepath.Join(root, "spool")
	diskfullMount(t, spoolDir, "1m,nr_inodes=64", "0711")
	srv := startSMTPd(t, root)
	if code, text, err := diskfullSend(srv.addr, "127.0.0.1", diskfullMessage("first", 100)); code != 250 || err != nil {
		t.Fatalf("before the inodes are used up: %d %q, %v; want 250", code, text, err)
	}
	var fillers []string
	for i := 0; ; i++ {
		p := filepath.Join(spoolDir, fmt.Sprintf("filler%d", i))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, syscall.ENOSPC) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		f.Close()
		fillers = append(fillers, p)
	}
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		code, text, err := diskfullSend(srv.addr, from, diskfullMessage("refused", 100))
		if err != nil || code != 451 && code != 452 {
			t.Errorf("no inodes, message from %s: %d %q, %v; want 451 or 452", from, code, text, err)
		}
	}
	if envs, files := diskfullSpool(t, root); len(envs) != 1 || len(files) != 1 {
		t.Errorf("no inodes: the spool lists %d entries and holds %v, want the first message's only", len(envs), files)
	}
	for _, p := range fillers {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if code, text, err := diskfullSend(srv.addr, "127.0.0.2", diskfullMessage("again", 100)); code != 250 || err != nil {
		t.Errorf("inodes freed: %d %q, %v; want 250", code, text, err)
	}
}

// TestDiskFullSpoolRunnerDoesNotRedeliver: the spool's file system full
// and the Maildirs' not, so that the runner can deliver but not record a
// delivery in the envelope (a message with two recipients is updated after
// the first delivery, not removed). It must not deliver to the same
// recipients again and again while it cannot record: once the spool has
// space, each recipient has one copy. The spool stays full for two seconds
// (the runner scans every 50 ms); nothing is asserted about the time.
func TestDiskFullSpoolRunnerDoesNotRedeliver(t *testing.T) {
	root := sqRoot(t, "", nil)
	spoolDir, mailDir := filepath.Join(root, "spool"), filepath.Join(root, "mail")
	diskfullMount(t, spoolDir, "1m", "0711")
	diskfullMount(t, mailDir, "1m", "0700")
	users := []string{"alice@example.org", "bob@example.org"}
	for _, u := range users {
		if code, stderr := runDeliver(t, "Subject: hello\n\nthe Maildir exists\n", "--root", root, u); code != 0 {
			t.Fatalf("deliver to %s: exit %d (%s)", u, code, stderr)
		}
	}
	runner := startSendq(t, root)
	mailFiller := diskfullFill(t, mailDir)
	sqSend(t, root, "Subject: to two\n\nfor alice and bob\n", "-i", "-f", "carol@example.org", users[0], users[1])
	sqWait(t, "the runner's attempts on the full Maildirs", 30*time.Second, func() bool {
		return runner.count(`rcpt=(alice|bob)@example\.org status=deferred`) >= 2
	})

	spoolFiller := diskfullFill(t, spoolDir)
	if err := os.Remove(mailFiller); err != nil {
		t.Fatal(err)
	}
	sqWait(t, "a delivery the runner cannot record", 30*time.Second, func() bool {
		return runner.count(`event=update error=.*no space left on device`) >= 1
	})
	time.Sleep(2 * time.Second)
	copies := map[string]int{}
	for _, u := range users {
		copies[u] = len(mailFiles(t, root, u, "")) - 1
	}
	updateErrors := runner.count(`event=update error`)
	if err := os.Remove(spoolFiller); err != nil {
		t.Fatal(err)
	}
	sqWait(t, "the entry's removal", 30*time.Second, func() bool { return sqSpoolEmpty(root) })
	t.Logf("with the spool full for 2s: copies %v, %d failed envelope updates", copies, updateErrors)
	for _, u := range users {
		if n := len(mailFiles(t, root, u, "")) - 1; n != 1 {
			t.Errorf("%s has %d copies of the message, want 1", u, n)
		}
	}
}
