package dsn

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

const original = "From: alice@example.org\r\nTo: bob@far.example\r\nSubject: hello\r\n\r\nsecret body\r\n"

// parsed is a report as a client sees it.
type parsed struct {
	header     message.Header
	reportType string
	parts      []string // content types
	text       string
	perMessage textproto.MIMEHeader
	perRcpt    []textproto.MIMEHeader
	returned   string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	e, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("message.Read: %v\n%s", err, data)
	}
	var p parsed
	p.header = e.Header
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type = %q, %v; want multipart/report", mt, err)
	}
	p.reportType = params["report-type"]
	mr := e.MultipartReader()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		ct, _, _ := part.Header.ContentType()
		p.parts = append(p.parts, ct)
		body, _ := io.ReadAll(part.Body)
		switch ct {
		case "text/plain":
			p.text = string(body)
		case "message/delivery-status":
			r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			for {
				h, err := r.ReadMIMEHeader()
				if len(h) > 0 {
					if p.perMessage == nil {
						p.perMessage = h
					} else {
						p.perRcpt = append(p.perRcpt, h)
					}
				}
				if err != nil {
					break
				}
			}
		default:
			p.returned = string(body)
		}
	}
	return p
}

func TestBounce(t *testing.T) {
	when := time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)
	rep := &Report{
		ReportingMTA: "mx.example.org",
		QueueID:      "0PQ3K7T2M1A4B5C6",
		EnvID:        "abc 1",
		Arrival:      when,
		To:           "alice@example.org",
		Recipients: []Recipient{
			{Address: "bob@far.example", ORCPT: "rfc822;Bob@far.example", Action: Failed, Status: "5.1.1", RemoteMTA: "mx.far.example", Diagnostic: "550 5.1.1 no such\nuser", LastAttempt: when},
			{Address: "carol@far.example", Action: Failed, Status: "4.4.7", Diagnostic: "message expired"},
		},
		Date: when,
	}
	data, err := Build(rep, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("\r")) {
		t.Error("report has CR characters; the spool stores LF")
	}
	p := parse(t, data)
	if p.reportType != "delivery-status" || strings.Join(p.parts, " ") != "text/plain message/delivery-status text/rfc822-headers" {
		t.Errorf("report-type %q, parts %v", p.reportType, p.parts)
	}
	if to := p.header.Get("To"); to != "<alice@example.org>" {
		t.Errorf("To = %q", to)
	}
	if p.header.Get("Auto-Submitted") != "auto-replied" || !strings.Contains(p.header.Get("From"), "MAILER-DAEMON@mx.example.org") {
		t.Errorf("header = %v", p.header)
	}
	if got := p.perMessage.Get("Reporting-Mta"); got != "dns; mx.example.org" {
		t.Errorf("Reporting-MTA = %q", got)
	}
	if got := p.perMessage.Get("Original-Envelope-Id"); got != "abc+201" {
		t.Errorf("Original-Envelope-Id = %q, want xtext abc+201", got)
	}
	if len(p.perRcpt) != 2 {
		t.Fatalf("%d recipient blocks, want 2", len(p.perRcpt))
	}
	r := p.perRcpt[0]
	for field, want := range map[string]string{
		"Final-Recipient":    "rfc822; bob@far.example",
		"Original-Recipient": "rfc822;Bob@far.example",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Remote-Mta":         "dns; mx.far.example",
		"Diagnostic-Code":    "smtp; 550 5.1.1 no such user",
		"Last-Attempt-Date":  "Sun, 22 Nov 2026 07:00:00 +0000",
	} {
		if got := r.Get(field); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
	if got := p.perRcpt[1].Get("Diagnostic-Code"); got != "X-Postkit; message expired" {
		t.Errorf("local Diagnostic-Code = %q", got)
	}
	if p.returned != "From: alice@example.org\nTo: bob@far.example\nSubject: hello\n" || strings.Contains(string(data), "secret body") {
		t.Errorf("returned %q; want the header section only", p.returned)
	}
	if !strings.Contains(p.text, "<bob@far.example>: failed: 550 5.1.1 no such user") {
		t.Errorf("human text = %q", p.text)
	}
}

func TestFullAndDelay(t *testing.T) {
	until := time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)
	rep := &Report{ReportingMTA: "h", QueueID: "Q", To: "a@b.example", Full: true, Recipients: []Recipient{
		{Address: "c@d.example", Action: Delayed, Status: "4.4.1", WillRetryUntil: until},
	}}
	data, err := Build(rep, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	if p.parts[2] != "message/rfc822" || !strings.Contains(p.returned, "secret body") {
		t.Errorf("RET=FULL part %q = %q, want the whole message", p.parts[2], p.returned)
	}
	if p.perRcpt[0].Get("Action") != "delayed" || p.perRcpt[0].Get("Will-Retry-Until") == "" || !strings.HasPrefix(p.header.Get("Subject"), "Delayed") {
		t.Errorf("delay report: %v %v", p.header, p.perRcpt[0])
	}

	big := original + strings.Repeat("x", MaxFull) + "\n"
	data, _ = Build(rep, strings.NewReader(big))
	if p := parse(t, data); p.parts[2] != "text/rfc822-headers" {
		t.Errorf("RET=FULL of a huge message returned %s, want headers only", p.parts[2])
	}
}

func TestNoReportToNullSender(t *testing.T) {
	if _, err := Build(&Report{To: "", Recipients: []Recipient{{Address: "x@y.example", Action: Failed}}}, strings.NewReader(original)); err == nil {
		t.Error("Build for the null sender succeeded")
	}
}
