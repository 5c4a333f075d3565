package imapcache

import (
	"testing"

	"github.com/postkit/postkit/maildir"
)

func TestNameSizes(t *testing.T) {
	for _, name := range []string{
		"1795336972.M123456P4242Q1R8f3a0c1d2e4b5a69.mx,S=1834",
		"1795336980.M5P9Q2R0011223344556677.mx,S=2210,W=2270",
		"1795336980.M5P9Q2.mx,W=2270,S=2210",
		"1000000010.M1P1Q10.host",
		"1000000010.M1P1Q10.host,S=12:1,S=99",
		"1000000010.M1P1Q10.host,S=,W=x1",
		"1000000010.M1P1Q10.host,S=1,S=2,W=99999999999999999999",
		"S=5,W=6",
		"",
	} {
		n := maildir.ParseName(name)
		if size, vsize := nameSizes(name); size != n.Size || vsize != n.VSize {
			t.Errorf("nameSizes(%q) = %d, %d, want %d, %d as maildir.ParseName", name, size, vsize, n.Size, n.VSize)
		}
	}
}
