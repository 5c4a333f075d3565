package lda

import (
	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/maillog"
	"github.com/postkit/postkit/spamheader"
)

// spamMarked reports whether msg carries a header field that
// ROOT/etc/spam-header names (package spamheader): a content filter's
// verdict that the message is spam, which sends it to the Junk folder as
// Options.Junk does. The file is read at every delivery; a file that
// cannot be read, and lines that are no rule, are logged and marked
// nothing. smtpd removes these fields from incoming mail before its
// filters run, so that a sender cannot set them.
func spamMarked(root control.Root, user string, msg *Message) bool {
	rules, bad, err := spamheader.Load(root)
	for _, e := range bad {
		sieveLogf("user=%s error=%q", maillog.Quote(user), e)
	}
	if err != nil {
		sieveLogf("user=%s error=%q", maillog.Quote(user), err)
		return false
	}
	r, ok := spamheader.Marked(msg.data, rules)
	if ok {
		sieveLogf("user=%s action=junk reason=spam-header field=%q", maillog.Quote(user), r.String())
	}
	return ok
}
