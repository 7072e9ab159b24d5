package ui

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// Search form field names; the form is a GET so that a search is a link,
// and the CSV export reuses it.
const (
	maxValue     = 256 // longest text a filter box accepts
	maxMessageID = 998 // a header line's limit
	maxPage      = 1 << 20
)

// ops are the text operators offered by the form, in display order.
var ops = []option{
	{string(tracking.OpBeginsWith), "Begins With"},
	{string(tracking.OpIs), "Is"},
	{string(tracking.OpContains), "Contains"},
}

// pageSizes offered by the results.
var pageSizes = []int{20, 50, 100}

type option struct{ Value, Label string }

// statusFilter is one choice of the form's "Message status" select and the
// advanced filter it stands for.
type statusFilter struct {
	option
	filter tracking.EventFilter
}

var statusFilters = []statusFilter{
	{option{"delivered", "Delivered"}, tracking.EventFilter{Name: "deliveryStatus", Value: "DELIVERED"}},
	{option{"bounced", "Bounced"}, tracking.EventFilter{Name: "deliveryStatus", Value: "BOUNCED"}},
	{option{"hard_bounced", "Hard bounced"}, tracking.EventFilter{Name: "hardBounced", Value: "True"}},
	{option{"soft_bounced", "Soft bounced"}, tracking.EventFilter{Name: "softBounced", Value: "True"}},
	{option{"dropped", "Dropped"}, tracking.EventFilter{Name: "deliveryStatus", Value: "DROPPED"}},
	{option{"aborted", "Aborted"}, tracking.EventFilter{Name: "deliveryStatus", Value: "ABORTED"}},
	{option{"quarantined_policy", "Quarantined: Policy"}, tracking.EventFilter{Name: "quarantineStatus", Value: "POLICY"}},
	{option{"quarantined_av", "Quarantined: Anti-Virus"}, tracking.EventFilter{Name: "quarantineStatus", Value: "AV"}},
	{option{"quarantined_spam", "Quarantined: Anti-Spam"}, tracking.EventFilter{Name: "quarantinedAsSpam", Value: "True"}},
	{option{"quarantined_outbreak", "Quarantined: Outbreak"}, tracking.EventFilter{Name: "quarantineStatus", Value: "OUTBREAK"}},
	{option{"spam", "Spam positive"}, tracking.EventFilter{Name: "spamPositive", Value: "True"}},
	{option{"virus", "Virus positive"}, tracking.EventFilter{Name: "virusPositive", Value: "True"}},
}

// Time ranges of the form.
const (
	rangeDay    = "day"
	rangeWeek   = "week"
	rangeCustom = "custom"
)

// searchForm is the Message Tracking form as submitted, echoed back to the
// page so the user sees what they searched.
type searchForm struct {
	Submitted bool

	SenderOp, Sender       string
	RecipientOp, Recipient string
	SubjectOp, Subject     string

	Range              string // rangeDay, rangeWeek or rangeCustom
	StartDate, EndDate string // yyyy-mm-dd, the gateway's zone
	StartTime, EndTime string // hh:mm

	SenderIP, MessageID, MID string
	AttachmentOp, Attachment string
	SHA256, Status           string
	Direction                string

	Page, Size int

	// Advanced reports that an advanced field is set, to open that part.
	Advanced bool
	// Errors name each field that could not be read, with the reason;
	// Invalid marks those fields.
	Errors  []string
	Invalid map[string]bool
}

func (f *searchForm) fail(field, format string, args ...any) {
	f.Errors = append(f.Errors, fmt.Sprintf(format, args...))
	if f.Invalid == nil {
		f.Invalid = map[string]bool{}
	}
	f.Invalid[field] = true
}

// parseSearch reads the Message Tracking form into the form as shown and the
// tracking query it means, at the instant now in loc. The query is only
// meaningful when the form has no Errors. Paging is left to the caller.
func parseSearch(v url.Values, now time.Time, loc *time.Location) (searchForm, tracking.Query) {
	f := searchForm{Submitted: v.Get("search") != "", Range: rangeDay, Page: 1, Size: pageSizes[0]}
	var q tracking.Query
	text := func(field, label string, op *string, val *string, filter *tracking.TextFilter, defOp tracking.Op) {
		*op = v.Get(field + "_op")
		*val = strings.TrimSpace(v.Get(field))
		if *op == "" {
			*op = string(defOp)
		}
		if !isOp(*op) {
			f.fail(field, "%s: choose Begins With, Is or Contains.", label)
			*op = string(defOp)
			return
		}
		switch {
		case *val == "":
		case len(*val) > maxValue:
			f.fail(field, "%s: the value is longer than %d characters.", label, maxValue)
		default:
			*filter = tracking.TextFilter{Op: tracking.Op(*op), Values: []string{*val}}
		}
	}
	text("sender", "Envelope Sender", &f.SenderOp, &f.Sender, &q.Sender, tracking.OpBeginsWith)
	text("recipient", "Envelope Recipient", &f.RecipientOp, &f.Recipient, &q.Recipient, tracking.OpBeginsWith)
	text("subject", "Subject", &f.SubjectOp, &f.Subject, &q.Subject, tracking.OpBeginsWith)
	text("attachment", "Attachment name", &f.AttachmentOp, &f.Attachment, &q.AttachmentName, tracking.OpContains)

	// Time range. The custom fields are always filled so that picking
	// Custom Range starts from the last day.
	now = now.In(loc)
	from := now.Add(-24 * time.Hour)
	f.StartDate, f.StartTime = from.Format(dateLayout), from.Format(timeLayout)
	f.EndDate, f.EndTime = now.Format(dateLayout), now.Format(timeLayout)
	switch r := v.Get("range"); r {
	case "", rangeDay:
		q.Start = from
	case rangeWeek:
		f.Range = rangeWeek
		q.Start = now.Add(-7 * 24 * time.Hour)
	case rangeCustom:
		f.Range = rangeCustom
		f.StartDate, f.StartTime = v.Get("start_date"), v.Get("start_time")
		f.EndDate, f.EndTime = v.Get("end_date"), v.Get("end_time")
		start, okStart := parseLocal(f.StartDate, f.StartTime, loc)
		end, okEnd := parseLocal(f.EndDate, f.EndTime, loc)
		if !okStart {
			f.fail("start", "Start Date: enter a date as yyyy-mm-dd and a time as hh:mm.")
		}
		if !okEnd {
			f.fail("end", "End Date: enter a date as yyyy-mm-dd and a time as hh:mm.")
		}
		if okStart && okEnd && !start.Before(end) {
			f.fail("end", "End Date must be after Start Date.")
		}
		// The end names a whole minute: include it.
		q.Start, q.End = start, end.Add(time.Minute)
	default:
		f.fail("range", "Message Received: choose Last Day, Last Week or Custom Range.")
	}

	// Advanced filters.
	if s := strings.TrimSpace(v.Get("sender_ip")); s != "" {
		f.SenderIP = s
		if ip, ok := tracking.CanonicalIP(s); ok {
			q.SenderIPs = []string{ip}
		} else {
			f.fail("sender_ip", "Sender IP: %q is not an IPv4 or IPv6 address.", clip(s))
		}
	}
	if s := strings.TrimSpace(v.Get("message_id")); s != "" {
		f.MessageID = s
		if len(s) > maxMessageID || tracking.MessageIDKey(s) == "" {
			f.fail("message_id", "Message ID Header: enter the header's value, such as <1234@example.com>.")
		} else {
			q.MessageIDs = []string{s}
		}
	}
	if s := strings.TrimSpace(v.Get("mid")); s != "" {
		f.MID = s
		if mid, err := strconv.ParseInt(s, 10, 64); err == nil && mid > 0 {
			q.MIDs = []int64{mid}
		} else {
			f.fail("mid", "Cisco MID: %q is not a message number.", clip(s))
		}
	}
	if s := strings.TrimSpace(v.Get("sha256")); s != "" {
		f.SHA256 = s
		if h := strings.ToLower(s); isHex64(h) {
			q.SHA256s = []string{h}
		} else {
			f.fail("sha256", "Attachment SHA-256: enter 64 hexadecimal characters.")
		}
	}
	if s := v.Get("status"); s != "" {
		f.Status = s
		if sf, ok := findStatus(s); ok {
			q.Events = []tracking.EventFilter{sf.filter}
		} else {
			f.fail("status", "Message status: %q is not one of the choices.", clip(s))
		}
	}
	switch d := v.Get("direction"); d {
	case "":
	case "incoming", "outgoing":
		f.Direction, q.Direction = d, d
	default:
		f.fail("direction", "Direction: choose Incoming or Outgoing.")
	}
	f.Advanced = f.SenderIP != "" || f.MessageID != "" || f.MID != "" || f.Attachment != "" ||
		f.SHA256 != "" || f.Status != "" || f.Direction != ""

	// Paging, forgiving: a bad page number shows the first page.
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n >= 1 && n <= maxPage {
		f.Page = n
	}
	if n, err := strconv.Atoi(v.Get("size")); err == nil {
		for _, s := range pageSizes {
			if n == s {
				f.Size = n
			}
		}
	}
	return f, q
}

const (
	dateLayout = "2006-01-02"
	timeLayout = "15:04"
)

func parseLocal(date, clock string, loc *time.Location) (time.Time, bool) {
	if clock == "" {
		clock = "00:00"
	}
	t, err := time.ParseInLocation(dateLayout+" "+timeLayout, strings.TrimSpace(date)+" "+strings.TrimSpace(clock), loc)
	return t, err == nil
}

func isOp(s string) bool {
	for _, o := range ops {
		if o.Value == s {
			return true
		}
	}
	return false
}

func findStatus(s string) (statusFilter, bool) {
	for _, sf := range statusFilters {
		if sf.Value == s {
			return sf, true
		}
	}
	return statusFilter{}, false
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// clip shortens user input quoted back in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

// values returns the form as query parameters, with the given page, for
// the paging and export links.
func (f searchForm) values(page int) url.Values {
	v := url.Values{"search": {"1"}, "range": {f.Range}}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("sender_op", f.SenderOp)
	set("sender", f.Sender)
	set("recipient_op", f.RecipientOp)
	set("recipient", f.Recipient)
	set("subject_op", f.SubjectOp)
	set("subject", f.Subject)
	if f.Range == rangeCustom {
		set("start_date", f.StartDate)
		set("start_time", f.StartTime)
		set("end_date", f.EndDate)
		set("end_time", f.EndTime)
	}
	set("sender_ip", f.SenderIP)
	set("message_id", f.MessageID)
	set("mid", f.MID)
	set("attachment_op", f.AttachmentOp)
	set("attachment", f.Attachment)
	set("sha256", f.SHA256)
	set("status", f.Status)
	set("direction", f.Direction)
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if f.Size != pageSizes[0] {
		v.Set("size", strconv.Itoa(f.Size))
	}
	return v
}
