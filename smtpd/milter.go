package smtpd

import (
	"crypto/tls"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postkit/postkit/milter"
	"github.com/postkit/postkit/spamheader"
)

// Content filters (package milter). Incoming mail, that of the sessions
// sender authentication checks (MX mode, neither authenticated nor a relay
// client), goes through the filters of etc/milters; all other mail
// (submission mode, and users and relay clients on port 25) through those
// of etc/submission-milters. Both files are read at every message; each
// line names one filter (milter.ParseFilter), and the filters run in
// order once the whole message is in, each seeing the header as the ones
// before it left it. The first that rejects, fails temporarily or
// discards decides; a quarantine of any sends the message to Junk.
//
// A filter that cannot be asked (not listening, too slow, a line that
// does not parse) makes the message fail with 451 4.7.1, or, when
// etc/milter-failure says accept, is skipped: either way no message is
// lost.
var milterFailureChoices = []string{"tempfail", "accept"}

// milterDeadline bounds all the filters of one message: the client waits
// ten minutes for the reply to the end of the data (RFC 5321 §4.5.3.2.6),
// and sender authentication may take one of those.
const milterDeadline = 5 * time.Minute

// JunkMilter is the spool envelope's junk value for a message a content
// filter quarantined.
const JunkMilter = "milter"

// configuredFilter is one line of a filter file: a filter, or the error
// that makes the line count as a filter that fails.
type configuredFilter struct {
	spec   string
	filter milter.Filter
	err    error
}

// milterFile is the control file that lists the filters of the session.
func (s *session) milterFile() string {
	if s.checked() {
		return "milters"
	}
	return "submission-milters"
}

// filters reads the session's filter file.
func (s *session) filters() []configuredFilter {
	name := s.milterFile()
	lines, err := s.srv.etc.Lines(name)
	if err != nil {
		// Unreadable: one failing filter, so that the failure policy
		// applies rather than no filtering at all.
		return []configuredFilter{{spec: s.srv.root.Etc(name), err: err}}
	}
	var fs []configuredFilter
	for _, l := range lines {
		f, err := milter.ParseFilter(l)
		if err != nil {
			err = fmt.Errorf("%s: %w", s.srv.root.Etc(name), err)
		}
		spec := f.Spec
		if spec == "" {
			spec = strings.Fields(l)[0]
		}
		fs = append(fs, configuredFilter{spec: spec, filter: f, err: err})
	}
	return fs
}

// filtered is what the filters decided for a message.
type filtered struct {
	header  []milter.Field // the header as they left it
	junk    bool           // a filter quarantined it
	refuse  *smtp.SMTPError
	discard bool
	by      string // the filter that refused or discarded it
}

// runFilters passes the message (its header fields, and its body read
// afresh from body for each filter) through the filters.
func (s *session) runFilters(tx *transaction, rid string, filters []configuredFilter, header []milter.Field, body func() io.Reader) filtered {
	info := s.conn.info
	msg := &milter.Message{
		Hostname:   s.srv.hostname,
		QueueID:    rid,
		ClientIP:   info.ip,
		ClientPort: info.port,
		Helo:       tx.helo,
		AuthUser:   s.user,
		From:       tx.from.String(),
		FromArgs:   mailArgs(tx.opts),
	}
	if cs, ok := s.conn.tlsState(); ok {
		msg.TLSVersion = strings.Replace(tls.VersionName(cs.Version), "TLS ", "TLSv", 1)
		msg.TLSCipher = tls.CipherSuiteName(cs.CipherSuite)
	}
	for _, r := range tx.rcpts {
		msg.Rcpts = append(msg.Rcpts, r.Address)
	}
	failure := s.srv.choice("milter-failure", milterFailureChoices)
	deadline := time.Now().Add(milterDeadline)
	out := filtered{header: header}
	for _, cf := range filters {
		res, err := (*milter.Result)(nil), cf.err
		if err == nil {
			msg.Header, msg.Body = out.header, body()
			res, err = cf.filter.Check(msg, deadline)
		}
		if err != nil {
			s.srv.logf("error conn=%s rid=%s milter=%s error=%q", info.id, rid, logValue(cf.spec), err)
			if failure == "accept" {
				s.srv.logf("milter conn=%s rid=%s milter=%s action=skipped reason=failure", info.id, rid, logValue(cf.spec))
				continue
			}
			out.by = cf.spec
			out.refuse = smtpError(451, smtp.EnhancedCode{4, 7, 1}, "Content filter unavailable, try again later")
			return out
		}
		s.srv.logf("milter conn=%s rid=%s milter=%s action=%s stage=%s changes=%d quarantine=%s",
			info.id, rid, logValue(cf.spec), res.Action, res.Stage, len(res.Changes), quarantineLog(res))
		for _, ig := range res.Ignored {
			s.srv.logf("milter conn=%s rid=%s milter=%s ignored=%s", info.id, rid, logValue(cf.spec), logValue(ig))
		}
		switch res.Action {
		case milter.Reject:
			out.by, out.refuse = cf.spec, filterReply(res, 550, "Message refused by the content filter")
			return out
		case milter.TempFail:
			out.by, out.refuse = cf.spec, filterReply(res, 451, "Message deferred by the content filter, try again later")
			return out
		case milter.Discard:
			out.by, out.discard = cf.spec, true
			return out
		}
		out.header = milter.Apply(out.header, res.Changes)
		out.junk = out.junk || res.Quarantine
	}
	return out
}

func quarantineLog(res *milter.Result) string {
	if !res.Quarantine {
		return "no"
	}
	return logValue("yes: " + res.QuarantineReason)
}

// filterReply is the reply for a filter's reject or temporary failure:
// the one it chose, else code with X.7.1 (RFC 3463: delivery not
// authorized) and text.
func filterReply(res *milter.Result, code int, text string) *smtp.SMTPError {
	enh := smtp.EnhancedCode{code / 100, 7, 1}
	if res.Code != 0 {
		code = res.Code
		enh = smtp.EnhancedCode{code / 100, 7, 1}
		if res.Enhanced != "" {
			parts := strings.Split(res.Enhanced, ".")
			for i := range 3 {
				enh[i], _ = strconv.Atoi(parts[i])
			}
		}
		if res.Text != "" {
			text = res.Text
		}
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}

// mailArgs are the MAIL parameters given to filters, as the client may
// have written them.
func mailArgs(o smtp.MailOptions) []string {
	var args []string
	if o.Size > 0 {
		args = append(args, "SIZE="+strconv.FormatInt(o.Size, 10))
	}
	if o.Body != "" {
		args = append(args, "BODY="+strings.ToUpper(string(o.Body)))
	}
	if o.UTF8 {
		args = append(args, "SMTPUTF8")
	}
	if o.RequireTLS {
		args = append(args, "REQUIRETLS")
	}
	if o.Return != "" {
		args = append(args, "RET="+string(o.Return))
	}
	return args
}

// spamFieldNames are the field names of etc/spam-header, read at every
// message: in incoming mail they are removed before the filters run, so
// that only a filter of ours can mark a message as spam for local
// delivery. Lines that are no rule are logged and skipped.
func (s *session) spamFieldNames() []string {
	rules, bad, err := spamheader.Load(s.srv.root)
	file := logValue(s.srv.root.Etc(spamheader.File))
	for _, e := range bad {
		s.srv.logf("error file=%s error=%q", file, e.Error()+"; skipped")
	}
	if err != nil {
		s.srv.logf("error file=%s error=%q", file, err)
	}
	return spamheader.Names(rules)
}
