package uidlist

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseSubscriptions(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Subscriptions
	}{
		{
			name: "version 2 as Dovecot 2.3 writes it",
			in:   "V\t2\n\nSent\na\tb\nEntw&APw-rfe\nINBOX\n",
			want: &Subscriptions{Version: 2, Names: []string{"Sent", "a/b", "Entwürfe", "INBOX"}},
		},
		{
			name: "version 1",
			in:   "Sent\na.b\nEntw&APw-rfe\ninbox\n",
			want: &Subscriptions{Version: 1, Names: []string{"Sent", "a/b", "Entwürfe", "INBOX"}},
		},
		{
			name: "escapes, empty lines, CRLF, unterminated last line",
			in:   "V\t2\n\nfoo\x01tbar\tx\r\n\n\x01Sent\nx.y\nTrash",
			want: &Subscriptions{Version: 2, Names: []string{"Sent", "Trash"}, Other: []string{"foo\x01tbar\tx", "x.y"}},
		},
		{
			name: "names postkit cannot address are kept aside",
			in:   "a..b\nbad&-utf7&\nok\n",
			want: &Subscriptions{Version: 1, Names: []string{"ok"}, Other: []string{"a..b", "bad&-utf7&"}},
		},
		{
			name: "empty",
			in:   "",
			want: &Subscriptions{Version: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseSubscriptions([]byte(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSubscriptions(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if back := ParseSubscriptions(got.Marshal()); !reflect.DeepEqual(back, got) {
				t.Errorf("after Marshal: %#v, want %#v", back, got)
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	root := newMaildir(t)
	p := filepath.Join(root, SubscriptionsFileName)
	for _, step := range []struct {
		name    string
		on      bool
		changed bool
		want    string
	}{
		{"Sent", true, true, "V\t2\n\nSent\n"},
		{"a/b", true, true, "V\t2\n\nSent\na\tb\n"},
		{"Entwürfe", true, true, "V\t2\n\nSent\na\tb\nEntw&APw-rfe\n"},
		{"inbox", true, true, "V\t2\n\nSent\na\tb\nEntw&APw-rfe\nINBOX\n"},
		{"Sent", true, false, "V\t2\n\nSent\na\tb\nEntw&APw-rfe\nINBOX\n"},
		{"Sent", false, true, "V\t2\n\na\tb\nEntw&APw-rfe\nINBOX\n"},
		{"Nope", false, false, "V\t2\n\na\tb\nEntw&APw-rfe\nINBOX\n"},
	} {
		changed, err := Subscribe(root, step.name, step.on, nil)
		if err != nil {
			t.Fatalf("Subscribe(%q, %v): %v", step.name, step.on, err)
		}
		data, _ := os.ReadFile(p)
		if changed != step.changed || string(data) != step.want {
			t.Errorf("Subscribe(%q, %v) = %v, file %q; want %v, %q", step.name, step.on, changed, data, step.changed, step.want)
		}
	}
	if _, err := os.Stat(p + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
	if _, err := Subscribe(root, "../escape", true, nil); err == nil {
		t.Errorf("Subscribe(../escape) succeeded")
	}
}

func TestSubscribeKeepsVersion1(t *testing.T) {
	root := newMaildir(t)
	p := filepath.Join(root, SubscriptionsFileName)
	os.WriteFile(p, []byte("Sent\nweird..name\n"), 0o600)
	if _, err := Subscribe(root, "a/b", true, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if want := "Sent\na.b\nweird..name\n"; string(data) != want {
		t.Errorf("file = %q, want %q", data, want)
	}
	s, err := ReadSubscriptions(root)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has("a/b") || !s.Has("Sent") || s.Has("weird..name") {
		t.Errorf("ReadSubscriptions = %#v", s)
	}
}
