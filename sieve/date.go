package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// dateParts are the date-part names of RFC 5260 §4.2.
var dateParts = map[string]func(t time.Time) string{
	"year":    func(t time.Time) string { return fmt.Sprintf("%04d", t.Year()) },
	"month":   func(t time.Time) string { return fmt.Sprintf("%02d", int(t.Month())) },
	"day":     func(t time.Time) string { return fmt.Sprintf("%02d", t.Day()) },
	"date":    func(t time.Time) string { return t.Format("2006-01-02") },
	"julian":  func(t time.Time) string { return fmt.Sprint(modifiedJulianDay(t)) },
	"hour":    func(t time.Time) string { return fmt.Sprintf("%02d", t.Hour()) },
	"minute":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Minute()) },
	"second":  func(t time.Time) string { return fmt.Sprintf("%02d", t.Second()) },
	"time":    func(t time.Time) string { return t.Format("15:04:05") },
	"iso8601": func(t time.Time) string { return t.Format("2006-01-02T15:04:05-07:00") },
	"std11":   func(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") },
	"zone":    func(t time.Time) string { return t.Format("-0700") },
	"weekday": func(t time.Time) string { return fmt.Sprint(int(t.Weekday())) },
}

// modifiedJulianDay counts days from 1858-11-17, the "julian" date part
// (RFC 5260 §4.2), for the calendar date of t in its own zone.
func modifiedJulianDay(t time.Time) int64 {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	days := d.Unix() / 86400
	if d.Unix() < 0 && d.Unix()%86400 != 0 {
		days--
	}
	return days + 40587
}

// parseZone reads a :zone argument, "+hhmm" or "-hhmm" (RFC 5260 §4.1).
func parseZone(s string) (*time.Location, bool) {
	if len(s) != 5 || s[0] != '+' && s[0] != '-' {
		return nil, false
	}
	for i := 1; i < 5; i++ {
		if !isDigit(s[i]) {
			return nil, false
		}
	}
	h := int(s[1]-'0')*10 + int(s[2]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), true
}

// headerDate reads the date of a header field: the whole value, or for
// Received the part after the last ";" (RFC 5260 §4.1 names Received as a
// typical date header; RFC 5321 §4.4 puts the date there).
func headerDate(name, value string) (time.Time, bool) {
	if strings.EqualFold(name, "received") {
		i := strings.LastIndexByte(value, ';')
		if i < 0 {
			return time.Time{}, false
		}
		value = value[i+1:]
	}
	t, err := mail.ParseDate(strings.TrimSpace(value))
	return t, err == nil
}
