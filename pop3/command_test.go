package pop3

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Command
		err  error
	}{
		{"keyword only", "STAT\r\n", Command{Name: "STAT"}, nil},
		{"lower case", "stat", Command{Name: "STAT"}, nil},
		{"bare LF", "NOOP\n", Command{Name: "NOOP"}, nil},
		{"one argument", "RETR 1\r\n", Command{Name: "RETR", Args: []string{"1"}, Rest: "1"}, nil},
		{"two arguments", "TOP 1 10\r\n", Command{Name: "TOP", Args: []string{"1", "10"}, Rest: "1 10"}, nil},
		{"password with spaces", "PASS a b  c\r\n", Command{Name: "PASS", Args: []string{"a", "b", "c"}, Rest: "a b  c"}, nil},
		{"8-bit password", "PASS p\xe4ss\r\n", Command{Name: "PASS", Args: []string{"p\xe4ss"}, Rest: "p\xe4ss"}, nil},
		{"three letters", "TOP", Command{Name: "TOP"}, nil},
		{"empty", "\r\n", Command{}, errEmptyCommand},
		{"two letters", "XY\r\n", Command{}, errBadKeyword},
		{"five letters", "RETRX 1\r\n", Command{}, errBadKeyword},
		{"digit in keyword", "RET1\r\n", Command{}, errBadKeyword},
		{"leading space", " STAT\r\n", Command{}, errBadKeyword},
		{"NUL in argument", "USER a\x00b\r\n", Command{}, errBadArgument},
		{"tab in argument", "USER a\tb\r\n", Command{}, errBadArgument},
		{"CR inside", "USER a\rb\r\n", Command{}, errBadArgument},
		{"DEL in argument", "USER a\x7f\r\n", Command{}, errBadArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.line)
			if err != tt.err {
				t.Fatalf("ParseCommand(%q) error = %v, want %v", tt.line, err, tt.err)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCommand(%q) = %#v, want %#v", tt.line, got, tt.want)
			}
		})
	}
}

func TestParseMsgNumber(t *testing.T) {
	tests := []struct {
		arg   string
		count int
		want  int
		ok    bool
	}{
		{"1", 3, 1, true},
		{"3", 3, 3, true},
		{"4", 3, 0, false},
		{"0", 3, 0, false},
		{"-1", 3, 0, false},
		{"+1", 3, 0, false},
		{"01", 3, 1, true},
		{"1a", 3, 0, false},
		{"", 3, 0, false},
		{"99999999999999999999999", 3, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseMsgNumber(tt.arg, tt.count)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMsgNumber(%q, %d) = %d, %t, want %d, %t", tt.arg, tt.count, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseDecimalSaturates(t *testing.T) {
	got, ok := parseDecimal("99999999999999999999999")
	if !ok || got != 1<<62 {
		t.Errorf("parseDecimal(huge) = %d, %t, want %d, true", got, ok, int64(1<<62))
	}
}

func FuzzCommand(f *testing.F) {
	for _, s := range []string{"STAT\r\n", "retr 1", "TOP 1 0\r\n", "PASS a b c", "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
		"USER \xff\xfe", "\r\n", "LIST  2 ", "X\x00Y", "UIDL 99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParseCommand(line)
		if err != nil {
			return
		}
		if len(cmd.Name) < 3 || len(cmd.Name) > 4 || strings.ToUpper(cmd.Name) != cmd.Name {
			t.Fatalf("ParseCommand(%q): bad name %q", line, cmd.Name)
		}
		if strings.ContainsAny(cmd.Rest, "\r\n\x00") {
			t.Fatalf("ParseCommand(%q): control character in Rest %q", line, cmd.Rest)
		}
		for _, a := range cmd.Args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("ParseCommand(%q): bad argument %q", line, a)
			}
			if n, ok := parseMsgNumber(a, 10); ok && (n < 1 || n > 10) {
				t.Fatalf("parseMsgNumber(%q, 10) = %d, out of range", a, n)
			}
			if n, ok := parseDecimal(a); ok && (n < 0 || strings.Trim(a, "0123456789") != "") {
				t.Fatalf("parseDecimal(%q) = %d, want it refused", a, n)
			}
		}
	})
}
