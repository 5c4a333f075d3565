package smtpcmd

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// bdatCases are the BDAT arguments of the unit test, and the fuzz seeds.
var bdatCases = []struct {
	name string
	arg  string
	size int64
	last bool
	ok   bool
}{
	{"zero", "0", 0, false, true},
	{"size", "10", 10, false, true},
	{"last", "100 LAST", 100, true, true},
	{"last in lower case", "100 last", 100, true, true},
	{"last in mixed case", "3 LaSt", 3, true, true},
	{"runs of spaces", "  7   LAST ", 7, true, true},
	{"tab", "7\tLAST", 7, true, true},
	{"leading zeros", "007", 7, false, true},
	{"largest", "4294967295", 4294967295, false, true},
	{"one too large", "4294967296", 0, false, false},
	{"far too large", "99999999999", 0, false, false},
	{"empty", "", 0, false, false},
	{"spaces only", "   ", 0, false, false},
	{"negative", "-1", 0, false, false},
	{"plus sign", "+1", 0, false, false},
	{"hexadecimal", "0x10", 0, false, false},
	{"underscore", "1_000", 0, false, false},
	{"second number", "1 2", 0, false, false},
	{"too many arguments", "1 LAST x", 0, false, false},
	{"last alone", "LAST", 0, false, false},
	{"last first", "LAST 1", 0, false, false},
	{"not a number", "x", 0, false, false},
	{"unicode digit", "٣", 0, false, false},
	// go-smtp splits with strings.Fields and compares with
	// strings.EqualFold, both Unicode-aware: so must ParseBDAT.
	{"no-break space", "7\u00a0LAST", 7, true, true},
	{"long s folds to s", "7 LA\u017fT", 7, true, true},
}

func TestParseBDAT(t *testing.T) {
	for _, tc := range bdatCases {
		t.Run(tc.name, func(t *testing.T) {
			size, last, err := ParseBDAT(tc.arg)
			if size != tc.size || last != tc.last || (err == nil) != tc.ok {
				t.Errorf("ParseBDAT(%q) = %d, %v, %v, want %d, %v, ok %v", tc.arg, size, last, err, tc.size, tc.last, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseBDAT(%q) = %v, want an error wrapping ErrSyntax", tc.arg, err)
			}
		})
	}
}

// FuzzParseBDAT checks that ParseBDAT never panics and accepts exactly the
// RFC 3030 §2 syntax as go-smtp reads it: one or two white-space separated
// fields, the first 1*DIGIT up to MaxChunkSize, the second LAST in any case.
// A size it accepts formats back to the digits of the input (less leading
// zeros, which 1*DIGIT allows), and the canonical "SIZE [LAST]" parses to
// the same size and LAST.
func FuzzParseBDAT(f *testing.F) {
	for _, tc := range bdatCases {
		f.Add(tc.arg)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		size, last, err := ParseBDAT(arg)
		fields := strings.Fields(arg)
		if err != nil {
			if size != 0 || last {
				t.Fatalf("ParseBDAT(%q) = %d, %v, %v: a refusal with a size or LAST", arg, size, last, err)
			}
			if wantBDAT(fields) {
				t.Fatalf("ParseBDAT(%q) = %v, want it accepted", arg, err)
			}
			return
		}
		if !wantBDAT(fields) {
			t.Fatalf("ParseBDAT(%q) = %d, %v, want a refusal", arg, size, last)
		}
		if size < 0 || size > MaxChunkSize {
			t.Fatalf("ParseBDAT(%q) = size %d, out of range", arg, size)
		}
		digits := strings.TrimLeft(fields[0], "0")
		if digits == "" {
			digits = "0"
		}
		if strconv.FormatInt(size, 10) != digits {
			t.Fatalf("ParseBDAT(%q) = size %d, which does not format to %q", arg, size, fields[0])
		}
		if last != (len(fields) == 2) {
			t.Fatalf("ParseBDAT(%q) = LAST %v", arg, last)
		}
		canonical := strconv.FormatInt(size, 10)
		if last {
			canonical += " LAST"
		}
		if size2, last2, err := ParseBDAT(canonical); size2 != size || last2 != last || err != nil {
			t.Fatalf("ParseBDAT(%q) = %d, %v, %v, want %d, %v as for %q", canonical, size2, last2, err, size, last, arg)
		}
	})
}

// wantBDAT is the BDAT syntax written out another way, for FuzzParseBDAT:
// whether go-smtp takes an argument of these white-space separated fields,
// comparing the size digit by digit rather than with strconv.
func wantBDAT(fields []string) bool {
	if len(fields) < 1 || len(fields) > 2 || len(fields) == 2 && !strings.EqualFold(fields[1], "LAST") {
		return false
	}
	digits := strings.TrimLeft(fields[0], "0")
	if fields[0] == "" || strings.Trim(fields[0], "0123456789") != "" || len(digits) > 10 {
		return false
	}
	return len(digits) < 10 || digits <= "4294967295"
}
