package pop3

import (
	"errors"
	"io/fs"
)

// stat returns the number and total size of the messages not marked deleted.
func (s *session) stat() (int, int64) {
	count, size := 0, int64(0)
	for i, m := range s.msgs {
		if !s.deleted[i] {
			count++
			size += m.Size
		}
	}
	return count, size
}

// message parses a message-number argument and checks that the message is
// not marked deleted (RFC 1939 §5). It answers -ERR and returns false
// otherwise.
func (s *session) message(arg string) (int, bool) {
	n, ok := parseMsgNumber(arg, len(s.msgs))
	if !ok {
		s.reply("-ERR no such message")
		return 0, false
	}
	if s.deleted[n-1] {
		s.reply("-ERR message %d already deleted", n)
		return 0, false
	}
	return n - 1, true
}

func (s *session) cmdSTAT(cmd Command) {
	if !s.noArgs(cmd) {
		return
	}
	count, size := s.stat()
	// RFC 1939 §5: exactly "+OK count size" for STAT.
	s.reply("+OK %d %d", count, size)
}

func (s *session) cmdLIST(cmd Command) {
	switch len(cmd.Args) {
	case 0:
		count, size := s.stat()
		s.reply("+OK %d messages (%d octets)", count, size)
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply("%d %d", i+1, m.Size)
			}
		}
		s.reply(".")
	case 1:
		if i, ok := s.message(cmd.Args[0]); ok {
			s.reply("+OK %d %d", i+1, s.msgs[i].Size)
		}
	default:
		s.badCommand("-ERR syntax: LIST [msg]")
	}
}

func (s *session) cmdUIDL(cmd Command) {
	switch len(cmd.Args) {
	case 0:
		s.reply("+OK unique-id listing follows")
		for i, m := range s.msgs {
			if !s.deleted[i] {
				s.reply("%d %s", i+1, m.UID)
			}
		}
		s.reply(".")
	case 1:
		if i, ok := s.message(cmd.Args[0]); ok {
			s.reply("+OK %d %s", i+1, s.msgs[i].UID)
		}
	default:
		s.badCommand("-ERR syntax: UIDL [msg]")
	}
}

func (s *session) cmdDELE(cmd Command) {
	if len(cmd.Args) != 1 {
		s.badCommand("-ERR syntax: DELE msg")
		return
	}
	if i, ok := s.message(cmd.Args[0]); ok {
		// Only marked: QUIT removes it (RFC 1939 §6).
		s.deleted[i] = true
		s.reply("+OK message %d deleted", i+1)
	}
}

func (s *session) cmdRSET(cmd Command) {
	if !s.noArgs(cmd) {
		return
	}
	clear(s.deleted)
	count, size := s.stat()
	s.reply("+OK %d messages (%d octets)", count, size)
}

func (s *session) cmdRETR(cmd Command) {
	if len(cmd.Args) != 1 {
		s.badCommand("-ERR syntax: RETR msg")
		return
	}
	i, ok := s.message(cmd.Args[0])
	if !ok {
		return
	}
	if !s.send(i, -1, "+OK %d octets", s.msgs[i].Size) {
		return
	}
	s.retrieved++
	// The message is marked seen as soon as it was sent, so a mail client
	// using IMAP on the same mailbox shows it read even if this session
	// never reaches QUIT.
	if err := s.mbox.MarkSeen(i); err != nil {
		s.logError("marking message seen", err)
	}
}

func (s *session) cmdTOP(cmd Command) {
	if len(cmd.Args) != 2 {
		s.badCommand("-ERR syntax: TOP msg lines")
		return
	}
	lines, ok := parseDecimal(cmd.Args[1])
	if !ok {
		s.badCommand("-ERR syntax: TOP msg lines")
		return
	}
	i, ok := s.message(cmd.Args[0])
	if !ok {
		return
	}
	// TOP does not mark the message seen: clients use it to preview.
	s.send(i, lines, "+OK top of message follows")
}

// send writes the status line and message i (all of it when bodyLines < 0,
// else as TOP). It reports whether the message was sent; a failure while
// sending ends the session, because the response cannot be completed.
func (s *session) send(i int, bodyLines int64, format string, args ...any) bool {
	rc, err := s.mbox.Open(i)
	if errors.Is(err, fs.ErrNotExist) {
		s.reply("-ERR message %d was removed by another program", i+1)
		return false
	}
	if err != nil {
		s.logError("opening message", err)
		s.reply("-ERR [SYS/TEMP] cannot read message %d", i+1)
		return false
	}
	defer rc.Close()
	s.reply(format, args...)
	if s.copyBuf == nil {
		s.copyBuf = make([]byte, copyBufSize)
	}
	if err := writeMessage(s.w, rc, s.copyBuf, bodyLines); err != nil {
		s.logError("sending message", err)
		s.result = "send-failed"
		s.end = true
		return false
	}
	return true
}
