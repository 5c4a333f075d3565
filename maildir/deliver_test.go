package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// crashChildEnv makes the test binary act as a crashing deliverer (see
// TestDeliverCrash) instead of running the tests.
const crashChildEnv = "MAILDIR_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(1) // crashChild blocks until killed
	}
	os.Exit(m.Run())
}

func newMaildir(t testing.TB) Dir {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alice")
	if err := Create(path); err != nil {
		t.Fatal(err)
	}
	return Dir(path)
}

func list(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkDelivered checks a delivered file against its Delivered and name: the
// contents, S= against the file size, W= against what CRLFReader serves.
func checkDelivered(t *testing.T, del Delivered, wantStored string) {
	t.Helper()
	got, err := os.ReadFile(del.Path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != wantStored {
		t.Errorf("stored %q, want %q", got, wantStored)
	}
	info, _ := os.Stat(del.Path)
	served, _ := io.ReadAll(NewCRLFReader(bytes.NewReader(got)))
	n := ParseName(del.Name)
	if n.Size != info.Size() || del.Size != info.Size() {
		t.Errorf("S= %d, Size %d; file size %d", n.Size, del.Size, info.Size())
	}
	if n.VSize != int64(len(served)) || del.VSize != int64(len(served)) {
		t.Errorf("W= %d, VSize %d; CRLFReader serves %d bytes", n.VSize, del.VSize, len(served))
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	if filepath.Base(del.Path) != del.Name {
		t.Errorf("Path %q does not end in Name %q", del.Path, del.Name)
	}
}

func TestDeliverContents(t *testing.T) {
	tests := []struct{ name, in, stored string }{
		{"crlf", "Subject: a\r\n\r\nbody\r\n", "Subject: a\n\nbody\n"},
		{"lf", "Subject: a\n\nbody\n", "Subject: a\n\nbody\n"},
		{"mixed", "A: 1\r\nB: 2\n\r\nx\ny\r\n", "A: 1\nB: 2\n\nx\ny\n"},
		{"bare cr kept", "A: 1\r\n\r\nx\ry\r\n", "A: 1\n\nx\ry\n"},
		{"cr cr lf", "x\r\r\n", "x\r\n"},
		{"no trailing newline", "A: 1\r\n\r\nlast", "A: 1\n\nlast"},
		{"trailing cr", "A: 1\r\n\r\nlast\r", "A: 1\n\nlast\r"},
		{"empty", "", ""},
		{"large crlf", strings.Repeat("0123456789abcdef\r\n", 20000), strings.Repeat("0123456789abcdef\n", 20000)},
	}
	d := newMaildir(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole (WriteTo), and in small reads that split CRLF pairs.
			sources := []io.Reader{strings.NewReader(tt.in), iotest.HalfReader(strings.NewReader(tt.in)),
				iotest.OneByteReader(strings.NewReader(tt.in))}
			for _, src := range sources {
				del, err := d.Deliver(src, DeliverOptions{Hostname: "mx.example.org"})
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Dir(del.Path) != d.New() {
					t.Errorf("delivered to %s, want new/", del.Path)
				}
				checkDelivered(t, del, tt.stored)
			}
		})
	}
	if tmp := list(t, d.Tmp()); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q after deliveries", tmp)
	}
}

func TestDeliverOptions(t *testing.T) {
	internal := time.Date(2010, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name     string
		opt      DeliverOptions
		toCur    bool
		suffix   string
		hostPart string
	}{
		{"default new", DeliverOptions{Hostname: "h"}, false, ",W=8", ".h,"},
		{"seen", DeliverOptions{Hostname: "h", Flags: "S"}, true, ":2,S", ".h,"},
		{"sorted flags", DeliverOptions{Hostname: "h", Flags: "SFa"}, true, ":2,FSa", ".h,"},
		{"to cur no flags", DeliverOptions{Hostname: "h", ToCur: true}, true, ":2,", ".h,"},
		{"host escaped", DeliverOptions{Hostname: "a/b:c"}, false, ",W=8", `.a\057b\072c,`},
		{"internal date", DeliverOptions{Hostname: "h", ModTime: internal}, false, ",W=8", ".h,"},
	}
	d := newMaildir(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, err := d.Deliver(strings.NewReader("x\r\n\r\ny\r\n"), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			wantDir := d.New()
			if tt.toCur {
				wantDir = d.Cur()
			}
			if filepath.Dir(del.Path) != wantDir {
				t.Errorf("delivered to %s, want %s", del.Path, wantDir)
			}
			if !strings.HasSuffix(del.Name, tt.suffix) || !strings.Contains(del.Name, tt.hostPart) {
				t.Errorf("name %q, want suffix %q and %q", del.Name, tt.suffix, tt.hostPart)
			}
			checkDelivered(t, del, "x\n\ny\n")
			info, _ := os.Stat(del.Path)
			if !tt.opt.ModTime.IsZero() && !info.ModTime().Equal(tt.opt.ModTime) {
				t.Errorf("mtime %v, want %v", info.ModTime(), tt.opt.ModTime)
			}
			if tt.opt.ModTime.IsZero() && time.Since(info.ModTime()) > time.Hour {
				t.Errorf("mtime %v, want about now", info.ModTime())
			}
		})
	}
}

func TestDeliverDefaultHostname(t *testing.T) {
	d := newMaildir(t)
	del, err := d.Deliver(strings.NewReader("x\n"), DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "." + escapeHost(hostname()) + ",S="; !strings.Contains(del.Name, want) {
		t.Errorf("name %q does not contain %q", del.Name, want)
	}
}

// visible returns the files in new/ and cur/.
func visible(t *testing.T, d Dir) []string {
	return append(list(t, d.New()), list(t, d.Cur())...)
}

func TestDeliverFailureLeavesNothing(t *testing.T) {
	boom := errors.New("connection reset")
	d := newMaildir(t)
	tests := []struct {
		name    string
		msg     io.Reader
		opt     DeliverOptions
		wantErr error
	}{
		{"reader fails", io.MultiReader(strings.NewReader(strings.Repeat("x\r\n", 50000)), iotest.ErrReader(boom)),
			DeliverOptions{}, boom},
		{"too big", strings.NewReader(strings.Repeat("x", 1001)), DeliverOptions{MaxSize: 1000}, ErrTooBig},
		{"bad flags", strings.NewReader("x"), DeliverOptions{Flags: "S,"}, ErrInvalidFlags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, err := d.Deliver(tt.msg, tt.opt)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Deliver = %+v, %v; want %v", del, err, tt.wantErr)
			}
			if v := visible(t, d); len(v) != 0 {
				t.Errorf("new/ and cur/ hold %q after a failed delivery", v)
			}
			if tmp := list(t, d.Tmp()); len(tmp) != 0 {
				t.Errorf("tmp/ holds %q after a failed delivery", tmp)
			}
		})
	}
	// Exactly MaxSize bytes are fine.
	if _, err := d.Deliver(strings.NewReader(strings.Repeat("x", 1000)), DeliverOptions{MaxSize: 1000}); err != nil {
		t.Errorf("Deliver of MaxSize bytes = %v", err)
	}
}

// TestDeliverBeforeLink: BeforeLink gets the final path while the message
// is written in tmp/ but not yet visible in new/ or cur/; an error from it
// stores nothing and comes back wrapped.
func TestDeliverBeforeLink(t *testing.T) {
	tests := []struct {
		name    string
		opt     DeliverOptions
		wantSub string // new or cur
	}{
		{"new", DeliverOptions{}, "new"},
		{"cur with flags", DeliverOptions{Flags: "SF"}, "cur"},
		{"cur without flags", DeliverOptions{ToCur: true}, "cur"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newMaildir(t)
			var hooked string
			tt.opt.BeforeLink = func(path string) error {
				hooked = path
				if v := visible(t, d); len(v) != 0 {
					t.Errorf("BeforeLink(%q): new/ and cur/ already hold %q", path, v)
				}
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("BeforeLink(%q): the path exists (%v)", path, err)
				}
				if tmp := list(t, d.Tmp()); len(tmp) != 1 {
					t.Errorf("BeforeLink(%q): tmp/ holds %q, want the written file", path, tmp)
				}
				return nil
			}
			del, err := d.Deliver(strings.NewReader("Subject: x\r\n\r\nbody\r\n"), tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if hooked != del.Path {
				t.Errorf("BeforeLink got %q, want the delivered path %q", hooked, del.Path)
			}
			if filepath.Dir(del.Path) != filepath.Join(string(d), tt.wantSub) {
				t.Errorf("delivered to %q, want in %s/", del.Path, tt.wantSub)
			}
			checkDelivered(t, del, "Subject: x\n\nbody\n")
		})
	}

	d := newMaildir(t)
	refused := errors.New("journal full")
	del, err := d.Deliver(strings.NewReader("x"), DeliverOptions{BeforeLink: func(string) error { return refused }})
	if !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "maildir: ") {
		t.Fatalf("Deliver with a failing BeforeLink = %+v, %v; want a maildir: error wrapping %v", del, err, refused)
	}
	if v := visible(t, d); len(v) != 0 {
		t.Errorf("new/ and cur/ hold %q after BeforeLink failed", v)
	}
	if tmp := list(t, d.Tmp()); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q after BeforeLink failed", tmp)
	}
}

func TestDeliverMissingMaildir(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "nobody"))
	_, err := d.Deliver(strings.NewReader("x"), DeliverOptions{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "maildir: ") {
		t.Errorf("Deliver to a missing Maildir = %v, want a maildir: error wrapping ErrNotExist", err)
	}
	if IsTemporary(err) {
		t.Errorf("IsTemporary(%v) = true", err)
	}
}

func TestIsTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("maildir: deliver: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("maildir: deliver: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}), true},
		{fmt.Errorf("maildir: deliver: %w", &fs.PathError{Op: "sync", Path: "x", Err: syscall.EIO}), true},
		{fmt.Errorf("maildir: deliver: %w", &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}), false},
		{ErrInvalidFlags, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsTemporary(tt.err); got != tt.want {
			t.Errorf("IsTemporary(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestDeliverConcurrent(t *testing.T) {
	d := newMaildir(t)
	const n = 20
	var wg sync.WaitGroup
	results := make([]Delivered, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = d.Deliver(strings.NewReader(fmt.Sprintf("Message-ID: <%d@x>\r\n\r\nbody %d\r\n", i, i)),
				DeliverOptions{Hostname: "h"})
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Deliver %d = %v", i, errs[i])
		}
		seen[results[i].Name] = true
		checkDelivered(t, results[i], fmt.Sprintf("Message-ID: <%d@x>\n\nbody %d\n", i, i))
	}
	if files := list(t, d.New()); len(seen) != n || len(files) != n {
		t.Errorf("%d distinct names, %d files in new/; want %d", len(seen), len(files), n)
	}
}

// blockingReader serves data, then tells the parent (on stdout) that the
// delivery is half done and blocks for ever.
type blockingReader struct {
	data *strings.Reader
}

func (b blockingReader) Read(p []byte) (int, error) {
	if b.data.Len() > 0 {
		return b.data.Read(p)
	}
	fmt.Println("half written")
	for {
		// Sleeping, unlike select{}, is not taken for a deadlock.
		time.Sleep(time.Hour)
	}
}

func crashChild(dir string) {
	half := strings.Repeat("Subject: crash\r\n", 16<<10) // 256 KiB, several write(2)s
	_, err := Dir(dir).Deliver(blockingReader{strings.NewReader(half)}, DeliverOptions{Hostname: "h"})
	fmt.Println("Deliver returned:", err)
}

// TestDeliverCrash kills a delivering process half way through: nothing may
// appear in new/ or cur/, and CleanTmp removes what it left in tmp/.
func TestDeliverCrash(t *testing.T) {
	d := newMaildir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(d))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "half written\n" {
		t.Fatalf("child said %q, %v; want half written", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", cmd.ProcessState)
	}
	if v := visible(t, d); len(v) != 0 {
		t.Errorf("new/ and cur/ hold %q after a crash", v)
	}
	tmp := list(t, d.Tmp())
	if len(tmp) != 1 {
		t.Fatalf("tmp/ holds %q, want the crashed delivery's file", tmp)
	}
	if info, err := os.Stat(filepath.Join(d.Tmp(), tmp[0])); err != nil || info.Size() == 0 {
		t.Errorf("leftover tmp file: %v, %v; want part of the message written", info, err)
	}
	if n, err := d.CleanTmp(CleanTmpAge); n != 0 || err != nil {
		t.Errorf("CleanTmp(36h) = %d, %v; want 0 (the file is young)", n, err)
	}
	if n, err := d.CleanTmp(0); n != 1 || err != nil {
		t.Errorf("CleanTmp(0) = %d, %v; want 1", n, err)
	}
	if tmp := list(t, d.Tmp()); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q after CleanTmp", tmp)
	}
}

func TestCleanTmpKeepsBackdatedDelivery(t *testing.T) {
	// A tmp file with an old mtime (Deliver sets ModTime before linking) is
	// not stale: its inode changed just now.
	d := newMaildir(t)
	p := filepath.Join(d.Tmp(), "1.M1P1Q1R1.h")
	os.WriteFile(p, []byte("x"), 0o600)
	old := time.Now().Add(-100 * time.Hour)
	os.Chtimes(p, old, old)
	os.Mkdir(filepath.Join(d.Tmp(), "subdir"), 0o700)
	if n, err := d.CleanTmp(CleanTmpAge); n != 0 || err != nil {
		t.Errorf("CleanTmp(36h) = %d, %v; want 0", n, err)
	}
	if n, err := d.CleanTmp(0); n != 1 || err != nil {
		t.Errorf("CleanTmp(0) = %d, %v; want 1 (directories are left alone)", n, err)
	}
	if _, err := Dir(t.TempDir()).CleanTmp(0); err == nil {
		t.Error("CleanTmp without tmp/ succeeded")
	}
}

// benchmarkDeliver delivers a size-byte message the way package lda does, a
// trace header and the message joined by io.MultiReader, and reports the
// allocation per delivery (see deliveryBufs).
func benchmarkDeliver(b *testing.B, size int) {
	d := newMaildir(b)
	msg := testMessage(size)
	header := []byte("Return-Path: <bob@example.org>\nDelivered-To: alice@example.org\n")
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		r := io.MultiReader(bytes.NewReader(header), bytes.NewReader(msg))
		if _, err := d.Deliver(r, DeliverOptions{Hostname: "h"}); err != nil {
			b.Fatal(err)
		}
	}
}

// testMessage returns size bytes of 78-byte CRLF lines.
func testMessage(size int) []byte {
	line := strings.Repeat("x", 76) + "\r\n"
	return []byte(strings.Repeat(line, size/len(line)+1)[:size])
}

func BenchmarkDeliver4K(b *testing.B)   { benchmarkDeliver(b, 4<<10) }
func BenchmarkDeliver100K(b *testing.B) { benchmarkDeliver(b, 100<<10) }
