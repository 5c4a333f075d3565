package routes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/control"
	"github.com/postkit/postkit/selfsigned"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string // Route.String(), or the error substring after "error: "
	}{
		{"host and port", "Example.NET mx.example.net:2525", "example.net mx.example.net:2525"},
		{"default port", "example.net mx.example.net", "example.net mx.example.net:25"},
		{"smarthost with auth", "* smtp.example.com:587 auth=auth ca=tls/ca.pem", "* smtp.example.com:587 auth=auth ca=tls/ca.pem"},
		{"implicit tls", "* smtp.example.com:465 tls=implicit auth=/etc/x", "* smtp.example.com:465 tls=implicit auth=/etc/x"},
		{"require", "a.example b.example tls=require", "a.example b.example:25 tls=require"},
		{"ipv4", "a.example 127.0.0.1:2525", "a.example 127.0.0.1:2525"},
		{"ipv6", "a.example [::1]:2525", "a.example [::1]:2525"},
		{"ipv6 default port", "a.example [2001:db8::1]", "a.example [2001:db8::1]:25"},
		{"utf-8 domain", "bücher.example mx.example", "xn--bcher-kva.example mx.example:25"},
		{"one field", "example.net", "error: want"},
		{"bad port", "a.example b.example:70000", "error: port"},
		{"port with sign", "a.example b.example:+25", "error: port"},
		{"empty port", "a.example b.example:", "error: empty port"},
		{"bare ipv6", "a.example ::1", "error: host"},
		{"ipv4 in brackets", "a.example [127.0.0.1]:25", "error: brackets"},
		{"unknown option", "a.example b.example foo=bar", "error: unknown option"},
		{"bad tls", "a.example b.example tls=maybe", "error: tls="},
		{"auth in the clear", "a.example b.example auth=f tls=may", "error: in the clear"},
		{"literal domain", "[127.0.0.1] b.example", "error: not a domain"},
		{"option without value", "a.example b.example ca=", "error: KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := Parse("# comment\n\n" + tt.line + "\n")
			if wantErr, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "line 3") {
					t.Errorf("Parse(%q) = %v, want an error on line 3 containing %q", tt.line, err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.line, err)
			}
			if got := table.Routes()[0].String(); got != tt.want {
				t.Errorf("Parse(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestAuthImpliesRequiredTLS(t *testing.T) {
	table, err := Parse("* smtp.example.com:587 auth=f\n")
	if err != nil {
		t.Fatal(err)
	}
	if r := table.Lookup("x.example"); r.TLS != TLSRequire {
		t.Errorf("TLS of a route with auth = %v, want require", r.TLS)
	}
}

func TestLookup(t *testing.T) {
	table, err := Parse("a.example h1.example:1\n* h2.example:2\n")
	if err != nil {
		t.Fatal(err)
	}
	if r := table.Lookup("a.example"); r == nil || r.Port != 1 {
		t.Errorf("Lookup(a.example) = %v, want h1", r)
	}
	if r := table.Lookup("b.example"); r == nil || r.Port != 2 {
		t.Errorf("Lookup(b.example) = %v, want the smarthost", r)
	}
	noDefault, _ := Parse("a.example h1.example\n")
	if r := noDefault.Lookup("b.example"); r != nil {
		t.Errorf("Lookup without a default route = %v, want nil (MX)", r)
	}
	if _, err := Parse("a.example h1\nA.EXAMPLE h2\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Parse of a duplicate route = %v, want an error on line 2", err)
	}
	var none *Table
	if r := none.Lookup("a.example"); r != nil {
		t.Errorf("nil Table Lookup = %v", r)
	}
}

func TestLoad(t *testing.T) {
	root := control.Root(t.TempDir())
	if table, err := Load(root); err != nil || table.Lookup("x.example") != nil {
		t.Fatalf("Load without etc/routes = %v, %v; want an empty table", table, err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(root.Etc(name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root.Etc(name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := selfsigned.WriteIfMissing(root.Etc("tls/ca.pem"), root.Etc("tls/key.pem"), []string{"localhost"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	write("smarthost-auth", "me@example.org\n  pass word \n")
	write("routes", "* localhost:587 auth=smarthost-auth ca=tls/ca.pem\n")
	table, err := Load(root)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	r := table.Lookup("x.example")
	if r.Username != "me@example.org" || r.Password != "  pass word " || r.RootCAs == nil {
		t.Errorf("loaded route = %+v, want credentials and a CA pool", r)
	}

	write("smarthost-auth", "only-a-user\n")
	if _, err := Load(root); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("Load with a one-line auth file = %v, want an error", err)
	}
	write("smarthost-auth", "u\np\n")
	write("tls/ca.pem", "not pem\n")
	if _, err := Load(root); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("Load with a bad CA file = %v, want an error", err)
	}
	write("routes", "* localhost:587 ca=missing.pem\n")
	if _, err := Load(root); err == nil {
		t.Error("Load with a missing CA file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("a.example h1.example:25\n* [::1]:587 tls=require auth=x ca=y\n")
	f.Add("# c\n\n* 127.0.0.1 tls=implicit\n")
	f.Add("a.example [2001:db8::1]\n")
	f.Add("x\n")
	f.Fuzz(func(t *testing.T, data string) {
		table, err := Parse(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, r := range table.Routes() {
			b.WriteString(r.String() + "\n")
		}
		again, err := Parse(b.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %v, reparsing its own output", b.String(), err)
		}
		for i, r := range again.Routes() {
			if got, want := r.String(), table.Routes()[i].String(); got != want {
				t.Errorf("round trip of route %d: %q, want %q", i, got, want)
			}
		}
	})
}
