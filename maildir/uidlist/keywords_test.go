package uidlist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseKeywords(t *testing.T) {
	in := "0 $Forwarded\n1 $Junk\r\n3 two words\nx bad\n26 out of range\n2\n4 \n-1 neg\n 5 lead\n25 last\n1 NonJunk\n7 torn"
	k := ParseKeywords([]byte(in))
	want := Keywords{}
	want.Names[0], want.Names[1], want.Names[3], want.Names[25] = "$Forwarded", "NonJunk", "two words", "last"
	if *k != want {
		t.Errorf("ParseKeywords(%q) = %q, want %q", in, k.Names, want.Names)
	}
	if got, want := string(k.Marshal()), "0 $Forwarded\n1 NonJunk\n3 two words\n25 last\n"; got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
	if c, ok := k.Letter("$forwarded"); !ok || c != 'a' {
		t.Errorf("Letter($forwarded) = %q, %v, want 'a'", c, ok)
	}
	if c, ok := k.Letter("last"); !ok || c != 'z' {
		t.Errorf("Letter(last) = %q, %v, want 'z'", c, ok)
	}
	if _, ok := k.Letter("missing"); ok {
		t.Errorf("Letter(missing) found")
	}
	if n, ok := k.Name('d'); !ok || n != "two words" {
		t.Errorf("Name('d') = %q, %v", n, ok)
	}
	for _, c := range []byte{'c', 'A', '{'} {
		if n, ok := k.Name(c); ok {
			t.Errorf("Name(%q) = %q", c, n)
		}
	}
}

func TestAddKeywords(t *testing.T) {
	dir := newMaildir(t)
	m := Open(dir, nil)
	k, err := m.AddKeywords("$Forwarded", "$Junk")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := k.Letter("$Junk"); c != 'b' {
		t.Errorf("Letter($Junk) = %q, want 'b'", c)
	}
	p := filepath.Join(dir, KeywordsFileName)
	first, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}

	// Keep a hole at 'b': new keywords fill it first.
	if err := os.WriteFile(p, []byte("0 $Forwarded\n2 Work\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).Truncate(time.Second)
	os.Chtimes(p, future, future)
	os.WriteFile(p+".lock", nil, 0o600) // a leftover: removed under the uidlist lock
	_, err = m.AddKeywords("$junk", "Home", "$Forwarded", "work", "Private")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if want := "0 $Forwarded\n1 $junk\n2 Work\n3 Home\n4 Private\n"; string(data) != want {
		t.Errorf("dovecot-keywords = %q, want %q", data, want)
	}
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.ModTime().Unix() <= future.Unix() || !info.ModTime().After(first.ModTime()) {
		t.Errorf("mtime %v did not grow past %v", info.ModTime(), future)
	}
	if _, err := os.Stat(p + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keywords lock left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uidlist lock left: %v", err)
	}

	// Existing names need no lock and change nothing.
	before, _ := os.Stat(p)
	if _, err := m.AddKeywords("HOME"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) {
		t.Errorf("dovecot-keywords rewritten for a known keyword")
	}
}

func TestAddKeywordsFull(t *testing.T) {
	dir := newMaildir(t)
	m := Open(dir, nil)
	var names []string
	for i := range MaxKeywords {
		names = append(names, fmt.Sprintf("k%d", i))
	}
	if _, err := m.AddKeywords(names...); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddKeywords("one-too-many"); !errors.Is(err, ErrTooManyKeywords) {
		t.Errorf("27th keyword: %v, want ErrTooManyKeywords", err)
	}
	k, err := m.Keywords()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := k.Name('z'); n != "k25" {
		t.Errorf("Name('z') = %q, want k25", n)
	}
}

func TestAddKeywordsInvalid(t *testing.T) {
	m := Open(newMaildir(t), nil)
	for _, name := range []string{"", "a b", "a\nb", "a\rb", "tab\t", "del\x7f"} {
		if _, err := m.AddKeywords(name); !errors.Is(err, ErrInvalidKeyword) {
			t.Errorf("AddKeywords(%q) = %v, want ErrInvalidKeyword", name, err)
		}
	}
}
