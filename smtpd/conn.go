package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postkit/postkit/address"
	"github.com/postkit/postkit/smtpcmd"
)

// conn sits between the transport (TCP, or TLS over it) and go-smtp, which
// sees it as its net.Conn. go-smtp reads one line at a time and is told
// nothing about limits, timeouts or TLS; conn does what go-smtp cannot:
//
//   - Command lines are read by conn, at most one per Read, so go-smtp never
//     holds a command conn has not checked. Lines over their limit (see
//     lineLimit) get one 500 and are thrown away whole; empty, malformed and
//     unknown commands get a 500 or 501 from conn itself. go-smtp thus never
//     counts errors (it would hang up after three, with a 500); conn counts
//     every 4xx and 5xx reply instead and says 421 after Config.MaxErrors.
//   - It follows what go-smtp does with the bytes: after a 354 reply it hands
//     on the DATA block up to and including the CRLF.CRLF that ends it, with
//     go-smtp's own state machine, noting any bare CR or LF on the way (go-smtp
//     eats the dot and CR of ".\r" followed by anything but LF, so the session
//     could not see those); after a BDAT command it hands on the chunk raw;
//     after a 334 reply the next line is a SASL answer, not a command.
//   - Timeouts (RFC 5321 §4.5.3.2): each command line must arrive within
//     CommandTimeout, each DATA block or BDAT chunk within DataTimeout; then
//     conn says 421 and ends the session.
//   - TLS: implicit TLS handshakes on first use; STARTTLS (RFC 3207) is done
//     here, after which a fresh conn over the TLS connection goes back to
//     go-smtp through the listener, so go-smtp and the session start from
//     scratch as RFC 3207 §4.2 requires. go-smtp only knows TLS when its
//     net.Conn is a *tls.Conn, so conn adds STARTTLS and REQUIRETLS to the
//     EHLO reply itself and the session checks TLS for AUTH and REQUIRETLS.
//
// Read and Write are called by go-smtp's connection goroutine only.
type conn struct {
	net.Conn // the transport
	srv      *Server
	ln       *listener
	info     *connInfo
	tls      *tls.Conn // the transport when it is TLS
	br       *bufio.Reader

	handshaken                bool
	mode                      streamMode
	pending                   []byte // the current line, still to be handed to go-smtp
	chunkLeft                 int64
	dataState                 int
	dataPrevCR                bool
	dataBare                  bool   // the DATA block being read has a bare CR or LF
	dataStarted, chunkStarted bool   // the block's or chunk's deadline is set
	lastVerb                  string // verb of the last command handed to go-smtp
	lastArg                   string // and its argument
	hangup                    string // reply to send instead of reading the next command
	wbuf                      []byte
	replyLine                 int  // lines of the current reply written so far
	skipGreet                 bool // drop go-smtp's greeting: this conn follows STARTTLS
	greeted                   bool // go-smtp's greeting has come (or was dropped)

	// inData says the message being received came by DATA, not BDAT;
	// dataLast that the last DATA block had a bare CR or LF. Data reads
	// them, on its own goroutine under BDAT.
	inData, dataLast atomic.Bool

	// go-smtp runs Data for BDAT on a goroutine that fetches the session
	// only when it starts; if go-smtp closes the connection first, that
	// goroutine panics on the nil session (go-smtp v0.25.1 recovers and logs
	// it). So once a BDAT transfer is open, conn ends the session only after
	// Data was entered: dataEntries counts Data calls, bdatWant is the count
	// the open transfer needs.
	dataEntries atomic.Int64
	bdatLast    bool  // the BDAT being run has LAST
	bdatOpen    bool  // a BDAT transfer is open in go-smtp
	bdatMark    int64 // dataEntries when the BDAT line was handed on
	bdatWant    int64

	dead       atomic.Bool // the session is over: reads end, writes vanish
	handedOver atomic.Bool // the transport lives on in a STARTTLS successor
	closeOnce  sync.Once
}

type streamMode int

const (
	modeCommand streamMode = iota // next comes a command line
	modeSASL                      // next comes an answer to a 334 challenge
	modeData                      // inside a DATA block
	modeChunk                     // inside a BDAT chunk
)

// The states of go-smtp's DATA reader (data.go of go-smtp v0.25.1), copied
// so that conn ends a DATA block exactly where go-smtp does: only at
// CRLF "." CRLF, never at a bare LF or CR (SMTP smuggling).
const (
	dataBeginLine = iota
	dataDot
	dataDotCR
	dataCR
	dataMiddle
	dataEnd
)

func newConn(srv *Server, ln *listener, transport net.Conn, info *connInfo) *conn {
	c := &conn{Conn: transport, srv: srv, ln: ln, info: info, br: bufio.NewReader(transport)}
	c.tls, _ = transport.(*tls.Conn)
	return c
}

// Read hands go-smtp the next command line, SASL answer, or part of a DATA
// block or BDAT chunk.
func (c *conn) Read(p []byte) (int, error) {
	if c.dead.Load() || !c.handshake() {
		c.awaitData()
		return 0, io.EOF
	}
	for len(c.pending) == 0 {
		switch c.mode {
		case modeData:
			return c.readData(p)
		case modeChunk:
			return c.readChunk(p)
		}
		if !c.nextLine() {
			c.awaitData()
			return 0, io.EOF
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// nextLine reads one line in command or SASL mode. It leaves the line in
// c.pending for go-smtp, or answers it itself and leaves c.pending empty. It
// returns false when the session is over.
func (c *conn) nextLine() bool {
	if c.hangup != "" {
		c.say(c.hangup)
		return false
	}
	if n := c.info.errorCount(); n >= c.srv.maxErrors {
		c.info.setResult("too-many-errors")
		c.say(fmt.Sprintf("421 4.7.0 %s Too many errors (%d), closing connection", c.srv.hostname, n))
		return false
	}
	sasl := c.mode == modeSASL
	c.mode = modeCommand
	c.Conn.SetReadDeadline(time.Now().Add(c.srv.commandTimeout))
	line, tooLong, err := c.readLine()
	if err != nil {
		c.readFailed(err)
		return false
	}
	if sasl {
		if tooLong {
			// RFC 4954 §4: cancel the exchange; go-smtp answers 501.
			line = []byte("*\r\n")
		}
		c.pending = line
		return true
	}
	text := trimLine(string(line))
	kind, verb, arg := parseCommand(text)
	if tooLong || len(line) > lineLimit(verb) {
		c.reply(500, "5.5.2 Line too long")
		return true
	}
	switch kind {
	case cmdEmpty:
		c.reply(500, "5.5.2 Empty command")
		return true
	case cmdMalformed:
		c.reply(501, "5.5.2 Syntax error: no command")
		return true
	case cmdUnknown:
		c.reply(500, "5.5.1 Command not recognized")
		return true
	case cmdStartTLS:
		return c.startTLS(arg)
	}
	switch verb {
	case "BDAT":
		// go-smtp reads (or skips) the chunk after every BDAT whose
		// argument it takes, whatever it answers, and none after one
		// it refuses.
		size, last, err := smtpcmd.ParseBDAT(arg)
		if err != nil {
			c.reply(501, "5.5.4 Syntax: BDAT size [LAST]")
			return true
		}
		if size > 0 {
			c.mode, c.chunkLeft = modeChunk, size
		}
		c.inData.Store(false)
		c.bdatLast = last
		c.bdatMark = c.dataEntries.Load()
	case "MAIL", "RSET":
		c.bdatOpen = false // go-smtp refuses MAIL during a transfer; RSET ends it
	case "QUIT":
		c.awaitData()
		c.info.setResult("quit")
	case "HELO", "EHLO":
		c.bdatOpen = false
		if domain, _, _ := strings.Cut(arg, " "); !printableASCII(domain) {
			// RFC 5321 §4.1.1.1: a domain or address literal, which
			// go-smtp would echo in its reply as it is.
			c.reply(501, "5.5.4 Syntax: "+verb+" domain")
			return true
		}
		c.info.setGreeting(verb)
	}
	c.lastVerb, c.lastArg = verb, arg
	c.pending = line
	if pm, ok := address.QualifyPostmasterRCPT(verb, arg, postmasterStandInDomain); ok {
		// RFC 5321 §4.1.1.3: see postmasterStandInDomain.
		c.pending = []byte(pm)
	}
	return true
}

// printableASCII reports whether s is printable ASCII without spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// readLine reads a line up to maxLine octets; the rest of a longer line is
// read and dropped, and tooLong is set.
func (c *conn) readLine() (line []byte, tooLong bool, err error) {
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(line)+len(frag) <= maxLine {
			line = append(line, frag...)
		} else {
			tooLong = true
		}
		switch {
		case err == nil:
			return line, tooLong, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, false, err
		}
	}
}

// readData hands on the DATA block, stopping right after the CRLF.CRLF that
// ends it, so go-smtp reads no command with it.
func (c *conn) readData(p []byte) (int, error) {
	if !c.dataStarted {
		c.dataStarted = true
		c.Conn.SetReadDeadline(time.Now().Add(c.srv.dataTimeout))
	}
	n := 0
	for n < len(p) {
		if n > 0 && c.br.Buffered() == 0 {
			break
		}
		if c.dataState == dataMiddle && !c.dataPrevCR {
			// Inside a line nothing but CR and LF changes the state:
			// the buffered bytes up to the next one go on at once,
			// not byte by byte (most of smtpd's CPU for large
			// messages went into this loop).
			buf, _ := c.br.Peek(min(c.br.Buffered(), len(p)-n))
			i := len(buf)
			if k := bytes.IndexByte(buf, '\r'); k >= 0 {
				i = k
			}
			if k := bytes.IndexByte(buf[:i], '\n'); k >= 0 {
				i = k
			}
			if i > 0 {
				n += copy(p[n:], buf[:i])
				c.br.Discard(i)
				continue
			}
		}
		b, err := c.br.ReadByte()
		if err != nil {
			if n > 0 {
				break
			}
			c.readFailed(err)
			return 0, io.EOF
		}
		// RFC 5321 §2.3.8: lines end with CRLF only.
		if b == '\n' && !c.dataPrevCR || b != '\n' && c.dataPrevCR {
			c.dataBare = true
		}
		c.dataPrevCR = b == '\r'
		c.dataState = nextDataState(c.dataState, b)
		p[n] = b
		n++
		if c.dataState == dataEnd {
			c.dataLast.Store(c.dataBare)
			c.dataBare = false
			c.mode, c.dataState, c.dataPrevCR = modeCommand, dataBeginLine, false
			c.dataStarted = false
			break
		}
	}
	return n, nil
}

// nextDataState is go-smtp's DATA state machine.
func nextDataState(state int, b byte) int {
	switch state {
	case dataBeginLine:
		switch b {
		case '.':
			return dataDot
		case '\r':
			return dataCR
		}
	case dataDot:
		if b == '\r' {
			return dataDotCR
		}
	case dataDotCR:
		if b == '\n' {
			return dataEnd
		}
	case dataCR:
		if b == '\n' {
			return dataBeginLine
		}
	case dataMiddle:
		if b == '\r' {
			return dataCR
		}
		return dataMiddle
	}
	return dataMiddle
}

// readChunk hands on a BDAT chunk.
func (c *conn) readChunk(p []byte) (int, error) {
	if !c.chunkStarted {
		c.chunkStarted = true
		c.Conn.SetReadDeadline(time.Now().Add(c.srv.dataTimeout))
	}
	if int64(len(p)) > c.chunkLeft {
		p = p[:c.chunkLeft]
	}
	n, err := c.br.Read(p)
	c.chunkLeft -= int64(n)
	if c.chunkLeft == 0 {
		c.mode, c.chunkStarted = modeCommand, false
	}
	if err != nil && n == 0 {
		c.readFailed(err)
		return 0, io.EOF
	}
	return n, nil
}

// readFailed ends the session after a read error: 421 on a timeout (RFC 5321
// §4.5.3.2), silence when the client went away.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.info.setResult("timeout")
		c.say(fmt.Sprintf("421 4.4.2 %s Timeout, closing connection", c.srv.hostname))
	case errors.Is(err, io.EOF):
		c.info.setResult("disconnected")
	case errors.Is(err, net.ErrClosed):
		c.info.setResult("closed-by-server")
	default:
		c.info.setResult("read-error: " + err.Error())
	}
	c.dead.Store(true)
}

// startTLS runs STARTTLS (RFC 3207 §4), which go-smtp never sees.
func (c *conn) startTLS(arg string) bool {
	switch {
	case arg != "":
		c.reply(501, "5.5.4 Syntax error (no parameters allowed)")
		return true
	case c.tls != nil:
		c.reply(503, "5.5.1 TLS already active")
		return true
	case c.srv.tlsConf == nil:
		c.reply(502, "5.5.1 STARTTLS not available")
		return true
	}
	c.write("220 2.0.0 Ready to start TLS\r\n")
	if c.dead.Load() {
		return false
	}
	// Whatever the client sent after STARTTLS before the handshake is
	// plaintext an attacker could have injected (CVE-2011-0411): drop it.
	if n := c.br.Buffered(); n > 0 {
		c.srv.logf("starttls-discard conn=%s client=%s bytes=%d", c.info.id, c.info.client, n)
	}
	tc := tls.Server(c.Conn, c.srv.tlsConf)
	tc.SetDeadline(time.Now().Add(c.srv.commandTimeout))
	if err := tc.Handshake(); err != nil {
		c.info.setResult("tls-failed: " + err.Error())
		c.dead.Store(true)
		return false
	}
	tc.SetDeadline(time.Time{})
	c.info.setTLS(tc.ConnectionState())
	next := newConn(c.srv, c.ln, tc, c.info)
	next.handshaken, next.skipGreet = true, true
	c.handedOver.Store(true)
	c.dead.Store(true)
	if !c.ln.handover(next) {
		c.handedOver.Store(false)
	}
	return false
}

// handshake completes an implicit TLS handshake before the first byte is
// read or written, within the command timeout.
func (c *conn) handshake() bool {
	if c.tls == nil || c.handshaken {
		return true
	}
	c.handshaken = true
	c.tls.SetDeadline(time.Now().Add(c.srv.commandTimeout))
	if err := c.tls.Handshake(); err != nil {
		c.info.setResult("tls-failed: " + err.Error())
		c.dead.Store(true)
		return false
	}
	c.tls.SetDeadline(time.Time{})
	c.info.setTLS(c.tls.ConnectionState())
	return true
}

// awaitData waits, at most a few seconds, until go-smtp's goroutine for an
// open BDAT transfer has entered Data (see dataEntries).
func (c *conn) awaitData() {
	for i := 0; i < 2000 && c.dataEntries.Load() < c.bdatWant; i++ {
		time.Sleep(time.Millisecond)
	}
}

// isTLS reports whether the session runs over TLS.
func (c *conn) isTLS() bool { return c.tls != nil }

// tlsState returns the TLS connection state, if any.
func (c *conn) tlsState() (tls.ConnectionState, bool) {
	if c.tls == nil {
		return tls.ConnectionState{}, false
	}
	return c.tls.ConnectionState(), true
}

// Write receives go-smtp's replies, line by line.
func (c *conn) Write(p []byte) (int, error) {
	if c.dead.Load() || !c.handshake() {
		return len(p), nil
	}
	c.wbuf = append(c.wbuf, p...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := string(c.wbuf[:i+1])
		c.wbuf = c.wbuf[i+1:]
		c.replied(line)
	}
	return len(p), nil
}

// replied passes one reply line of go-smtp's on and follows what it means.
func (c *conn) replied(line string) {
	code, _ := strconv.Atoi(line[:min(3, len(line))])
	final := len(line) < 4 || line[3] != '-'
	if !c.greeted {
		c.greeted = true
		// The connection rate limit is checked here, on go-smtp's
		// goroutine for the connection, not in the accept loop, and
		// after an implicit TLS handshake, so that the client can read
		// the 421.
		// A STARTTLS successor was counted as the connection it
		// continues.
		if !c.skipGreet {
			if refusal := c.srv.connectionRefusal(c.info); refusal != "" {
				c.info.setResult("rate-limited")
				c.say(refusal)
				return
			}
		}
	}
	if c.skipGreet {
		c.skipGreet = !final
		return
	}
	out := line
	if c.replyLine == 0 && c.lastVerb == "EHLO" && code == 250 {
		out = c.ehloReplyStart(line, final)
	}
	c.replyLine++
	if final {
		c.replyLine = 0
		switch {
		case code == 354:
			c.mode = modeData
			c.inData.Store(true)
		case code == 334:
			c.mode = modeSASL
		case c.lastVerb == "BDAT" && code == 250 && !c.bdatLast:
			if !c.bdatOpen {
				c.bdatOpen, c.bdatWant = true, c.bdatMark+1
			}
		case code >= 400:
			c.info.addError()
		}
		if c.lastVerb == "BDAT" && (code != 250 || c.bdatLast) {
			c.bdatOpen = false
		}
	}
	c.write(out)
}

// ehloReplyStart returns the first line of go-smtp's EHLO reply followed by
// the keywords go-smtp cannot advertise: STARTTLS (RFC 3207) when a
// certificate is configured and the session is not yet TLS, REQUIRETLS
// (RFC 8689 §4) only over TLS.
func (c *conn) ehloReplyStart(first string, final bool) string {
	var extra []string
	if c.tls == nil && c.srv.tlsConf != nil {
		extra = append(extra, "STARTTLS")
	}
	if c.tls != nil {
		extra = append(extra, "REQUIRETLS")
	}
	if len(extra) == 0 {
		return first
	}
	var b strings.Builder
	b.WriteString("250-" + first[4:])
	for i, kw := range extra {
		sep := "-"
		if final && i == len(extra)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + kw + "\r\n")
	}
	return b.String()
}

// reply answers a command conn handled itself; 4xx and 5xx count as errors.
func (c *conn) reply(code int, text string) {
	if code >= 400 {
		c.info.addError()
	}
	c.write(fmt.Sprintf("%d %s\r\n", code, text))
}

// say writes a final reply that ends the session.
func (c *conn) say(line string) {
	c.write(line + "\r\n")
	c.dead.Store(true)
}

func (c *conn) write(s string) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.srv.commandTimeout))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		if !c.dead.Load() {
			c.info.setResult("write-error: " + err.Error())
		}
		c.dead.Store(true)
	}
}

// endAfterReply makes the session end with line instead of reading the next
// command, once go-smtp has sent the reply in progress.
func (c *conn) endAfterReply(result, line string) {
	c.info.setResult(result)
	c.hangup = line
}

// Close closes the transport, unless a STARTTLS successor took it over.
func (c *conn) Close() error {
	if c.handedOver.Load() {
		return nil
	}
	var err error
	c.closeOnce.Do(func() {
		c.dead.Store(true)
		err = c.Conn.Close()
		c.srv.ended(c.info)
	})
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
