package imapd

import (
	"path"
	"testing"

	"github.com/postkit/postkit/maildir"
)

func TestLettersOfFile(t *testing.T) {
	for _, file := range []string{
		"cur/1795336980.M5P9Q2.mx,S=2210,W=2270:2,FS",
		"cur/1795336980.M5P9Q2.mx:2,",
		"cur/1795336980.M5P9Q2.mx:2,abFST",
		"new/1795336980.M5P9Q2.mx,S=2210",
		"cur/1795336980.M5P9Q2.mx:1,S",
		"cur/name:2,S:2,F",
		"cur/name:",
		"name:2,RS",
		"",
	} {
		if got, want := lettersOfFile(file), maildir.ParseName(path.Base(file)).Flags; got != want {
			t.Errorf("lettersOfFile(%q) = %q, want %q as maildir.ParseName", file, got, want)
		}
	}
}
