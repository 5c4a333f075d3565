package e2e

import (
	"strings"
	"testing"
)

// TestSendqUsageErrorsExit64 checks that sendq's usage errors exit 64
// (EX_USAGE), as sendq(8) says and as the other programs do, and say what
// was wrong on stderr.
func TestSendqUsageErrorsExit64(t *testing.T) {
	root := sqRoot(t, "", nil)
	for _, tc := range []struct {
		name string
		args []string
		say  string // in stderr
	}{
		{"unknown global flag", []string{"--no-such-flag", "list"}, "no-such-flag"},
		{"unknown flag alone", []string{"--no-such-flag"}, "no-such-flag"},
		{"unknown command flag", []string{"list", "--no-such-flag"}, "no-such-flag"},
		{"show without an ID", []string{"show"}, "sendq show ID"},
		{"rm with two IDs", []string{"rm", "0000000000000000", "0000000000000001"}, "sendq rm ID"},
		{"list with an argument", []string{"list", "x"}, "sendq list"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no command", nil, "no command given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--root", root}, tc.args...)
			code, _, stderr := sqCommand(t, "", nil, args...)
			if code != 64 || !strings.Contains(stderr, tc.say) {
				t.Errorf("sendq %q = %d, stderr %q; want 64 and %q", args, code, stderr, tc.say)
			}
		})
	}
}
