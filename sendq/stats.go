package sendq

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/postkit/postkit/queuestats"
	"github.com/postkit/postkit/spool"
)

// Stats answers "is mail flowing?": what the queue holds now, by state and
// by destination, and what the queue runner did in the last hour (recorded
// by package queuestats, so the numbers survive the runner's restarts).
type Stats struct {
	Messages   int   `json:"messages"`
	Recipients int   `json:"recipients_pending"`
	Bytes      int64 `json:"bytes"`
	// New entries were never tried, Deferred ones were tried and wait for
	// their next attempt (or are being tried again), Held ones wait for
	// `sendq release`. Done ones have no pending recipient left and are
	// about to be removed.
	New      int `json:"new"`
	Deferred int `json:"deferred"`
	Held     int `json:"held"`
	Done     int `json:"done"`
	// Unreadable counts entries whose envelope could not be read.
	Unreadable int `json:"unreadable"`
	// Oldest is the entry that arrived first, nil when the queue is empty.
	Oldest *OldestEntry `json:"oldest,omitempty"`
	// Destinations are the pending recipients' domains, most recipients
	// first.
	Destinations []Destination `json:"destinations"`
	// LastHour is what the runner did in the hour before Now.
	LastHour LastHour  `json:"last_hour"`
	Now      time.Time `json:"now"`
}

// OldestEntry is the queue's oldest entry.
type OldestEntry struct {
	ID         string    `json:"id"`
	From       string    `json:"from"`
	Arrival    time.Time `json:"arrival"`
	AgeSeconds int64     `json:"age_seconds"`
}

// Destination is the pending recipients of one domain.
type Destination struct {
	Domain     string `json:"domain"`
	Recipients int    `json:"recipients"`
	Messages   int    `json:"messages"`
	Held       int    `json:"held_recipients"`
}

// LastHour counts the recipients' outcomes of the last hour.
type LastHour struct {
	Delivered int `json:"delivered"`
	Deferred  int `json:"deferred"`
	Bounced   int `json:"bounced"`
	// Failing are the domains with deferrals or bounces, most first.
	Failing []FailingDomain `json:"failing"`
}

// FailingDomain is one domain's outcomes in the last hour.
type FailingDomain struct {
	Domain    string `json:"domain"`
	Delivered int    `json:"delivered"`
	Deferred  int    `json:"deferred"`
	Bounced   int    `json:"bounced"`
}

// CollectStats reads the queue of sp and the outcomes recorded in its
// stats directory. Unreadable envelopes are counted, not fatal.
func CollectStats(sp *spool.Spool, now time.Time) (Stats, error) {
	st := Stats{Now: now.UTC().Round(time.Second), Destinations: []Destination{}}
	envs, err := sp.List()
	if err != nil {
		var se *spool.StorageError
		if errors.As(err, &se) && envs == nil {
			return st, err
		}
		st.Unreadable = countJoined(err)
	}
	dests := map[string]*Destination{}
	for _, env := range envs {
		st.Messages++
		st.Bytes += max(messageSize(sp, env.ID), 0)
		if st.Oldest == nil || env.Arrival.Before(st.Oldest.Arrival) {
			st.Oldest = &OldestEntry{ID: env.ID, From: env.From, Arrival: env.Arrival, AgeSeconds: int64(now.Sub(env.Arrival) / time.Second)}
		}
		tried := false
		seen := map[string]bool{}
		for _, r := range env.Recipients {
			tried = tried || r.Attempts > 0
			if r.State != spool.Pending {
				continue
			}
			st.Recipients++
			domain := cmp.Or(queuestats.Domain(r.Address), "-")
			d := dests[domain]
			if d == nil {
				d = &Destination{Domain: domain}
				dests[domain] = d
			}
			d.Recipients++
			if env.Hold {
				d.Held++
			}
			if !seen[domain] {
				seen[domain] = true
				d.Messages++
			}
		}
		switch {
		case env.Hold:
			st.Held++
		case !env.Pending():
			st.Done++
		case tried:
			st.Deferred++
		default:
			st.New++
		}
	}
	for _, d := range dests {
		st.Destinations = append(st.Destinations, *d)
	}
	slices.SortFunc(st.Destinations, func(a, b Destination) int {
		return cmp.Or(b.Recipients-a.Recipients, cmp.Compare(a.Domain, b.Domain))
	})
	c, err := queuestats.Since(queuestats.Dir(sp.Dir()), now.Add(-time.Hour))
	if err != nil {
		return st, err
	}
	st.LastHour = LastHour{Delivered: c.Delivered, Deferred: c.Deferred, Bounced: c.Bounced, Failing: []FailingDomain{}}
	for domain, t := range c.ByDomain {
		if t.Deferred+t.Bounced > 0 {
			st.LastHour.Failing = append(st.LastHour.Failing, FailingDomain{domain, t.Delivered, t.Deferred, t.Bounced})
		}
	}
	slices.SortFunc(st.LastHour.Failing, func(a, b FailingDomain) int {
		return cmp.Or(b.Deferred+b.Bounced-a.Deferred-a.Bounced, cmp.Compare(a.Domain, b.Domain))
	})
	return st, nil
}

// countJoined counts the errors in an errors.Join.
func countJoined(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return len(j.Unwrap())
	}
	return 1
}

// StatsLimit is how many destinations and failing domains the text form
// shows; the JSON form has them all.
const StatsLimit = 10

// WriteText writes st for people:
//
//	messages      5  (7 recipients pending, 12345 bytes)
//	  new         2  never tried
//	  deferred    2  tried, waiting for a retry
//	  held        1  until sendq release
//	oldest        2h13m  0PQ3K7T2M1A4B5C6  from=<alice@example.org>
//	destinations  recipients  messages
//	  far.example          4         3
//	last hour     delivered=40 deferred=7 bounced=2
//	  failing     far.example delivered=0 deferred=7 bounced=0
func (st Stats) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "messages      %d  (%d recipients pending, %d bytes)\n", st.Messages, st.Recipients, st.Bytes)
	fmt.Fprintf(&b, "  new         %d  never tried\n", st.New)
	fmt.Fprintf(&b, "  deferred    %d  tried, waiting for a retry\n", st.Deferred)
	fmt.Fprintf(&b, "  held        %d  until sendq release\n", st.Held)
	if st.Done > 0 {
		fmt.Fprintf(&b, "  done        %d  delivered, being removed\n", st.Done)
	}
	if st.Unreadable > 0 {
		fmt.Fprintf(&b, "  unreadable  %d  see sendq list\n", st.Unreadable)
	}
	if o := st.Oldest; o != nil {
		fmt.Fprintf(&b, "oldest        %s  %s  from=<%s>\n", age(time.Duration(o.AgeSeconds)*time.Second), o.ID, o.From)
	}
	if len(st.Destinations) > 0 {
		width := 0
		for _, d := range st.Destinations[:min(len(st.Destinations), StatsLimit)] {
			width = max(width, len(d.Domain))
		}
		// The column titles end where the numbers below them end.
		fmt.Fprintf(&b, "destinations%s  recipients  messages  held\n", strings.Repeat(" ", max(width+4-len("destinations")-2, 0)))
		for i, d := range st.Destinations {
			if i == StatsLimit {
				fmt.Fprintf(&b, "  (%d more)\n", len(st.Destinations)-i)
				break
			}
			fmt.Fprintf(&b, "  %-*s  %10d  %8d  %4d\n", width, d.Domain, d.Recipients, d.Messages, d.Held)
		}
	}
	h := st.LastHour
	fmt.Fprintf(&b, "last hour     delivered=%d deferred=%d bounced=%d\n", h.Delivered, h.Deferred, h.Bounced)
	for i, f := range h.Failing {
		if i == StatsLimit {
			fmt.Fprintf(&b, "  (%d more failing)\n", len(h.Failing)-i)
			break
		}
		fmt.Fprintf(&b, "  failing     %s delivered=%d deferred=%d bounced=%d\n", f.Domain, f.Delivered, f.Deferred, f.Bounced)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteStats collects the statistics of sp now and writes them, as JSON
// if asJSON.
func WriteStats(w io.Writer, sp *spool.Spool, asJSON bool) error {
	st, err := CollectStats(sp, time.Now())
	if err != nil {
		return err
	}
	if asJSON {
		return st.WriteJSON(w)
	}
	return st.WriteText(w)
}

// WriteJSON writes st as one JSON object.
func (st Stats) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}
