package spool

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleEnvelope() *Envelope {
	t0 := time.Date(2026, 11, 22, 7, 2, 13, 123456789, time.UTC)
	return &Envelope{
		ID:   "0PQ3K7T2M1A4B5C6",
		From: "alice@example.org",
		Recipients: []Recipient{
			{Address: "bob@example.org", ORCPT: "rfc822;bob@example.org", Notify: "SUCCESS,FAILURE"},
			{Address: "carol@example.net", State: Delivered, Attempts: 1, LastAttempt: t0.Add(time.Minute)},
			{Address: "dave@example.com", State: Failed, Attempts: 3, LastError: "550 5.1.1 <dave@example.com>: no such user\nsecond line", LastAttempt: t0.Add(time.Hour), Notify: "NEVER"},
		},
		Ret:         "HDRS",
		EnvID:       "QQ314159",
		RequireTLS:  true,
		SMTPUTF8:    true,
		Body:        Body8BitMIME,
		Arrival:     t0,
		NextAttempt: t0.Add(15 * time.Minute),
		AuthUser:    "alice@example.org",
		ClientAddr:  "192.0.2.1:49152",
		Helo:        "laptop.example.org",
		Junk:        "dmarc",
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		env  func() *Envelope
	}{
		{"full", sampleEnvelope},
		{"null sender, local submission", func() *Envelope {
			e := sampleEnvelope()
			e.From, e.AuthUser, e.ClientAddr, e.Helo, e.Ret, e.EnvID, e.Body, e.Junk = "", "", "", "", "", "", "", ""
			e.Hold, e.DelayNotified = true, true
			return e
		}},
		{"values that need quoting", func() *Envelope {
			e := sampleEnvelope()
			e.From = "\"odd local\"@example.org"
			e.Helo = "x\ninjected 1\nrcpt evil@example.org"
			e.EnvID = "back\\slash and \x00 nul and \xff invalid utf-8"
			e.Recipients[0].Address = "jörg@example.org"
			e.Recipients[1].LastError = "\r\n  state delivered"
			return e
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env()
			data, err := MarshalEnvelope(env)
			if err != nil {
				t.Fatalf("MarshalEnvelope = %v", err)
			}
			got, err := ParseEnvelope(data)
			if err != nil {
				t.Fatalf("ParseEnvelope(%q) = %v", data, err)
			}
			if !reflect.DeepEqual(got, env) {
				t.Errorf("ParseEnvelope(MarshalEnvelope(env)) = %+v, want %+v", got, env)
			}
			lines := strings.Count(string(data), "\n")
			want := 9 + countNonEmpty(env.Body, env.Ret, env.EnvID, env.AuthUser, env.ClientAddr, env.Helo, env.Junk)
			for _, r := range env.Recipients {
				want += 3 + countNonEmpty(r.ORCPT, r.Notify, r.LastError)
				if !r.LastAttempt.IsZero() {
					want++
				}
			}
			if lines != want {
				t.Errorf("envelope has %d lines, want %d (a value spilled onto a line of its own?):\n%s", lines, want, data)
			}
		})
	}
}

func countNonEmpty(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

func TestEnvelopeFormatIsReadable(t *testing.T) {
	data, err := MarshalEnvelope(sampleEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	want := `postkit-envelope 1
id 0PQ3K7T2M1A4B5C6
from alice@example.org
arrival 2026-11-22T07:02:13.123456789Z
next-attempt 2026-11-22T07:17:13.123456789Z
hold no
delay-notified no
body 8BITMIME
smtputf8 yes
requiretls yes
ret HDRS
envid QQ314159
auth-user alice@example.org
client-addr 192.0.2.1:49152
helo laptop.example.org
junk dmarc
rcpt bob@example.org
  state pending
  attempts 0
  orcpt rfc822;bob@example.org
  notify SUCCESS,FAILURE
rcpt carol@example.net
  state delivered
  attempts 1
  last-attempt 2026-11-22T07:03:13.123456789Z
rcpt dave@example.com
  state failed
  attempts 3
  last-attempt 2026-11-22T08:02:13.123456789Z
  error "550 5.1.1 <dave@example.com>: no such user\nsecond line"
  notify NEVER
`
	if string(data) != want {
		t.Errorf("MarshalEnvelope =\n%s\nwant\n%s", data, want)
	}
}

const minimal = "postkit-envelope 1\nid 0PQ3K7T2M1A4B5C6\nfrom \"\"\narrival 2026-11-22T07:02:13Z\n" +
	"next-attempt 2026-11-22T07:02:13Z\nhold no\ndelay-notified no\nsmtputf8 no\nrequiretls no\n" +
	"rcpt bob@example.org\n  state pending\n  attempts 0\n"

func TestParseEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty file"},
		{"truncated", strings.TrimSuffix(minimal, "\n"), "no newline at the end"},
		{"not an envelope", "From alice Sun Nov 22\n", `line 1: want "postkit-envelope 1"`},
		{"future version", strings.Replace(minimal, "envelope 1", "envelope 2", 1), "version \"2\" not supported"},
		{"unknown key", strings.Replace(minimal, "hold no\n", "hold no\ncolour blue\n", 1), `line 7: unknown key "colour"`},
		{"repeated key", strings.Replace(minimal, "hold no\n", "hold no\nhold yes\n", 1), `line 7: "hold" repeated`},
		{"missing key", strings.Replace(minimal, "hold no\n", "", 1), `missing "hold" line`},
		{"no recipients", strings.Split(minimal, "rcpt")[0], "no recipients"},
		{"recipient without state", strings.Replace(minimal, "  state pending\n", "", 1), `has no "state" line`},
		{"unknown state", strings.Replace(minimal, "state pending", "state lost", 1), `"lost" is none of pending`},
		{"negative attempts", strings.Replace(minimal, "attempts 0", "attempts -1", 1), "is not a count"},
		{"leading zero attempts", strings.Replace(minimal, "attempts 0", "attempts 01", 1), "is not a count"},
		{"bad id", strings.Replace(minimal, "0PQ3K7T2M1A4B5C6", "../../etc/passwd", 1), "is not a queue id"},
		{"lowercase id", strings.Replace(minimal, "0PQ3K7T2M1A4B5C6", "0pq3k7t2m1a4b5c6", 1), "is not a queue id"},
		{"time with offset", strings.Replace(minimal, "arrival 2026-11-22T07:02:13Z", "arrival 2026-11-22T07:02:13+01:00", 1), "in UTC"},
		{"bad time", strings.Replace(minimal, "arrival 2026-11-22T07:02:13Z", "arrival yesterday", 1), "in UTC"},
		{"bad bool", strings.Replace(minimal, "hold no", "hold false", 1), "neither yes nor no"},
		{"space in bare value", strings.Replace(minimal, "rcpt bob@example.org", "rcpt bob @example.org", 1), "neither a plain word nor a quoted string"},
		{"bad quoting", strings.Replace(minimal, `from ""`, `from "abc`, 1), "bad quoted string"},
		{"text after quoted", strings.Replace(minimal, `from ""`, `from "a" b`, 1), "bad quoted string"},
		{"CRLF", strings.ReplaceAll(minimal, "\n", "\r\n"), "line 1"},
		{"blank line", strings.Replace(minimal, "hold no\n", "hold no\n\n", 1), "line 7"},
		{"indented before rcpt", strings.Replace(minimal, "hold no\n", "hold no\n  state pending\n", 1), "before the first rcpt"},
		{"key after recipients", minimal + "helo x\n", `envelope key "helo" after the recipients`},
		{"recipient key repeated", minimal + "  attempts 1\n", `"attempts" repeated in one recipient`},
		{"bad body", strings.Replace(minimal, "hold no\n", "hold no\nbody 9BIT\n", 1), "none of 7BIT"},
		{"bad ret", strings.Replace(minimal, "hold no\n", "hold no\nret ALL\n", 1), "neither FULL nor HDRS"},
		{"bad notify", minimal + "  notify NEVER,DELAY\n", "none of NEVER"},
		{"repeated notify", minimal + "  notify DELAY,DELAY\n", "DELAY repeated"},
		{"empty address", strings.Replace(minimal, "rcpt bob@example.org", `rcpt ""`, 1), "empty recipient address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseEnvelope(%q) = %+v, %v; want an ErrInvalid containing %q", tt.in, env, err, tt.want)
			}
		})
	}
	if _, err := ParseEnvelope([]byte(minimal)); err != nil {
		t.Errorf("ParseEnvelope(minimal) = %v", err)
	}
}

func TestMarshalEnvelopeRefusesInvalid(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Envelope)
	}{
		{"no id", func(e *Envelope) { e.ID = "" }},
		{"no recipients", func(e *Envelope) { e.Recipients = nil }},
		{"unknown state", func(e *Envelope) { e.Recipients[0].State = 7 }},
		{"lowercase notify", func(e *Envelope) { e.Recipients[0].Notify = "success" }},
		{"too many attempts", func(e *Envelope) { e.Recipients[0].Attempts = 1e10 }},
		{"year 10000", func(e *Envelope) { e.NextAttempt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEnvelope()
			tt.change(e)
			if data, err := MarshalEnvelope(e); !errors.Is(err, ErrInvalid) {
				t.Errorf("MarshalEnvelope = %q, %v; want ErrInvalid", data, err)
			}
		})
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(minimal))
	for _, e := range []*Envelope{sampleEnvelope()} {
		data, err := MarshalEnvelope(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(strings.Replace(minimal, `from ""`, `from "\u00e9\x00\"\\"`, 1)))
	f.Add([]byte(strings.Replace(minimal, "2026-11-22T07:02:13Z", "9999-12-31T23:59:59.999999999Z", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseEnvelope error %v does not wrap ErrInvalid", err)
			}
			return
		}
		out, err := MarshalEnvelope(env)
		if err != nil {
			t.Fatalf("MarshalEnvelope(ParseEnvelope(%q)) = %v", data, err)
		}
		again, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("ParseEnvelope(%q) = %v; it was marshalled from %q", out, err, data)
		}
		if !reflect.DeepEqual(again, env) {
			t.Fatalf("ParseEnvelope(MarshalEnvelope(x)) = %+v, want %+v", again, env)
		}
		if out2, _ := MarshalEnvelope(again); string(out2) != string(out) {
			t.Fatalf("MarshalEnvelope not stable: %q then %q", out, out2)
		}
	})
}

func TestEnvelopePending(t *testing.T) {
	e := sampleEnvelope()
	if !e.Pending() {
		t.Errorf("Pending() = false with %v, want true", e.Recipients[0].State)
	}
	e.Recipients[0].State = Delivered
	if e.Pending() {
		t.Error("Pending() = true with only delivered and failed recipients, want false")
	}
}

// The junk key is optional: envelopes without it, as written before it
// existed, still parse, and an envelope without Junk is written without it.
func TestEnvelopeJunk(t *testing.T) {
	env, err := ParseEnvelope([]byte(minimal))
	if err != nil || env.Junk != "" {
		t.Fatalf("ParseEnvelope(minimal) = %+v, %v; want no Junk", env, err)
	}
	if data, err := MarshalEnvelope(env); err != nil || string(data) != minimal {
		t.Errorf("MarshalEnvelope without Junk = %q, %v; want %q", data, err, minimal)
	}
	withJunk := strings.Replace(minimal, "requiretls no\n", "requiretls no\njunk dmarc\n", 1)
	if env, err := ParseEnvelope([]byte(withJunk)); err != nil || env.Junk != "dmarc" {
		t.Errorf("ParseEnvelope(%q) = %+v, %v; want Junk dmarc", withJunk, env, err)
	}
	repeated := strings.Replace(withJunk, "junk dmarc\n", "junk dmarc\njunk spf\n", 1)
	if _, err := ParseEnvelope([]byte(repeated)); err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseEnvelope(%q) = %v, want ErrInvalid", repeated, err)
	}
}
