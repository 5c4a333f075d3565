package sendq

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postkit/postkit/queuestats"
	"github.com/postkit/postkit/spool"
)

func TestStatsEmpty(t *testing.T) {
	sp := newSpool(t)
	st, err := CollectStats(sp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 0 || st.Oldest != nil || len(st.Destinations) != 0 || st.LastHour.Delivered != 0 {
		t.Errorf("CollectStats of an empty queue = %+v", st)
	}
	var b strings.Builder
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "messages      0  (0 recipients pending, 0 bytes)\n  new         0  never tried\n" +
		"  deferred    0  tried, waiting for a retry\n  held        0  until sendq release\n" +
		"last hour     delivered=0 deferred=0 bounced=0\n"
	if b.String() != want {
		t.Errorf("WriteText =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestStats(t *testing.T) {
	sp := newSpool(t)
	fresh := enqueue(t, sp, "alice@example.org", "bob@far.example", "carol@far.example", "dan@Other.Example")
	tried := enqueue(t, sp, "alice@example.org", "erin@far.example", "frank@example.org")
	tried.Recipients[0].Attempts = 1
	tried.Recipients[1].State, tried.Recipients[1].Attempts = spool.Delivered, 1
	tried.NextAttempt = time.Now().Add(10 * time.Minute)
	held := enqueue(t, sp, "", "gina@far.example")
	held.Hold = true
	for _, e := range []*spool.Envelope{tried, held} {
		if err := sp.Update(e); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	rec := queuestats.NewRecorder(queuestats.Dir(sp.Dir()))
	defer rec.Close()
	outcomes := []struct {
		ago            time.Duration
		status, domain string
	}{
		{2 * time.Hour, queuestats.Bounced, "far.example"}, // too old to count
		{50 * time.Minute, queuestats.Delivered, "example.org"},
		{40 * time.Minute, queuestats.Deferred, "far.example"},
		{30 * time.Minute, queuestats.Deferred, "far.example"},
		{20 * time.Minute, queuestats.Bounced, "other.example"},
		{time.Minute, queuestats.Delivered, "far.example"},
	}
	for _, o := range outcomes {
		if err := rec.Add(now.Add(-o.ago), o.status, o.domain); err != nil {
			t.Fatal(err)
		}
	}

	st, err := CollectStats(sp, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 || st.Recipients != 5 || st.New != 1 || st.Deferred != 1 || st.Held != 1 || st.Done != 0 || st.Bytes != 3*17 {
		t.Errorf("counts = %+v; want 3 messages (1 new, 1 deferred, 1 held), 5 recipients pending, 51 bytes", st)
	}
	if st.Oldest == nil || st.Oldest.ID != fresh.ID || st.Oldest.From != "alice@example.org" {
		t.Errorf("oldest = %+v, want %s", st.Oldest, fresh.ID)
	}
	wantDests := []Destination{
		{Domain: "far.example", Recipients: 4, Messages: 3, Held: 1},
		{Domain: "other.example", Recipients: 1, Messages: 1},
	}
	if !reflect.DeepEqual(st.Destinations, wantDests) {
		t.Errorf("destinations = %+v, want %+v", st.Destinations, wantDests)
	}
	wantHour := LastHour{Delivered: 2, Deferred: 2, Bounced: 1, Failing: []FailingDomain{
		{Domain: "far.example", Delivered: 1, Deferred: 2},
		{Domain: "other.example", Bounced: 1},
	}}
	if !reflect.DeepEqual(st.LastHour, wantHour) {
		t.Errorf("last hour = %+v, want %+v", st.LastHour, wantHour)
	}

	var b strings.Builder
	if err := st.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"messages      3  (5 recipients pending, 51 bytes)\n",
		"  new         1  never tried\n",
		"  deferred    1  tried, waiting for a retry\n",
		"  held        1  until sendq release\n",
		"oldest        0s  " + fresh.ID + "  from=<alice@example.org>\n",
		"destinations     recipients  messages  held\n",
		"  far.example             4         3     1\n",
		"  other.example           1         1     0\n",
		"last hour     delivered=2 deferred=2 bounced=1\n",
		"  failing     far.example delivered=1 deferred=2 bounced=0\n",
		"  failing     other.example delivered=0 deferred=0 bounced=1\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("WriteText lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	if err := st.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
		t.Fatalf("WriteJSON wrote %s: %v", b.String(), err)
	}
	if back["new"] != 1.0 || back["last_hour"].(map[string]any)["deferred"] != 2.0 || back["oldest"].(map[string]any)["id"] != fresh.ID {
		t.Errorf("WriteJSON = %s", b.String())
	}
}
