package pop3

import (
	"strings"
	"testing"
)

func TestUID(t *testing.T) {
	long := strings.Repeat("x", 71)
	tests := []struct {
		name, file, want string
	}{
		{"info removed", "1700000001.M1P1.host,S=10,W=12:2,S", "1700000001.M1P1.host,S=10,W=12"},
		{"no info", "1700000001.M1P1.host", "1700000001.M1P1.host"},
		{"flag change keeps it", "1700000001.M1P1.host,S=10,W=12:2,FS", "1700000001.M1P1.host,S=10,W=12"},
		{"space escaped", "a b:2,", "a%20b"},
		{"percent escaped", "50%:2,", "50%25"},
		{"8-bit escaped", "caf\xe9:2,", "caf%E9"},
		{"exactly 70", strings.Repeat("y", 70) + ":2,", strings.Repeat("y", 70)},
		{"too long hashed", long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UID(tt.file)
			if tt.name == "too long hashed" {
				// The exact digest is not the point: the form is.
				if !strings.HasPrefix(got, "%%") || len(got) != 66 {
					t.Errorf("UID(%q) = %q, want %%%% and 64 hex digits", tt.file, got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("UID(%q) = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}

func TestUIDValid(t *testing.T) {
	names := []string{":2,", "a", strings.Repeat("\xff", 30), strings.Repeat("%", 24), strings.Repeat("%", 23),
		"1732000000.M123456P12345Q12R0123456789abcdef.mail.example.org,S=12345,W=12500:2,S", "x\ny", "with space"}
	seen := map[string]string{}
	for _, n := range names {
		u := UID(n)
		if len(u) < 1 || len(u) > 70 {
			t.Errorf("UID(%q) = %q: length %d not in 1-70", n, u, len(u))
		}
		for i := 0; i < len(u); i++ {
			if u[i] < 0x21 || u[i] > 0x7e {
				t.Errorf("UID(%q) = %q: octet %#x not in 0x21-0x7E", n, u, u[i])
			}
		}
		if other, dup := seen[u]; dup {
			t.Errorf("UID(%q) = UID(%q) = %q", n, other, u)
		}
		seen[u] = n
	}
}

func FuzzUID(f *testing.F) {
	f.Add("1700000001.M1P1.host,S=10,W=12:2,S", "1700000001.M1P1.host,S=10,W=13:2,S")
	f.Add("a b", "a%20b")
	f.Add("%%", "%25%25")
	f.Fuzz(func(t *testing.T, a, b string) {
		ua, ub := UID(a), UID(b)
		if len(ua) < 1 || len(ua) > 70 {
			t.Fatalf("UID(%q) = %q: bad length", a, ua)
		}
		for i := 0; i < len(ua); i++ {
			if ua[i] < 0x21 || ua[i] > 0x7e {
				t.Fatalf("UID(%q) = %q: octet %#x", a, ua, ua[i])
			}
		}
		ka, _, _ := strings.Cut(a, ":")
		kb, _, _ := strings.Cut(b, ":")
		if ka != kb && ua == ub {
			t.Fatalf("UID(%q) = UID(%q) = %q", a, b, ua)
		}
	})
}
