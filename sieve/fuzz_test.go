package sieve

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzTimeBound is far above what one input needs (microseconds); an input
// that takes longer has found super-linear behaviour.
const fuzzTimeBound = 2 * time.Second

// FuzzParse feeds arbitrary scripts to Parse and runs those that parse on a
// MIME message: no input may panic, and none may take long.
func FuzzParse(f *testing.F) {
	scripts, _ := filepath.Glob(filepath.Join("testdata", "scripts", "*.sieve"))
	for _, path := range scripts {
		if src, err := os.ReadFile(path); err == nil {
			f.Add(src)
		}
	}
	for _, s := range []string{
		"if header :matches \"subject\" \"*a*a*a*a*a*a*b\" { keep; }",
		"require [\"variables\", \"encoded-character\"]; set \"a\" \"${hex:41 42}${unicode:1F600}${a}${a}\";",
		"require \"reject\"; reject text:\n..x\n.\n;",
		"/* unterminated",
		"if anyof(not allof(true, false), exists \"x\") { stop; }",
	} {
		f.Add([]byte(s))
	}
	msgData, err := os.ReadFile(filepath.Join("testdata", "messages", "mime.eml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		script, err := Parse(src)
		if d := time.Since(start); d > fuzzTimeBound {
			t.Fatalf("Parse(%q) took %v", src, d)
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse(%q) error %T %v, want *Error", src, err, err)
			}
			return
		}
		msg, err := NewMessage(bytes.NewReader(msgData), int64(len(msgData)))
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		res, _ := script.Run(msg, Envelope{From: "a@example.org", To: "me+x@example.com"}, newTestEnv())
		if d := time.Since(start); d > fuzzTimeBound {
			t.Fatalf("Run(%q) took %v", src, d)
		}
		if len(res.Actions) == 0 || len(res.Actions) > MaxActions+1 {
			t.Fatalf("Run(%q) gave %d actions", src, len(res.Actions))
		}
	})
}

// FuzzMessage feeds arbitrary messages to a script that uses every test.
func FuzzMessage(f *testing.F) {
	msgs, _ := filepath.Glob(filepath.Join("testdata", "messages", "*.eml"))
	for _, path := range msgs {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	script, err := Parse([]byte(`require ["body", "date", "index", "relational", "variables", "vacation", "subaddress", "envelope", "imap4flags", "fileinto"];
if anyof(body :raw :contains "x", body :content "text" :matches "*a*", body :text :contains "y",
         date :value "gt" "date" "iso8601" "2000", date :index 1 :last "received" "weekday" "0",
         address :detail :matches ["to", "from", "cc"] "*", header :count "gt" "received" "2",
         header :matches "subject" "*?*") {
  fileinto "${1}x";
}
vacation :addresses ["a@example.org"] "away";`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := NewMessage(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		res, _ := script.Run(msg, Envelope{From: "b@example.org", To: "a@example.org"}, newTestEnv())
		if len(res.Actions) == 0 {
			t.Fatalf("Run on %q gave no action", data)
		}
	})
}
