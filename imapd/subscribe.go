package imapd

import (
	"github.com/postkit/postkit/maildir/uidlist"
)

// Subscribe adds a mailbox to the Maildir++ subscriptions file (RFC 9051
// §6.3.7). The mailbox need not exist, but its name must be one that can
// be stored.
func (s *session) Subscribe(name string) error {
	return s.subscribe(name, true)
}

// Unsubscribe removes a mailbox from the subscriptions file (RFC 9051
// §6.3.8); removing one that is not there is no error.
func (s *session) Unsubscribe(name string) error {
	return s.subscribe(name, false)
}

func (s *session) subscribe(name string, on bool) error {
	canon, _, err := s.folder(name)
	if err != nil {
		return err
	}
	if _, err := uidlist.Subscribe(string(s.root), canon, on, nil); err != nil {
		return s.serverError("subscribe "+canon, err)
	}
	return nil
}
