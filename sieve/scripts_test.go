package sieve

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testEnv is an Environment for tests: a fixed clock, a set of mailboxes and
// a vacation store.
type testEnv struct {
	now       time.Time
	mailboxes map[string]bool
	replied   map[string]bool // "sender handle"
	err       error
}

func (e *testEnv) Now() time.Time { return e.now }

func (e *testEnv) MailboxExists(name string) (bool, error) {
	return e.mailboxes[name], e.err
}

func (e *testEnv) VacationReplied(sender, handle string, days int) (bool, error) {
	return e.replied[sender+" "+handle], e.err
}

func newTestEnv() *testEnv {
	return &testEnv{now: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC), mailboxes: map[string]bool{}, replied: map[string]bool{}}
}

// scriptCase is one run of a script from a .cases file.
type scriptCase struct {
	name     string
	message  string
	env      Envelope
	testEnv  *testEnv
	size     int64
	wantErr  string
	want     []string
	wantNote string
	line     int
}

// readCases reads a .cases file: blocks of "key value" lines, each started
// by "case NAME", with the expected actions after a "want" line up to a
// blank line. Keys: message FILE (in testdata/messages), from, to, now
// (RFC 3339), size, mailbox NAME, replied SENDER HANDLE, error TEXT,
// note TEXT.
func readCases(t *testing.T, path string) []*scriptCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []*scriptCase
	var cur *scriptCase
	inWant := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if inWant {
			if strings.TrimSpace(line) == "" {
				inWant = false
			} else {
				cur.want = append(cur.want, line)
			}
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		if key == "case" {
			cur = &scriptCase{name: val, message: "plain.eml", line: n, size: -1, testEnv: newTestEnv(),
				env: Envelope{From: "sender@example.org", To: "me@example.com"}}
			cases = append(cases, cur)
			continue
		}
		if cur == nil {
			t.Fatalf("%s:%d: %q before the first case", path, n, line)
		}
		switch key {
		case "message":
			cur.message = val
		case "from":
			cur.env.From = strings.TrimSuffix(strings.TrimPrefix(val, "<"), ">")
		case "to":
			cur.env.To = val
		case "now":
			if cur.testEnv.now, err = time.Parse(time.RFC3339, val); err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
		case "size":
			if cur.size, err = strconv.ParseInt(val, 10, 64); err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
		case "mailbox":
			cur.testEnv.mailboxes[val] = true
		case "replied":
			cur.testEnv.replied[val] = true
		case "error":
			cur.wantErr = val
		case "note":
			cur.wantNote = val
		case "want":
			inWant = true
		default:
			t.Fatalf("%s:%d: unknown key %q", path, n, key)
		}
	}
	return cases
}

func loadMessage(t *testing.T, name string, size int64) *Message {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	if size < 0 {
		size = int64(len(data))
	}
	m, err := NewMessage(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("NewMessage(%s): %v", name, err)
	}
	m.SetSize(size)
	return m
}

// TestScripts runs every testdata/scripts/*.sieve (the examples of the RFCs
// and our own) against the runs its .cases file lists.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("testdata", "scripts", "*.sieve"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".sieve")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			script, err := Parse(src)
			if err != nil {
				t.Fatalf("Parse(%s) = %v", path, err)
			}
			casesPath := strings.TrimSuffix(path, ".sieve") + ".cases"
			cases := readCases(t, casesPath)
			if len(cases) == 0 {
				t.Fatalf("%s has no cases", casesPath)
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					msg := loadMessage(t, c.message, c.size)
					res, err := script.Run(msg, c.env, c.testEnv)
					if c.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), c.wantErr) {
							t.Fatalf("%s:%d: Run() error = %v, want %q", casesPath, c.line, err, c.wantErr)
						}
					} else if err != nil {
						t.Fatalf("%s:%d: Run() error = %v", casesPath, c.line, err)
					}
					var got []string
					for _, a := range res.Actions {
						got = append(got, a.String())
					}
					if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
						t.Errorf("%s:%d: actions\n%s\nwant\n%s", casesPath, c.line, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
					}
					if c.wantNote != "" && !strings.Contains(strings.Join(res.Notes, "\n"), c.wantNote) {
						t.Errorf("%s:%d: notes %q, want %q", casesPath, c.line, res.Notes, c.wantNote)
					}
				})
			}
		})
	}
}
