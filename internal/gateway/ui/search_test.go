package ui

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sightline/sightline/internal/tracking"
)

func TestParseSearch(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	now := time.Date(2026, 1, 10, 8, 30, 15, 0, time.UTC)
	day := now.Add(-24 * time.Hour)
	tests := []struct {
		name   string
		query  string
		want   tracking.Query
		errors []string
	}{
		{"empty form means the last day", "", tracking.Query{Start: day}, nil},
		{"seed search by subject", "search=1&subject_op=begins_with&subject=test+test",
			tracking.Query{Start: day, Subject: tracking.TextFilter{Op: tracking.OpBeginsWith, Values: []string{"test test"}}}, nil},
		{"sender and recipient", "sender_op=is&sender=+mgmt01@cisco.com+&recipient_op=contains&recipient=bren",
			tracking.Query{Start: day,
				Sender:    tracking.TextFilter{Op: tracking.OpIs, Values: []string{"mgmt01@cisco.com"}},
				Recipient: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"bren"}}}, nil},
		{"operator without value filters nothing", "sender_op=is", tracking.Query{Start: day}, nil},
		{"last week", "range=week", tracking.Query{Start: now.Add(-7 * 24 * time.Hour)}, nil},
		{"custom range in the gateway's zone", "range=custom&start_date=2026-01-09&start_time=08:00&end_date=2026-01-10&end_time=09:30",
			tracking.Query{Start: time.Date(2026, 1, 9, 7, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 10, 8, 31, 0, 0, time.UTC)}, nil},
		{"custom range without times", "range=custom&start_date=2026-01-09&end_date=2026-01-10",
			tracking.Query{Start: time.Date(2026, 1, 8, 23, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 9, 23, 1, 0, 0, time.UTC)}, nil},
		{"advanced filters", "sender_ip=::ffff:203.0.113.25&message_id=<1@x>&mid=315&attachment=.PDF&sha256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08&status=quarantined_policy&direction=incoming",
			tracking.Query{Start: day, SenderIPs: []string{"203.0.113.25"}, MessageIDs: []string{"<1@x>"}, MIDs: []int64{315},
				AttachmentName: tracking.TextFilter{Op: tracking.OpContains, Values: []string{".PDF"}},
				SHA256s:        []string{"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
				Events:         []tracking.EventFilter{{Name: "quarantineStatus", Value: "POLICY"}}, Direction: "incoming"}, nil},
		{"bad operator", "subject_op=matches&subject=x", tracking.Query{Start: day},
			[]string{"Subject: choose Begins With, Is or Contains."}},
		{"value too long", "sender=" + strings.Repeat("a", maxValue+1), tracking.Query{Start: day},
			[]string{"Envelope Sender: the value is longer than 256 characters."}},
		{"bad custom dates", "range=custom&start_date=10/01/2026&end_date=2026-01-10&end_time=25:00", tracking.Query{},
			[]string{"Start Date: enter a date as yyyy-mm-dd and a time as hh:mm.", "End Date: enter a date as yyyy-mm-dd and a time as hh:mm."}},
		{"end before start", "range=custom&start_date=2026-01-10&end_date=2026-01-09", tracking.Query{},
			[]string{"End Date must be after Start Date."}},
		{"bad range", "range=year", tracking.Query{}, []string{"Message Received: choose Last Day, Last Week or Custom Range."}},
		{"bad advanced values", "sender_ip=999.1.1.1&mid=-3&sha256=abc&status=lost&direction=sideways&message_id=<>", tracking.Query{Start: day},
			[]string{`Sender IP: "999.1.1.1" is not an IPv4 or IPv6 address.`,
				"Message ID Header: enter the header's value, such as <1234@example.com>.",
				`Cisco MID: "-3" is not a message number.`,
				"Attachment SHA-256: enter 64 hexadecimal characters.",
				`Message status: "lost" is not one of the choices.`,
				"Direction: choose Incoming or Outgoing."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			form, got := parseSearch(v, now, paris)
			if diff := cmp.Diff(tt.errors, form.Errors); diff != "" {
				t.Fatalf("parseSearch(%q) errors (-want +got):\n%s", tt.query, diff)
			}
			if tt.errors != nil && tt.want.Start.IsZero() {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("parseSearch(%q) query (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

func TestParseSearchPaging(t *testing.T) {
	tests := []struct {
		query      string
		page, size int
	}{
		{"", 1, 20},
		{"page=3&size=50", 3, 50},
		{"page=0&size=7", 1, 20},
		{"page=x&size=100", 1, 100},
		{"page=99999999999", 1, 20},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.query)
		f, _ := parseSearch(v, time.Now(), time.UTC)
		if f.Page != tt.page || f.Size != tt.size {
			t.Errorf("parseSearch(%q) page, size = %d, %d; want %d, %d", tt.query, f.Page, f.Size, tt.page, tt.size)
		}
	}
}

// FuzzParseSearch checks that any query string is read without panic, and
// that a form read without errors survives the round trip through the
// links the page writes (values).
func FuzzParseSearch(f *testing.F) {
	f.Add("search=1&subject_op=begins_with&subject=test+test")
	f.Add("range=custom&start_date=2026-01-09&start_time=08:00&end_date=2026-01-10&end_time=09:30&page=2&size=50")
	f.Add("sender_ip=::1&mid=5&sha256=00&status=delivered&direction=outgoing&attachment_op=is&attachment=a.pdf")
	now := time.Date(2026, 1, 10, 8, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		form, q := parseSearch(v, now, time.UTC)
		if len(form.Errors) > 0 {
			return
		}
		for _, tf := range []tracking.TextFilter{q.Sender, q.Recipient, q.Subject, q.AttachmentName} {
			if tf.Active() && (!isOp(string(tf.Op)) || len(tf.Values) != 1 || tf.Values[0] == "") {
				t.Fatalf("parseSearch(%q) made filter %+v", raw, tf)
			}
		}
		form2, q2 := parseSearch(form.values(form.Page), now, time.UTC)
		form.Submitted, form2.Submitted = true, true
		if diff := cmp.Diff(form, form2); diff != "" {
			t.Fatalf("form of %q changed through values() (-first +second):\n%s", raw, diff)
		}
		if diff := cmp.Diff(q, q2); diff != "" {
			t.Fatalf("query of %q changed through values() (-first +second):\n%s", raw, diff)
		}
	})
}
