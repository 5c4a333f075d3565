// Package sysexits names the exit codes of sysexits.h that postkit's command
// line programs use, so that an MTA calling them (Postfix's pipe, qmail,
// sendq) knows whether to retry (TempFail) or bounce (everything else
// non-zero).
package sysexits

const (
	OK          = 0  // success
	Usage       = 64 // EX_USAGE: the command was used incorrectly
	DataErr     = 65 // EX_DATAERR: malformed input, or a mail loop
	NoInput     = 66 // EX_NOINPUT: an input file did not exist or was unreadable
	NoUser      = 67 // EX_NOUSER: addressee unknown
	Unavailable = 69 // EX_UNAVAILABLE: a service is unavailable
	Software    = 70 // EX_SOFTWARE: internal software error
	CantCreat   = 73 // EX_CANTCREAT: a file or directory cannot be created
	IOErr       = 74 // EX_IOERR: an error while doing I/O
	TempFail    = 75 // EX_TEMPFAIL: temporary failure; the caller should retry later
	NoPerm      = 77 // EX_NOPERM: insufficient permission
	Config      = 78 // EX_CONFIG: configuration error
)
