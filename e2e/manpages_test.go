package e2e

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// manSections are the sections every page has, by manual section.
var manSections = map[string][]string{
	"8": {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "ENVIRONMENT", "EXIT STATUS", "EXAMPLES", "SEE ALSO"},
	"5": {"NAME", "DESCRIPTION", "SEE ALSO"},
	"7": {"NAME", "DESCRIPTION", "SEE ALSO"},
}

// manPrograms are the programs with a page in section 8: every cmd/ and
// the setup script.
func manPrograms(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(moduleRoot(), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	progs := []string{"postkit-setup"}
	for _, e := range entries {
		if e.IsDir() {
			progs = append(progs, e.Name())
		}
	}
	return progs
}

func manPageText(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleRoot(), "man", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var manFont = regexp.MustCompile(`\\f(\[[A-Z]*\]|\(..|.)`)

// manPlain turns roff source into comparable text: minus signs and hyphens
// become "-", font changes and quotes around macro arguments go.
func manPlain(s string) string {
	s = manFont.ReplaceAllString(s, "")
	s = strings.NewReplacer(`\-`, "-", `\(hy`, "-", `\(em`, "--", `\e`, `\`, `\&`, "").Replace(s)
	return s
}

// manSectionText returns the source of section name (between its .SH and
// the next .SH), and the section names in order.
func manSectionText(page, name string) (string, []string) {
	var names []string
	var text strings.Builder
	in := false
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, ".SH "); ok {
			sec := strings.Trim(strings.TrimSpace(rest), `"`)
			names = append(names, sec)
			in = sec == name
			continue
		}
		if in {
			text.WriteString(line + "\n")
		}
	}
	return text.String(), names
}

// manPages lists the pages in man/.
func manPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(moduleRoot(), "man", "*.[1-8]"))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pages {
		pages[i] = filepath.Base(p)
	}
	return pages
}

// TestManPagesExist wants a section 8 page for every program.
func TestManPagesExist(t *testing.T) {
	for _, prog := range manPrograms(t) {
		if !instExists("man/" + prog + ".8") {
			t.Errorf("%s has no manual page man/%s.8", prog, prog)
		}
	}
}

// TestManPagesSections checks each page's title line and that it has the
// sections of its manual section.
func TestManPagesSections(t *testing.T) {
	for _, name := range manPages(t) {
		t.Run(name, func(t *testing.T) {
			page := manPageText(t, name)
			base, sec := name[:len(name)-2], name[len(name)-1:]
			th := regexp.MustCompile(`(?m)^\.TH "?([^ "]+)"? "?([0-9])"?`).FindStringSubmatch(page)
			if th == nil || th[1] != strings.ToUpper(base) || th[2] != sec {
				t.Errorf(".TH line %q, want .TH %s %s", th, strings.ToUpper(base), sec)
			}
			_, have := manSectionText(page, "")
			for _, want := range manSections[sec] {
				if !slices.Contains(have, want) {
					t.Errorf("no section %s (has %s)", want, strings.Join(have, ", "))
				}
			}
		})
	}
}

// TestManPagesRender renders every page with groff's warnings on and
// mandoc's linter: both must be silent.
func TestManPagesRender(t *testing.T) {
	tools := [][]string{{"groff", "-ww", "-z", "-man"}, {"mandoc", "-Tlint"}}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Skipf("%s not installed", tool[0])
		}
	}
	for _, name := range manPages(t) {
		t.Run(name, func(t *testing.T) {
			for _, tool := range tools {
				cmd := exec.Command(tool[0], append(tool[1:], name)...)
				cmd.Dir = filepath.Join(moduleRoot(), "man")
				out, err := cmd.CombinedOutput()
				if err != nil || len(out) > 0 {
					t.Errorf("%s %s: %v\n%s", strings.Join(tool, " "), name, err, out)
				}
			}
		})
	}
}

// manHelpFlags is what a program's --help lists: flag names and
// environment variables, for the program and, recursively, its commands.
type manHelpFlags struct {
	flags map[string]string // flag -> the command it belongs to ("" for global)
	env   map[string]string
}

var (
	manFlagName = regexp.MustCompile(`(?:^|[\s,\[])(--?[A-Za-z0-9][\w-]*)`)
	manEnvVar   = regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`)
)

// manParseHelp reads urfave/cli's help output (and the setup script's,
// which is laid out the same way): option lines in OPTIONS blocks, command
// names in the COMMANDS block.
func manParseHelp(out string) (flags, env, commands []string) {
	block := ""
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			block = ""
			continue
		case !strings.HasPrefix(line, " "):
			block = strings.ToUpper(strings.TrimSuffix(trimmed, ":"))
			continue
		}
		switch {
		case strings.HasSuffix(block, "OPTIONS") && strings.HasPrefix(trimmed, "-"):
			names, desc, _ := strings.Cut(trimmed, "  ")
			for _, m := range manFlagName.FindAllStringSubmatch(names, -1) {
				flags = append(flags, m[1])
			}
			if i := strings.LastIndex(desc, "[$"); i >= 0 {
				for _, m := range manEnvVar.FindAllStringSubmatch(desc[i:], -1) {
					env = append(env, m[1])
				}
			}
		case block == "COMMANDS":
			name := strings.TrimSuffix(strings.Fields(trimmed)[0], ",")
			if name != "help" {
				commands = append(commands, name)
			}
		}
	}
	return flags, env, commands
}

// manCollect runs BIN [path...] --help for the program and every command
// under it.
func manCollect(t *testing.T, bin string, path []string, into *manHelpFlags) {
	t.Helper()
	cmd := exec.Command(bin, append(slices.Clone(path), "--help")...)
	cmd.Env = append(os.Environ(), "POSTKIT_ROOT="+t.TempDir())
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "USAGE:") && !strings.Contains(string(out), "Usage:") {
		// Not a urfave/cli command: sendq sendmail takes sendmail's own
		// options, which sendq(8) documents in prose.
		t.Logf("%s %s --help shows no usage; its options are not checked", bin, strings.Join(path, " "))
		return
	}
	flags, env, commands := manParseHelp(string(out))
	for _, f := range flags {
		if _, ok := into.flags[f]; !ok {
			into.flags[f] = strings.Join(path, " ")
		}
	}
	for _, e := range env {
		into.env[e] = strings.Join(path, " ")
	}
	for _, c := range commands {
		manCollect(t, bin, append(slices.Clone(path), c), into)
	}
}

// manHelpOnly are flags every urfave/cli program and command has; a page
// may mention them but need not.
var manHelpOnly = []string{"--help", "-h"}

// TestManPagesFlags compares each program's flags (its --help and its
// commands' --help) with its page: every flag and every environment
// variable appears in the page, and every flag named in an OPTIONS tag
// exists.
func TestManPagesFlags(t *testing.T) {
	for _, prog := range manPrograms(t) {
		t.Run(prog, func(t *testing.T) {
			if !instExists("man/" + prog + ".8") {
				t.Fatalf("no man/%s.8", prog)
			}
			page := manPageText(t, prog+".8")
			help := &manHelpFlags{flags: map[string]string{}, env: map[string]string{}}
			if prog == "postkit-setup" {
				out, err := exec.Command("sh", filepath.Join(moduleRoot(), "scripts/setup.sh"), "--help").CombinedOutput()
				if err != nil {
					t.Fatalf("setup.sh --help: %v\n%s", err, out)
				}
				flags, _, _ := manParseHelp(string(out))
				for _, f := range flags {
					help.flags[f] = ""
				}
				help.env["POSTKIT_ROOT"] = ""
			} else {
				manCollect(t, Bin(t, prog), nil, help)
			}
			if len(help.flags) == 0 {
				t.Fatalf("found no flags in %s --help", prog)
			}
			t.Logf("%s: flags %v", prog, slices.Sorted(maps.Keys(help.flags)))
			plain := manPlain(page)
			for f, cmd := range help.flags {
				if slices.Contains(manHelpOnly, f) {
					continue
				}
				if !regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(f) + `($|[^\w-])`).MatchString(plain) {
					where := ""
					if cmd != "" {
						where = " (of " + cmd + ")"
					}
					t.Errorf("flag %s%s is not in %s.8", f, where, prog)
				}
			}
			for e := range help.env {
				if !strings.Contains(plain, e) {
					t.Errorf("environment variable %s (a flag's default) is not in %s.8", e, prog)
				}
			}
			options, _ := manSectionText(page, "OPTIONS")
			lines := strings.Split(options, "\n")
			for i, line := range lines {
				if line != ".TP" || i+1 >= len(lines) {
					continue
				}
				for _, m := range manFlagName.FindAllStringSubmatch(manPlain(lines[i+1]), -1) {
					if _, ok := help.flags[m[1]]; !ok && !slices.Contains(manHelpOnly, m[1]) {
						t.Errorf("%s.8 documents %s under OPTIONS, but %s has no such flag", prog, m[1], prog)
					}
				}
			}
		})
	}
}

// TestManParseHelp checks the reading of help output that the page checks
// rely on.
func TestManParseHelp(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		out                  string
		flags, env, commands []string
	}{
		{
			name: "urfave global options and commands",
			out: "NAME:\n   x - y\n\nCOMMANDS:\n   add      add one\n   help, h  Shows help\n\n" +
				"GLOBAL OPTIONS:\n   --root value            root (default: \"/v\") [$POSTKIT_ROOT]\n" +
				"   -f value, --from value  sender [$SENDER, $FROM]\n" +
				"   --listen ADDR [ --listen ADDR ]  listen [$POSTKIT_LISTEN]\n   --help, -h              show help\n",
			flags:    []string{"--root", "-f", "--from", "--listen", "--listen", "--help", "-h"},
			env:      []string{"POSTKIT_ROOT", "SENDER", "FROM", "POSTKIT_LISTEN"},
			commands: []string{"add"},
		},
		{
			name:  "command options",
			out:   "NAME:\n   mkuser del - d\n\nOPTIONS:\n   --purge     also delete (default: false)\n   --help, -h  show help\n",
			flags: []string{"--purge", "--help", "-h"},
		},
		{
			name:  "setup script",
			out:   "Usage: postkit-setup [OPTIONS]\n\nOptions:\n  --root DIR       the root (default: $POSTKIT_ROOT)\n  -h, --help       help\n",
			flags: []string{"--root", "-h", "--help"},
		},
		{
			name: "no options block",
			out:  "sendmail: usage: invalid option -- '-'\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, env, commands := manParseHelp(tc.out)
			if !slices.Equal(flags, tc.flags) || !slices.Equal(env, tc.env) || !slices.Equal(commands, tc.commands) {
				t.Errorf("manParseHelp(%q) = %q, %q, %q; want %q, %q, %q", tc.out, flags, env, commands, tc.flags, tc.env, tc.commands)
			}
		})
	}
}
