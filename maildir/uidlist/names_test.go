package uidlist

import (
	"slices"
	"strings"
	"testing"
)

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
