package uidlist

import (
	"slices"
	"strings"
	"testing"

	"github.com/postkit/postkit/maildir"
)

func TestNameSizes(t *testing.T) {
	names := []string{
		"1795336972.M123456P4242Q1R8f3a0c1d2e4b5a69.mx,S=1834",
		"1795336980.M5P9Q2R0011223344556677.mx,S=2210,W=2270:2,FS",
		"1795336980.M5P9Q2.mx,W=2270,S=2210",
		"1000000010.M1P1Q10.host",
		"1000000010.M1P1Q10.host:2,",
		"1000000010.M1P1Q10.host,S=12:1,S=99",
		"1000000010.M1P1Q10.host,S=,W=x1",
		"1000000010.M1P1Q10.host,S=1,S=2,W=99999999999999999999",
		"S=5,W=6",
		",S=5",
		"",
	}
	for _, name := range names {
		n := maildir.ParseName(name)
		size, vsize := nameSizes(name)
		if size != n.Size || vsize != n.VSize {
			t.Errorf("nameSizes(%q) = %d, %d, want %d, %d as maildir.ParseName", name, size, vsize, n.Size, n.VSize)
		}
	}
}

func TestSortNames(t *testing.T) {
	names := []string{
		"1795336980.M5P9Q2R00.mx", "1795336980.M40P9Q2R00.mx", "1795336979.M999999P1.mx",
		"1795336980.P9Q2.mx", "1795336980.M5P9Q2R00.mx,S=4", "junk", "", "99.M1.a", "99.M1.b",
		"4294967396.M1.x", "100.M1.x", "1795336980.M5P8.mx",
	}
	want := slices.Clone(names)
	slices.SortFunc(want, func(a, b string) int {
		if c := CompareNames(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	got := slices.Clone(names)
	sortNames(got)
	if !slices.Equal(got, want) {
		t.Errorf("sortNames = %q, want %q", got, want)
	}
}
