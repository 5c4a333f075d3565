package control

import (
	"bufio"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// meaningfulLines is the documented rule of Lines written out
// independently: split at LF, trim, drop blank lines and '#' comments.
func meaningfulLines(data string) []string {
	var out []string
	for _, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l[0] != '#' {
			out = append(out, l)
		}
	}
	return out
}

// FuzzControlFile writes the input as a control file and reads it through
// every reader (named etc/hostname, the one Hostname reads), checking each against the documented rules: Lines gives
// exactly the trimmed non-blank, non-comment lines; String the first of
// them or the default; Int and Size a value only when the first line
// parses, the default with an error otherwise, and never both a value and
// an error; Hostname the first line; a Cache's Lines what Root's gives.
func FuzzControlFile(f *testing.F) {
	f.Add([]byte("mail.example.org\n"))
	f.Add([]byte("# the name in greetings\n\n  mail.example.org  \r\nignored\n"))
	f.Add([]byte("127.0.0.1\r\n::1\r\n#10.0.0.0/8\n"))
	f.Add([]byte("52428800"))
	f.Add([]byte("50M\n"))
	f.Add([]byte("4k"))
	f.Add([]byte("-1\n"))
	f.Add([]byte("9223372036854775807\n"))
	f.Add([]byte("8589934592G\n"))
	f.Add([]byte("K\n"))
	f.Add([]byte("\n\n\t\n#only comments\n"))
	f.Add([]byte("\xef\xbb\xbf10\n"))
	f.Add([]byte{})
	const def = 7
	// One root for every input: a worker runs its inputs one at a time,
	// and a directory per input would make the fuzzing mostly mkdir.
	r := Root(f.TempDir())
	if err := os.Mkdir(r.Etc(""), 0o755); err != nil {
		f.Fatal(err)
	}
	// One Cache too: every input rewrites the file in place, often to the
	// same size within one tick of the file times, and the Cache must
	// still see each version.
	c := &Cache{Root: r}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(r.Etc("hostname"), data, 0o644); err != nil {
			t.Fatal(err)
		}

		lines, err := r.Lines("hostname")
		if cached, cerr := c.Lines("hostname"); !slices.Equal(cached, lines) || errText(cerr) != errText(err) {
			t.Fatalf("Cache.Lines(%q) = %q, %v; Root.Lines = %q, %v", data, cached, cerr, lines, err)
		}
		if err != nil {
			// The only refusal: a line longer than the 1 MiB limit.
			if !errors.Is(err, bufio.ErrTooLong) {
				t.Fatalf("Lines(%q) = %v", data, err)
			}
			return
		}
		want := meaningfulLines(string(data))
		if !slices.Equal(lines, want) {
			t.Fatalf("Lines(%q) = %q, want %q", data, lines, want)
		}
		total := 0
		for _, l := range lines {
			total += len(l)
			if l == "" || l[0] == '#' || l != strings.TrimSpace(l) || strings.Contains(l, "\n") {
				t.Fatalf("Lines(%q) gave line %q", data, l)
			}
		}
		if total > len(data) {
			t.Fatalf("Lines(%q) gave %d bytes from %d", data, total, len(data))
		}

		first := "default"
		if len(lines) > 0 {
			first = lines[0]
		}
		if s, err := r.String("hostname", "default"); err != nil || s != first {
			t.Fatalf("String(%q) = %q, %v; want %q", data, s, err, first)
		}
		if len(lines) > 0 {
			if h, err := r.Hostname(""); err != nil || h != first {
				t.Fatalf("Hostname(%q) = %q, %v; want %q", data, h, err, first)
			}
		}

		n, err := r.Int("hostname", def)
		switch {
		case len(lines) == 0:
			if n != def || err != nil {
				t.Fatalf("Int(%q) = %d, %v; want the default", data, n, err)
			}
		case err != nil:
			if n != def {
				t.Fatalf("Int(%q) = %d and error %v: a value with an error", data, n, err)
			}
			if _, perr := strconv.ParseInt(first, 10, 64); perr == nil {
				t.Fatalf("Int(%q) refused %q, a whole number: %v", data, first, err)
			}
		default:
			if want, perr := strconv.ParseInt(first, 10, 64); perr != nil || n != want {
				t.Fatalf("Int(%q) = %d, want %d (%v)", data, n, want, perr)
			}
		}

		size, err := r.Size("hostname", def)
		switch {
		case len(lines) == 0:
			if size != def || err != nil {
				t.Fatalf("Size(%q) = %d, %v; want the default", data, size, err)
			}
		case err != nil:
			if size != def {
				t.Fatalf("Size(%q) = %d and error %v: a value with an error", data, size, err)
			}
		default:
			if size < 0 {
				t.Fatalf("Size(%q) = %d, negative", data, size)
			}
			checkSizeForms(t, first, size)
		}
	})
}

// FuzzParseSize checks ParseSize on any string (imapd passes its flag
// value straight to it): a size is never negative, and the number written
// in bytes or with any suffix that divides it parses back to itself.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"", "0", "1024", "4k", "50M", "1G", "M", "-1", "1T", "+3g", "007K", "4611686018427387904", "4294967296G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d, %v: a value with an error", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		checkSizeForms(t, s, n)
	})
}

// checkSizeForms checks that n, parsed from s, is what every way of
// writing n parses to.
func checkSizeForms(t *testing.T, s string, n int64) {
	t.Helper()
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"", 1}, {"K", 1 << 10}, {"k", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if n%u.mult != 0 {
			continue
		}
		form := strconv.FormatInt(n/u.mult, 10) + u.suffix
		if back, err := ParseSize(form); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, n, form, back, err)
		}
	}
}
