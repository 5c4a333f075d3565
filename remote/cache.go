package remote

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/routes"
)

// ConnCache limits the reuse of SMTP connections (see the package
// documentation). Zero fields mean the defaults, which are Postfix's.
type ConnCache struct {
	// Disabled sends QUIT after every transaction.
	Disabled bool
	// ReuseLimit is how many more transactions one connection may carry
	// after its first (default 100, smtp_connection_reuse_count_limit).
	ReuseLimit int
	// IdleTime is how long an idle connection waits for its next message
	// (default 2 s, smtp_connection_cache_time_limit).
	IdleTime time.Duration
	// MaxIdle is how many connections may wait per destination and
	// server address (default 20).
	MaxIdle int
}

// The defaults of ConnCache.
const (
	DefaultReuseLimit = 100
	DefaultIdleTime   = 2 * time.Second
	DefaultMaxIdle    = 20
)

// rsetTimeout and quitTimeout bound the RSET that puts a connection in the
// cache and the QUIT that ends an idle one (Postfix's smtp_rset_timeout is
// 20 s): the message's outcome is known by then, so a slow server must not
// hold the delivery or the runner's shutdown for the 5 minutes of a
// command.
const (
	rsetTimeout = 20 * time.Second
	quitTimeout = 5 * time.Second
)

// cacheKey is everything that made a connection acceptable for the message
// it was opened for. A connection opened for one domain never carries mail
// for another, even through the same MX host: MTA-STS and the choice of
// hosts are the domain's.
type cacheKey struct {
	dest  string // the domain, or "route " and the route's line
	relay string // NAME[IP]:PORT
	auth  string // the AUTH identity, "" without AUTH
	tls   bool
	// verified: the certificate is valid for the host's name under roots.
	verified bool
	roots    *x509.CertPool
}

// smtpConn is an SMTP session ready for a transaction: greeting, EHLO,
// TLS and AUTH done.
type smtpConn struct {
	key     cacheKey
	client  *smtp.Client
	replies *replyConn // what client reads and writes through
	conn    net.Conn   // the connection underneath (closing it ends all)
	// verifyErr says why the certificate is not verified.
	verifyErr error
	uses      int // transactions carried
	idleSince time.Time
}

// quit ends the session politely, within timeout.
func (sc *smtpConn) quit(timeout time.Duration) {
	sc.client.CommandTimeout = timeout
	if sc.client.Quit() != nil {
		sc.client.Close()
	}
}

// reset sends RSET (RFC 5321 §4.1.1.5) after a transaction, to check that
// the server still answers in step before the connection waits for the
// next one. go-smtp's Reset would also forget the EHLO and say it again
// before the next MAIL, so RSET goes out here, underneath go-smtp, after
// checking that go-smtp read exactly the reply to the end of data and
// holds nothing the server sent beyond it.
func (sc *smtpConn) reset(timeout time.Duration) error {
	if !sc.replies.oneReply() {
		return errors.New("remote: the server sent more than its reply to the end of data")
	}
	sc.replies.SetDeadline(time.Now().Add(timeout))
	defer sc.replies.SetDeadline(time.Time{})
	if _, err := io.WriteString(sc.replies, "RSET\r\n"); err != nil {
		return err
	}
	if _, _, err := textproto.NewReader(bufio.NewReader(sc.replies)).ReadResponse(250); err != nil {
		return err
	}
	if !sc.replies.oneReply() {
		return errors.New("remote: the server sent more than its reply to RSET")
	}
	return nil
}

// replyConn keeps what the server sent since the client last wrote, so
// that smtpConn.reset can tell that it is one complete reply.
type replyConn struct {
	net.Conn
	read     []byte
	overflow bool
}

// replyKeep bounds replyConn.read: a longer reply is not worth a reuse.
const replyKeep = 2048

func (c *replyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(c.read)+n > replyKeep {
		c.overflow = true
	} else {
		c.read = append(c.read, p[:n]...)
	}
	return n, err
}

func (c *replyConn) Write(p []byte) (int, error) {
	c.read, c.overflow = c.read[:0], false
	return c.Conn.Write(p)
}

// oneReply reports whether what was read since the last write is one
// complete reply: lines of the same code, all but the last with a hyphen
// after it (RFC 5321 §4.2.1).
func (c *replyConn) oneReply() bool {
	if c.overflow || !bytes.HasSuffix(c.read, []byte("\r\n")) {
		return false
	}
	lines := bytes.Split(c.read[:len(c.read)-2], []byte("\r\n"))
	for i, l := range lines {
		if len(l) < 4 || !bytes.Equal(l[:3], lines[0][:3]) {
			return false
		}
		if sep := l[3]; sep != '-' && (sep != ' ' || i != len(lines)-1) {
			return false
		}
		if sep := l[3]; sep == '-' && i == len(lines)-1 {
			return false
		}
	}
	return true
}

// connCache holds idle connections, by key, oldest first. A connection in
// it belongs to nobody; take hands it to one delivery at a time.
type connCache struct {
	mu     sync.Mutex
	idle   map[cacheKey][]*smtpConn
	reaper *time.Timer
	closed bool
}

// expire moves key's connections that have been idle for limit at now
// from the cache to expired, and returns the ones left, oldest first (the
// key is dropped when none are). The caller holds mu.
func (cc *connCache) expire(k cacheKey, now time.Time, limit time.Duration, expired *[]*smtpConn) []*smtpConn {
	list := cc.idle[k]
	for len(list) > 0 && now.Sub(list[0].idleSince) >= limit {
		*expired = append(*expired, list[0])
		list = list[1:]
	}
	if len(list) == 0 {
		delete(cc.idle, k)
	} else {
		cc.idle[k] = list
	}
	return list
}

// cacheLimits fills in the defaults for zero fields.
func (c *Client) cacheLimits() ConnCache {
	l := c.Cache
	if l.ReuseLimit <= 0 {
		l.ReuseLimit = DefaultReuseLimit
	}
	if l.IdleTime <= 0 {
		l.IdleTime = DefaultIdleTime
	}
	if l.MaxIdle <= 0 {
		l.MaxIdle = DefaultMaxIdle
	}
	return l
}

// take returns the most recently cached live connection under one of
// keys, or nil. Connections idle for longer than the limit are closed on
// the way.
func (c *Client) take(keys []cacheKey) *smtpConn {
	if c.Cache.Disabled {
		return nil
	}
	limit := c.cacheLimits().IdleTime
	cc := &c.cache
	var expired []*smtpConn
	defer func() {
		if len(expired) > 0 {
			// Not on the delivery's time.
			go quitAll(expired)
		}
	}()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	now := time.Now()
	for _, k := range keys {
		list := cc.expire(k, now, limit, &expired)
		if len(list) == 0 {
			continue
		}
		sc := list[len(list)-1]
		list[len(list)-1] = nil
		if list = list[:len(list)-1]; len(list) == 0 {
			delete(cc.idle, k)
		} else {
			cc.idle[k] = list
		}
		return sc
	}
	return nil
}

// release keeps sc for the next message when the cache has room for it
// and the server answers RSET, and closes it otherwise.
func (c *Client) release(sc *smtpConn) {
	l := c.cacheLimits()
	if l.Disabled || sc.uses > l.ReuseLimit || c.cacheFull(sc.key, l) {
		sc.quit(min(c.timeouts().Command, quitTimeout))
		return
	}
	if err := sc.reset(min(c.timeouts().Command, rsetTimeout)); err != nil {
		sc.client.Close()
		return
	}
	cc := &c.cache
	cc.mu.Lock()
	if cc.closed || len(cc.idle[sc.key]) >= l.MaxIdle {
		cc.mu.Unlock()
		sc.quit(min(c.timeouts().Command, quitTimeout))
		return
	}
	if cc.idle == nil {
		cc.idle = map[cacheKey][]*smtpConn{}
	}
	sc.idleSince = time.Now()
	cc.idle[sc.key] = append(cc.idle[sc.key], sc)
	if cc.reaper == nil {
		cc.reaper = time.AfterFunc(l.IdleTime, c.reap)
	}
	cc.mu.Unlock()
}

// cacheFull reports whether key has no room for one more idle connection,
// before the RSET is spent on it.
func (c *Client) cacheFull(key cacheKey, l ConnCache) bool {
	c.cache.mu.Lock()
	defer c.cache.mu.Unlock()
	return c.cache.closed || len(c.cache.idle[key]) >= l.MaxIdle
}

// reap closes the connections that have been idle for the limit, and
// runs again when the next one will have been.
func (c *Client) reap() {
	limit := c.cacheLimits().IdleTime
	cc := &c.cache
	var expired []*smtpConn
	cc.mu.Lock()
	now := time.Now()
	var next time.Time
	for k := range cc.idle {
		list := cc.expire(k, now, limit, &expired)
		if len(list) == 0 {
			continue
		}
		if at := list[0].idleSince.Add(limit); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() || cc.closed {
		cc.reaper = nil
	} else {
		cc.reaper.Reset(next.Sub(now))
	}
	cc.mu.Unlock()
	quitAll(expired)
}

// Close sends QUIT on the idle connections and closes them; connections
// in use when it is called are closed at the end of their transaction.
// The Client can still deliver afterwards, without the cache.
func (c *Client) Close() error {
	cc := &c.cache
	var all []*smtpConn
	cc.mu.Lock()
	cc.closed = true
	for _, list := range cc.idle {
		all = append(all, list...)
	}
	cc.idle = nil
	if cc.reaper != nil {
		cc.reaper.Stop()
		cc.reaper = nil
	}
	cc.mu.Unlock()
	quitAll(all)
	return nil
}

// quitAll quits the connections at once and waits for them.
func quitAll(conns []*smtpConn) {
	var wg sync.WaitGroup
	for _, sc := range conns {
		wg.Go(func() { sc.quit(quitTimeout) })
	}
	wg.Wait()
}

// cacheKeys lists the keys under which a cached connection would do for
// the session, best first: it must have been opened for the same
// destination, host, address and login, and be as secure as a fresh one
// would have to be.
func (s *session) cacheKeys() []cacheKey {
	k := cacheKey{dest: s.dest(), relay: s.relay, auth: s.authIdentity(), tls: true, verified: true, roots: s.roots()}
	if s.mode() != routes.TLSMay || s.msg.RequireTLS {
		// A fresh connection would need a verified certificate
		// (handshake), and REQUIRETLS one too (RFC 8689 §4.2.1).
		return []cacheKey{k}
	}
	unverified, plain := k, k
	unverified.verified = false
	plain.tls, plain.verified = false, false
	return []cacheKey{k, unverified, plain}
}

// key is the cache key of the session's connection.
func (s *session) key() cacheKey {
	return cacheKey{dest: s.dest(), relay: s.relay, auth: s.authIdentity(), tls: s.tls, verified: s.verified, roots: s.roots()}
}

func (s *session) dest() string {
	if s.h.route != nil {
		return "route " + s.h.route.String()
	}
	return s.domain
}

func (s *session) authIdentity() string {
	if s.h.route == nil {
		return ""
	}
	return s.h.route.Username
}

// closedByServer reports whether err, the reply to the first command on a
// cached connection, says that the server has closed it in the meantime:
// an I/O error, or 421 (RFC 5321 §3.8, a server ending the session).
func closedByServer(err error) bool {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code == 421
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}
