package accounts

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/postkit/postkit/sysexits"
	"github.com/postkit/postkit/users"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// maxPasswordLine bounds the password line read from standard input.
const maxPasswordLine = 4096

// NewPassword returns a new password: a generated one if random is set
// (users.GeneratePassword), else one read with ReadPassword and confirmed on
// a terminal.
func NewPassword(random bool, in *os.File, prompt io.Writer) (string, error) {
	if random {
		return users.GeneratePassword()
	}
	return ReadPassword(in, prompt, true)
}

// ReadPassword reads a password from in. On a terminal it prompts on prompt
// and reads without echo, asking a second time when confirm is set; otherwise
// it reads one line (without its line ending), so scripts can pipe it in.
func ReadPassword(in *os.File, prompt io.Writer, confirm bool) (string, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return readLine(in)
	}
	pw, err := readNoEcho(in, prompt, "Password: ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := readNoEcho(in, prompt, "Again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errorf(sysexits.DataErr, "the passwords differ; nothing changed, try again")
	}
	return pw, nil
}

// readNoEcho turns the terminal's echo off, then shows the prompt and reads
// one line. The order matters: term.ReadPassword turns echo off only after a
// prompt printed before it, so a password typed (or pasted) right after the
// prompt appears would be echoed.
func readNoEcho(in *os.File, prompt io.Writer, text string) (string, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", classify(err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", classify(err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(prompt, text)
	pw, err := readLine(in)
	fmt.Fprintln(prompt)
	return pw, err
}

// readLine reads one line of at most maxPasswordLine bytes; the final line
// break (LF or CRLF) is not part of it, all other characters are.
func readLine(in io.Reader) (string, error) {
	r := bufio.NewReaderSize(io.LimitReader(in, maxPasswordLine+2), 64)
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", classify(err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if len(line) > maxPasswordLine {
		return "", errorf(sysexits.DataErr, "password line longer than %d bytes", maxPasswordLine)
	}
	return line, nil
}
