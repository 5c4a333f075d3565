package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/maildir"
	"github.com/postkit/postkit/mtasts"
	"github.com/postkit/postkit/routes"
)

// session is one delivery attempt on one SMTP connection to one host.
type session struct {
	c      *Client
	h      host
	domain string // the destination domain
	relay  string
	msg    *Message
	tls    bool // the session is encrypted
	// verified reports that the server's certificate is valid for its
	// name under the configured roots; verifyErr says why not.
	verified  bool
	verifyErr error
	// reused: the connection came from the cache; stale: the server had
	// closed it meanwhile, so the attempt does not count.
	reused, stale bool
	// answered: the server answered the end of data, so the session is
	// fit for another transaction.
	answered bool
	// notes are for Report.Notes.
	notes []string
}

// outcome is a recipient's result in one session; elsewhere means another
// host may still take the recipient.
type outcome struct {
	Result
	elsewhere bool
}

// run opens the session on conn, a fresh connection, and carries out one
// transaction for the recipients open. It returns the recipients'
// outcomes and, when the session failed as a whole before reaching a
// recipient, why: TempFail for "try the next host", PermFail for "give up
// on everyone still open".
func (s *session) run(ctx context.Context, conn net.Conn, open []int) (map[int]outcome, *Result) {
	t := s.c.timeouts()
	conn = &deadlineConn{Conn: conn, write: t.DataBlock}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	client, replies, fail := s.connect(conn, t)
	stop()
	if fail != nil {
		conn.Close()
		if s.enforced() {
			fail.Reply += fmt.Sprintf(" (the MTA-STS policy of %s is enforce: verified TLS required)", s.h.stsDomain)
		}
		return nil, fail
	}
	client.CommandTimeout = t.Command
	client.SubmissionTimeout = t.DataEnd
	sc := &smtpConn{key: s.key(), client: client, replies: replies, conn: conn, verifyErr: s.verifyErr}
	return s.use(ctx, sc, open)
}

// reuse carries out the transaction on a cached connection that suits the
// session, if there is one. ok is false when there was none or the
// server had closed it: then the attempt has not counted, and a fresh
// connection is next.
func (s *session) reuse(ctx context.Context, open []int) (out map[int]outcome, fail *Result, ok bool) {
	sc := s.c.take(s.cacheKeys())
	if sc == nil {
		return nil, nil, false
	}
	s.reused = true
	s.tls, s.verified, s.verifyErr = sc.key.tls, sc.key.verified, sc.verifyErr
	out, fail = s.use(ctx, sc, open)
	if s.stale {
		return nil, nil, false
	}
	return out, fail, true
}

// use carries out one transaction on sc, then keeps sc in the cache when
// the session is still in step, or ends it.
func (s *session) use(ctx context.Context, sc *smtpConn, open []int) (map[int]outcome, *Result) {
	stop := context.AfterFunc(ctx, func() { sc.conn.Close() })
	if s.h.sts != nil && s.h.sts.Mode == mtasts.Testing && !s.verified {
		why := "no STARTTLS"
		if s.tls {
			why = fmt.Sprintf("certificate not valid: %v", s.verifyErr)
		}
		s.notes = append(s.notes, fmt.Sprintf("MTA-STS policy of %s (testing): %s: %s; enforce mode would not deliver to it", s.h.stsDomain, s.relay, why))
	}
	client := sc.client
	if fail := s.policy(client); fail != nil {
		stop()
		client.Quit()
		client.Close()
		return nil, fail
	}
	out, fail := s.transaction(client, open)
	sc.uses++
	switch {
	case !stop():
		// The context ended the connection.
		client.Close()
	case fail == nil && s.answered:
		s.c.release(sc)
	case fail == nil:
		client.Quit()
		client.Close()
	default:
		client.Close()
	}
	return out, fail
}

// mode is the TLS the session needs.
func (s *session) mode() routes.TLSMode {
	if s.enforced() {
		// RFC 8461 §4.2: STARTTLS with a certificate valid for the MX
		// host's name, or no delivery.
		return routes.TLSRequire
	}
	if s.h.route != nil {
		return s.h.route.TLS
	}
	return routes.TLSMay
}

// connect opens the SMTP session: greeting, EHLO, STARTTLS when offered
// and EHLO again over TLS, and AUTH when the route has credentials. The
// client reads and writes through replies.
func (s *session) connect(conn net.Conn, t Timeouts) (*smtp.Client, *replyConn, *Result) {
	mode := s.mode()
	if mode == routes.TLSImplicit {
		tc, fail := s.handshake(conn, t, true)
		if fail != nil {
			return nil, nil, fail
		}
		// go-smtp reads the greeting itself.
		replies := &replyConn{Conn: tc}
		client := smtp.NewClient(replies)
		client.CommandTimeout = t.Command
		if err := client.Hello(s.c.Hostname); err != nil {
			return nil, nil, s.fail(err, "greeting or EHLO")
		}
		return client, replies, s.authenticate(client)
	}

	// go-smtp's NewClientStartTLS would say "EHLO localhost" before
	// STARTTLS and has no exported STARTTLS, so the plain-text part of the
	// dialog is ours: greeting, EHLO with our name, STARTTLS.
	tp := textproto.NewConn(conn)
	conn.SetDeadline(time.Now().Add(t.Command))
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, nil, s.fail(err, "greeting")
	}
	id, err := tp.Cmd("EHLO %s", s.c.Hostname)
	if err != nil {
		return nil, nil, s.fail(err, "EHLO")
	}
	tp.StartResponse(id)
	_, ehlo, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, nil, s.fail(err, "EHLO")
	}
	startTLS := false
	for _, line := range strings.Split(ehlo, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			startTLS = true
		}
	}
	conn.SetDeadline(time.Time{})
	if tp.R.Buffered() > 0 {
		// Nothing may follow the EHLO reply before our next command.
		return nil, nil, &Result{Status: TempFail, Code: "4.5.0", Reply: "protocol error: " + s.relay + " sent data after its EHLO reply", Relay: s.relay}
	}
	next := conn
	switch {
	case startTLS:
		conn.SetDeadline(time.Now().Add(t.Command))
		id, err := tp.Cmd("STARTTLS")
		if err == nil {
			tp.StartResponse(id)
			_, _, err = tp.ReadResponse(220)
			tp.EndResponse(id)
		}
		conn.SetDeadline(time.Time{})
		if err != nil {
			return nil, nil, s.fail(err, "STARTTLS")
		}
		if tp.R.Buffered() > 0 {
			// RFC 3207 §5 (and CVE-2011-0411): plain text injected
			// after the STARTTLS reply must not be read as if it
			// came over TLS.
			return nil, nil, &Result{Status: TempFail, Code: "4.5.0", Reply: "protocol error: " + s.relay + " sent data after its STARTTLS reply", Relay: s.relay}
		}
		tc, fail := s.handshake(conn, t, mode != routes.TLSMay)
		if fail != nil {
			return nil, nil, fail
		}
		next = tc
	case mode != routes.TLSMay && s.enforced():
		return nil, nil, &Result{Status: TempFail, Code: "4.7.10", Reply: s.relay + " does not offer STARTTLS", Relay: s.relay}
	case mode != routes.TLSMay:
		return nil, nil, &Result{Status: TempFail, Code: "4.7.10", Reply: s.relay + " does not offer STARTTLS, and the route requires TLS", Relay: s.relay}
	case s.msg.RequireTLS:
		return nil, nil, &Result{Status: TempFail, Code: codeRequireTLS, Reply: s.relay + " does not offer STARTTLS, and the message requires TLS (REQUIRETLS)", Relay: s.relay}
	}
	// go-smtp starts by reading a greeting: the real one has been read, so
	// it gets a stand-in, then says EHLO: for the first time over TLS (RFC
	// 3207 §4.2 asks for a fresh EHLO), or, in plain text, to a stand-in
	// that answers with the server's reply to ours.
	greeted := &greetedConn{Conn: next, greeting: strings.NewReader("220 " + s.h.name + "\r\n")}
	if next == conn {
		greeted.ehlo, greeted.ehloReply = "EHLO "+s.c.Hostname+"\r\n", ehloReplyText(ehlo)
	}
	replies := &replyConn{Conn: greeted}
	client := smtp.NewClient(replies)
	client.CommandTimeout = t.Command
	if err := client.Hello(s.c.Hostname); err != nil {
		return nil, nil, s.fail(err, "EHLO")
	}
	return client, replies, s.authenticate(client)
}

// enforced reports whether an MTA-STS policy in enforce mode applies.
func (s *session) enforced() bool {
	return s.h.sts != nil && s.h.sts.Mode == mtasts.Enforce
}

// handshake runs the TLS client handshake on conn. With verify, a
// certificate that is not valid for the host fails it; without, it is
// noted in s.verified only.
func (s *session) handshake(conn net.Conn, t Timeouts, verify bool) (net.Conn, *Result) {
	roots := s.roots()
	cfg := &tls.Config{
		// Verification is done below, so that an opportunistic session
		// can go on with a certificate it cannot check (RFC 7435).
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := verifyChain(cs, roots, s.h.name)
			s.verified, s.verifyErr = err == nil, err
			if verify {
				return err
			}
			return nil
		},
	}
	if net.ParseIP(s.h.name) == nil {
		cfg.ServerName = s.h.name
	}
	tc := tls.Client(conn, cfg)
	conn.SetDeadline(time.Now().Add(t.Connect))
	err := tc.Handshake()
	conn.SetDeadline(time.Time{})
	if err != nil {
		return nil, &Result{Status: TempFail, Code: "4.7.5", Reply: fmt.Sprintf("TLS handshake with %s: %v", s.relay, err), Relay: s.relay}
	}
	s.tls = true
	return tc, nil
}

// roots verifies the server's certificate (the system's roots when nil).
func (s *session) roots() *x509.CertPool {
	if s.h.route != nil && s.h.route.RootCAs != nil {
		return s.h.route.RootCAs
	}
	return s.c.RootCAs
}

// verifyChain checks the server's certificate chain for name (a host name
// or an IP address) under roots (the system's when nil).
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool, name string) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("remote: the server sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	return err
}

// authenticate logs in with the route's credentials, over TLS only.
func (s *session) authenticate(client *smtp.Client) *Result {
	r := s.h.route
	if r == nil || r.Username == "" {
		return nil
	}
	if !s.tls {
		client.Close()
		return &Result{Status: TempFail, Code: "4.7.10", Reply: "not sending credentials to " + s.relay + " without TLS", Relay: s.relay}
	}
	var mech sasl.Client
	switch {
	case client.SupportsAuth("PLAIN"):
		mech = sasl.NewPlainClient("", r.Username, r.Password)
	case client.SupportsAuth("LOGIN"):
		mech = sasl.NewLoginClient(r.Username, r.Password)
	default:
		client.Close()
		return &Result{Status: TempFail, Code: "4.7.12", Reply: s.relay + " offers neither AUTH PLAIN nor AUTH LOGIN", Relay: s.relay}
	}
	if err := client.Auth(mech); err != nil {
		client.Close()
		// A refused login is the operator's to fix: defer, as Postfix
		// does by default, rather than bounce the queue.
		res := s.fail(err, "AUTH")
		res.Status = TempFail
		res.Code = "4" + res.Code[1:]
		return res
	}
	return nil
}

// policy checks what the message needs from the server before MAIL: size,
// SMTPUTF8 and REQUIRETLS.
func (s *session) policy(client *smtp.Client) *Result {
	if s.msg.RequireTLS {
		// RFC 8689 §4.2.1: only to a verified TLS peer that offers
		// REQUIRETLS; another MX host may qualify.
		if ok, _ := client.Extension("REQUIRETLS"); !ok || !s.verified {
			return &Result{Status: TempFail, Code: codeRequireTLS, Reply: s.relay + " offers no verified TLS with REQUIRETLS, which the message requires", Relay: s.relay}
		}
	}
	if s.msg.SMTPUTF8 {
		// RFC 6531 §3.2: a message that needs SMTPUTF8 cannot go to a
		// server that does not offer it.
		if ok, _ := client.Extension("SMTPUTF8"); !ok {
			return &Result{Status: PermFail, Code: "5.6.7", Reply: "553 5.6.7 " + s.relay + " does not support SMTPUTF8, which the message needs", Relay: s.relay}
		}
	}
	return nil
}

// transaction sends MAIL, one RCPT per open recipient and the data.
func (s *session) transaction(client *smtp.Client, open []int) (map[int]outcome, *Result) {
	f, err := s.msg.Open()
	if err != nil {
		return nil, &Result{Status: TempFail, Code: "4.3.0", Reply: "reading the queued message: " + err.Error()}
	}
	defer f.Close()
	size, err := crlfSize(f)
	if err != nil {
		return nil, &Result{Status: TempFail, Code: "4.3.0", Reply: "reading the queued message: " + err.Error()}
	}
	size += int64(len(s.msg.Header))
	// RFC 1870 §6: do not send a message the server has said is too big.
	if limit, ok := client.MaxMessageSize(); ok && limit > 0 && size > int64(limit) {
		return nil, &Result{Status: PermFail, Code: "5.3.4", Reply: fmt.Sprintf("552 5.3.4 message size %d exceeds the limit of %d of %s", size, limit, s.relay), Relay: s.relay}
	}
	opts := &smtp.MailOptions{Size: size, RequireTLS: s.msg.RequireTLS, UTF8: s.msg.SMTPUTF8, EnvelopeID: s.msg.EnvID}
	switch s.msg.Ret {
	case "FULL":
		opts.Return = smtp.DSNReturnFull
	case "HDRS":
		opts.Return = smtp.DSNReturnHeaders
	}
	if err := client.Mail(s.msg.From, opts); err != nil {
		// MAIL is the first command on a cached connection: a server
		// that has closed it meanwhile is no answer about this message.
		s.stale = s.reused && closedByServer(err)
		return nil, s.fail(err, "MAIL FROM")
	}
	dsn, _ := client.Extension("DSN")
	out := map[int]outcome{}
	var accepted []int
	for _, i := range open {
		r := s.msg.Recipients[i]
		if err := client.Rcpt(r.Address, rcptOptions(r)); err != nil {
			res := s.fail(err, "RCPT TO")
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				// The connection broke: everyone still open tries
				// the next host.
				return out, res
			}
			out[i] = outcome{Result: *res, elsewhere: res.Status == TempFail}
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		client.Reset()
		return out, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return out, &Result{Status: TempFail, Code: "4.3.0", Reply: "reading the queued message: " + err.Error()}
	}
	setAll := func(o outcome) {
		for _, i := range accepted {
			out[i] = o
		}
	}
	w, err := client.Data()
	if err != nil {
		res := s.fail(err, "DATA")
		setAll(outcome{Result: *res, elsewhere: res.Status == TempFail})
		return out, nil
	}
	// textproto's DotWriter turns LF into CRLF and stuffs leading dots.
	_, err = io.WriteString(w, s.msg.Header)
	if err == nil {
		_, err = io.Copy(w, f)
	}
	if err != nil {
		res := s.fail(err, "sending the message")
		setAll(outcome{Result: *res, elsewhere: true})
		return out, nil
	}
	resp, err := w.CloseWithResponse()
	var se *smtp.SMTPError
	// A reply to the end of data, whatever it says, leaves the session
	// ready for the next transaction (RFC 5321 §4.1.1.4), unless the
	// server is closing it (421).
	s.answered = err == nil || errors.As(err, &se) && se.Code != 421
	if err != nil {
		res := s.fail(err, "end of data")
		// Without a reply the host may have accepted the message: leave
		// the retry to the queue rather than send it elsewhere now.
		setAll(outcome{Result: *res, elsewhere: errors.As(err, &se) && res.Status == TempFail})
		return out, nil
	}
	reply := "250 " + resp.StatusText
	code := "2.0.0"
	if c, _, ok := strings.Cut(resp.StatusText, " "); ok && isEnhancedCode(c) {
		code = c
	}
	setAll(outcome{Result: Result{Status: Delivered, Code: code, Reply: reply, Relay: s.relay, DSN: dsn}})
	return out, nil
}

func rcptOptions(r Recipient) *smtp.RcptOptions {
	opts := &smtp.RcptOptions{}
	if r.Notify != "" {
		for _, n := range strings.Split(r.Notify, ",") {
			opts.Notify = append(opts.Notify, smtp.DSNNotify(n))
		}
	}
	if typ, addr, ok := strings.Cut(r.ORCPT, ";"); ok {
		switch strings.ToLower(typ) {
		case "rfc822":
			opts.OriginalRecipientType, opts.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
		case "utf-8":
			opts.OriginalRecipientType, opts.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	return opts
}

// fail turns an error of step into a Result: the server's reply for an
// SMTP error, else a temporary network failure.
func (s *session) fail(err error, step string) *Result {
	var se *smtp.SMTPError
	var te *textproto.Error
	code, msg, enh := 0, "", ""
	switch {
	case errors.As(err, &se):
		code, msg = se.Code, se.Message
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			enh = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
	case errors.As(err, &te):
		code, msg = te.Code, te.Msg
		if c, rest, ok := strings.Cut(te.Msg, " "); ok && isEnhancedCode(c) {
			enh, msg = c, rest
		}
	default:
		return &Result{Status: TempFail, Code: "4.4.2", Reply: fmt.Sprintf("%s with %s: %v", step, s.relay, err), Relay: s.relay}
	}
	status := TempFail
	if code >= 500 {
		status = PermFail
	}
	if enh == "" || enh[0] != byte('0'+code/100) {
		enh = fmt.Sprintf("%d.0.0", code/100)
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	return &Result{Status: status, Code: enh, Reply: fmt.Sprintf("%d %s %s (in reply to %s)", code, enh, msg, step), Relay: s.relay}
}

// isEnhancedCode reports whether s looks like an RFC 3463 code (2.1.5).
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsRune("245", rune(parts[0][0])) {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// crlfSize is the message's size on the wire (RFC 1870 SIZE counts CRLF).
func crlfSize(f io.ReadSeeker) (int64, error) {
	n, err := maildir.VirtualSize(f)
	if err != nil {
		return 0, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return n, err
}
