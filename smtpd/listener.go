package smtpd

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/postkit/postkit/dnsbl"
)

// listener is what go-smtp serves: the connections of the listener it wraps,
// each inside a conn, and the conns that STARTTLS hands back. Connections
// over the session limits get a 421 and never reach go-smtp.
type listener struct {
	net.Listener
	srv       *Server
	accepted  chan acceptResult
	handed    chan net.Conn
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newListener(srv *Server, l net.Listener) *listener {
	return &listener{
		Listener: l,
		srv:      srv,
		accepted: make(chan acceptResult),
		handed:   make(chan net.Conn),
		done:     make(chan struct{}),
	}
}

func (l *listener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	for {
		select {
		case c := <-l.handed:
			return c, nil
		case r := <-l.accepted:
			if r.err != nil {
				return nil, r.err
			}
			if c := l.srv.admit(l, r.c); c != nil {
				return c, nil
			}
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

// acceptLoop accepts from the wrapped listener, so that Accept can wait for a
// new connection and a STARTTLS hand-over at the same time.
func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
	}
}

// handover gives go-smtp the conn that continues a session after STARTTLS.
// It returns false when the listener is closed (the server is stopping).
func (l *listener) handover(c *conn) bool {
	select {
	case l.handed <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// connInfo is what the session log line says about one client connection;
// it outlives the conn of the plaintext part of a STARTTLS session.
type connInfo struct {
	id     string
	client string     // IP address, or the remote address when not IP
	ip     netip.Addr // invalid when not IP
	port   uint16
	start  time.Time
	// release gives the session's place back to the server's limit.
	release func()

	mu       sync.Mutex
	tls      string
	greeting string // HELO or EHLO, the last one given
	user     string
	messages int
	txns     int
	errors   int
	authFail int
	result   string

	// dnsblDone is closed once the DNSBL lookups started at connect have
	// ended (nil when none were started); listing is then their result.
	dnsblDone chan struct{}
	listing   *dnsbl.Listing
}

func newConnInfo(remote net.Addr) *connInfo {
	info := &connInfo{id: newID(), start: time.Now(), client: "unknown"}
	if remote != nil {
		info.client = remote.String()
		if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
			info.ip = ap.Addr().Unmap()
			info.port = ap.Port()
			info.client = info.ip.String()
		}
	}
	return info
}

// idEncoding spells connection IDs in upper-case letters and digits.
var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns a random 12-character connection ID: it appears in log
// lines and in the id clause of Received headers.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])[:12]
}

func (i *connInfo) addError() {
	i.mu.Lock()
	i.errors++
	i.mu.Unlock()
}

func (i *connInfo) errorCount() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.errors
}

// setResult records how the session ended; the first word is kept.
func (i *connInfo) setResult(r string) {
	i.mu.Lock()
	if i.result == "" {
		i.result = r
	}
	i.mu.Unlock()
}

func (i *connInfo) setGreeting(verb string) {
	i.mu.Lock()
	i.greeting = verb
	i.mu.Unlock()
}

func (i *connInfo) setTLS(cs tls.ConnectionState) {
	i.mu.Lock()
	i.tls = tlsDescription(cs)
	i.mu.Unlock()
}

func (i *connInfo) setUser(u string) {
	i.mu.Lock()
	i.user = u
	i.mu.Unlock()
}

func (i *connInfo) addMessage() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.messages++
	return i.messages
}

// nextTransaction numbers the messages of the connection from 1.
func (i *connInfo) nextTransaction() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.txns++
	return i.txns
}

func (i *connInfo) addAuthFailure() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.authFail++
	return i.authFail
}

func (i *connInfo) ehlo() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.greeting != "HELO"
}

// logLine is the session's log line (key=value).
func (i *connInfo) logLine() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	result := i.result
	if result == "" {
		result = "closed"
	}
	tlsDesc := i.tls
	if tlsDesc == "" {
		tlsDesc = "none"
	}
	user := i.user
	if user == "" {
		user = "-"
	}
	return fmt.Sprintf("session conn=%s client=%s tls=%s user=%s messages=%d errors=%d duration=%s result=%s",
		i.id, i.client, strings.ReplaceAll(tlsDesc, " ", "/"), logValue(user), i.messages, i.errors,
		time.Since(i.start).Round(time.Millisecond), logValue(result))
}

// tlsDescription names the TLS version and cipher, as in "TLS1.3
// TLS_AES_128_GCM_SHA256".
func tlsDescription(cs tls.ConnectionState) string {
	return strings.ReplaceAll(tls.VersionName(cs.Version), " ", "") + " " + tls.CipherSuiteName(cs.CipherSuite)
}

// logValue makes s safe as one key=value value: quoted when it has spaces,
// quotes, '=' or anything unprintable.
func logValue(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\' {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
