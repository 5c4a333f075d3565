package spool

import (
	"sort"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"0PQ3K7T2M1A4B5C6", true},
		{"0000000000000000", true},
		{"VVVVVVVVVVVVVVVV", true},
		{"0PQ3K7T2M1A4B5C", false},   // short
		{"0PQ3K7T2M1A4B5C6X", false}, // long
		{"0PQ3K7T2M1A4B5CW", false},  // W is not base32hex
		{"0pq3k7t2m1a4b5c6", false},
		{"../../../etc/pas", false},
		{".tmp.0123456789a", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestIDsSortByTimeAndCarryIt(t *testing.T) {
	base := time.Date(2026, 11, 22, 7, 2, 13, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := range 200 {
		at := base.Add(time.Duration(i) * time.Millisecond)
		id, err := newID(at)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidID(id) {
			t.Fatalf("newID = %q, not a ValidID", id)
		}
		if seen[id] {
			t.Fatalf("newID repeated %q", id)
		}
		seen[id] = true
		if got, err := IDTime(id); err != nil || !got.Equal(at) {
			t.Fatalf("IDTime(%q) = %v, %v; want %v", id, got, err, at)
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("IDs made at increasing times do not sort: %v", ids)
	}
}
