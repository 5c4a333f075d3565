package imapd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postkit/postkit/accounts"
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/selfsigned"
)

const (
	testUser     = "alice@example.org"
	testPassword = "correct horse"
)

// fixture is a running Server on a loopback port over a real root with
// the user alice@example.org (whose Maildir mkuser's code created).
type fixture struct {
	t       *testing.T
	root    control.Root
	maildir maildir.Dir
	srv     *Server
	addr    string
	logs    *syncBuffer
	certs   *x509.CertPool
	sleeps  *[]time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newFixture starts a server; configure may change it before it serves.
func newFixture(t *testing.T, configure ...func(*Server)) *fixture {
	t.Helper()
	root := control.Root(t.TempDir())
	added, err := accounts.AddUser(root, testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.Generate([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	logs := &syncBuffer{}
	var sleeps []time.Duration
	var mu sync.Mutex
	srv := &Server{
		Root:                   root,
		TLSConfig:              &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		AllowPlaintextLoopback: true,
		Log:                    log.New(logs, "", 0),
		sleep: func(d time.Duration) {
			mu.Lock()
			sleeps = append(sleeps, d)
			mu.Unlock()
		},
	}
	for _, c := range configure {
		c(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(done)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		srv.secure.Close()
		if srv.loopback != nil {
			srv.loopback.Close()
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &fixture{t: t, root: root, maildir: maildir.Dir(added.Maildir), srv: srv, addr: ln.Addr().String(),
		logs: logs, certs: pool, sleeps: &sleeps}
}

// dial connects without logging in.
func (f *fixture) dial(handler *imapclient.UnilateralDataHandler) *imapclient.Client {
	f.t.Helper()
	c, err := imapclient.DialInsecure(f.addr, &imapclient.Options{UnilateralDataHandler: handler})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	return c
}

// login connects and logs in as alice.
func (f *fixture) login(handler ...*imapclient.UnilateralDataHandler) *imapclient.Client {
	f.t.Helper()
	var h *imapclient.UnilateralDataHandler
	if len(handler) > 0 {
		h = handler[0]
	}
	c := f.dial(h)
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		f.t.Fatalf("LOGIN: %v", err)
	}
	return c
}

// deliver stores a message in folder ("" is INBOX) as deliver does.
func (f *fixture) deliver(folder, msg string, opt maildir.DeliverOptions) maildir.Delivered {
	f.t.Helper()
	d := f.maildir
	if folder != "" {
		var err error
		if d, err = f.maildir.Folder(folder); err != nil {
			f.t.Fatal(err)
		}
	}
	del, err := d.Deliver(strings.NewReader(msg), opt)
	if err != nil {
		f.t.Fatal(err)
	}
	return del
}

// writeRaw puts a file into the folder directory as other software
// might, without sizes in its name.
func (f *fixture) writeRaw(sub, name, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(string(f.maildir), sub, name), []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func selectBox(t *testing.T, c *imapclient.Client, name string) *imap.SelectData {
	t.Helper()
	data, err := c.Select(name, nil).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", name, err)
	}
	return data
}

func fetchAll(t *testing.T, c *imapclient.Client, set imap.NumSet, opt *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, opt).Collect()
	if err != nil {
		t.Fatalf("FETCH %v: %v", set, err)
	}
	return msgs
}

// imapCode returns the response code of a command's error.
func imapCode(err error) imap.ResponseCode {
	var e *imap.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
