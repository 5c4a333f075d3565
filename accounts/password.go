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
	fmt.Fprint(prompt, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", classify(err)
	}
	if confirm {
		fmt.Fprint(prompt, "Again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", classify(err)
		}
		if string(again) != string(pw) {
			return "", errorf(sysexits.DataErr, "the passwords differ; nothing changed, try again")
		}
	}
	return string(pw), nil
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
