package tracking

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sightline/sightline"
)

func TestParseDate(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"2019-04-01T01:00:00.000Z", time.Date(2019, 4, 1, 1, 0, 0, 0, time.UTC), ""},
		{"2019-04-01T01:00:30.000Z", time.Time{}, msgDateSeconds},
		{"2019-04-01T01:00:00.001Z", time.Time{}, msgDateSeconds},
		{"2019-04-01T01:00:00Z", time.Time{}, msgInvalidDates},
		{"2019-04-01T01:00:00.000+01:00", time.Time{}, msgInvalidDates},
		{"2019-02-30T01:00:00.000Z", time.Time{}, msgInvalidDates},
		{"2019-04-01 01:00:00.000Z", time.Time{}, msgInvalidDates},
		{"", time.Time{}, msgInvalidDates},
	}
	for _, tt := range tests {
		got, err := parseDate(tt.in)
		if gotErr := sightline.ErrorMessage(err); gotErr != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseDate(%q) = %v, %q; want %v, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
}

const dates = "startDate=2026-01-10T08:00:00.000Z&endDate=2026-01-11T08:00:00.000Z"

func TestParseQueryParamsErrors(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"no dates", "", msgMissingDates},
		{"no end", "startDate=2026-01-10T08:00:00.000Z", msgMissingDates},
		{"seconds", "startDate=2026-01-10T08:00:05.000Z&endDate=2026-01-11T08:00:00.000Z", msgDateSeconds},
		{"unparseable", "startDate=yesterday&endDate=2026-01-11T08:00:00.000Z", msgInvalidDates},
		{"start after end", "startDate=2026-01-12T08:00:00.000Z&endDate=2026-01-11T08:00:00.000Z", msgInvalidDates},
		{"operator without value", dates + "&envelopeSenderfilterOperator=is", "Missing attribute - envelopeSenderfilterValue."},
		{"value without operator", dates + "&subjectfilterValue=x", "Missing attribute - subjectfilterOperator."},
		{"unknown operator", dates + "&subjectfilterOperator=ends_with&subjectfilterValue=x", "Invalid value for subjectfilterOperator."},
		{"is_empty on sender", dates + "&envelopeSenderfilterOperator=is_empty", "Invalid value for envelopeSenderfilterOperator."},
		{"two operators", dates + "&subjectfilterOperator=is&subjectfilterOperator=contains&subjectfilterValue=x", msgWrongParam},
		{"bad ip", dates + "&senderIp=300.1.1.1", "Invalid value for senderIp."},
		{"bad mid", dates + "&ciscoMid=12a", "Invalid value for ciscoMid."},
		{"bad sha256", dates + "&fileSha256=abc", "Invalid value for fileSha256."},
		{"empty message id", dates + "&messageIdHeader=<>", "Invalid value for messageIdHeader."},
		{"bad direction", dates + "&messageDirection=sideways", "Invalid value for messageDirection."},
		{"bad limit", dates + "&limit=0", "Invalid value for limit."},
		{"limit too big", dates + "&limit=1001", "Invalid value for limit."},
		{"bad offset", dates + "&offset=-1", "Invalid value for offset."},
		{"bad search option", dates + "&searchOption=rejected_connections", "Invalid value for searchOption."},
		{"bad enum", dates + "&deliveryStatus=LOST", "Invalid value for deliveryStatus."},
		{"two values in one group", dates + "&deliveryStatus=DELIVERED&deliveryStatus=BOUNCED", msgWrongParam},
		{"direction without its filter", dates + "&contentFiltersDirection=inbound", "Missing attribute - contentFiltersName."},
		{"bad group direction", dates + "&contentFiltersName=x&contentFiltersDirection=up", "Invalid value for contentFiltersDirection."},
		{"too many repeats", dates + strings.Repeat("&ciscoMid=1", MaxAlternatives+1), "Invalid value for ciscoMid."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseQueryParams(v)
			if sightline.ErrorKind(err) != sightline.Invalid || sightline.ErrorMessage(err) != tt.want {
				t.Errorf("ParseQueryParams(%q) error = %v, want Invalid %q", tt.query, err, tt.want)
			}
		})
	}
}

func TestParseQueryParams(t *testing.T) {
	start := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	end := time.Date(2026, 1, 11, 8, 1, 0, 0, time.UTC) // endDate's whole minute
	base := func(q Query) Query {
		q.Start, q.End, q.Limit = start, end, DefaultLimit
		return q
	}
	tests := []struct {
		name, query string
		want        Query
	}{
		{"dates only, unknown ignored", dates + "&ciscoHost=All_Hosts&searchOption=messages&queryType=x&foo=bar", base(Query{})},
		{"plus in address is kept", dates + "&envelopeSenderfilterOperator=is&envelopeSenderfilterValue=a%2Bb%40x.com",
			base(Query{Sender: TextFilter{Op: OpIs, Values: []string{"a+b@x.com"}}})},
		{"unencoded plus in address", dates + "&envelopeRecipientfilterOperator=begins_with&envelopeRecipientfilterValue=a+b@x.com",
			base(Query{Recipient: TextFilter{Op: OpBeginsWith, Values: []string{"a+b@x.com"}}})},
		{"plus in subject is a space", dates + "&subjectfilterOperator=contains&subjectfilterValue=test+test",
			base(Query{Subject: TextFilter{Op: OpContains, Values: []string{"test test"}}})},
		{"subject is_empty without value", dates + "&subjectfilterOperator=is_empty",
			base(Query{Subject: TextFilter{Op: OpIsEmpty}})},
		{"operator case", dates + "&attachmentNameOperator=IS&attachmentNameValue=a.pdf",
			base(Query{AttachmentName: TextFilter{Op: OpIs, Values: []string{"a.pdf"}}})},
		{"lone reply-to value", dates + "&replyToValue=r@x.com", base(Query{ReplyTo: TextFilter{Op: OpIs, Values: []string{"r@x.com"}}})},
		{"single-value filters, repeats are lists", dates + "&senderIp=2001:DB8::1&senderIp=::ffff:1.2.3.4&messageIdHeader=<a@b>&ciscoMid=1&ciscoMid=2&fileSha256=" +
			strings.Repeat("AB", 32) + "&messageDirection=Incoming",
			base(Query{SenderIPs: []string{"2001:db8::1", "1.2.3.4"}, MessageIDs: []string{"<a@b>"}, MIDs: []int64{1, 2},
				SHA256s: []string{strings.Repeat("ab", 32)}, Direction: "incoming"})},
		{"paging", dates + "&offset=40&limit=1000", func() Query { q := base(Query{Offset: 40}); q.Limit = 1000; return q }()},
		{"advanced filters", dates + "&virusPositive=true&spamPositive=False&deliveryStatus=bounced&contentFiltersName=Block_EXE&contentFiltersDirection=outbound&contentFiltersAction=stopped",
			base(Query{Events: []EventFilter{
				{Name: "contentFiltersName", Value: "Block_EXE", Direction: "outgoing", Action: "stopped"},
				{Name: "deliveryStatus", Value: "BOUNCED"},
				{Name: "virusPositive", Value: "True"},
			}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQueryParams(v)
			if err != nil {
				t.Fatalf("ParseQueryParams(%q): %v", tt.query, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseQueryParams(%q) (-want +got):\n%s", tt.query, diff)
			}
			back, err := ParseQueryParams(got.Values())
			if err != nil {
				t.Fatalf("ParseQueryParams(%q) of Values: %v", got.Values().Encode(), err)
			}
			if diff := cmp.Diff(got, back, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseQueryParams(Values()) round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventFilterConditions(t *testing.T) {
	tests := []struct {
		f    EventFilter
		want Condition
	}{
		{EventFilter{Name: "virusPositive", Value: "True"}, Condition{Tags: []string{"virusPositive"}}},
		{EventFilter{Name: "hardBounced", Value: "True"}, Condition{Statuses: []string{StatusHardBounced}}},
		{EventFilter{Name: "mailPolicyName", Value: "Finance", Direction: "incoming"}, Condition{Tags: []string{"policy:finance"}, Direction: "incoming"}},
		{EventFilter{Name: "dmarcAction", Value: "reject"}, Condition{Never: true}},
		{EventFilter{Name: "urlReputation", Value: "x"}, Condition{Never: true}},
		{EventFilter{Name: "noSuchFilter", Value: "x"}, Condition{Never: true}},
	}
	for _, tt := range tests {
		if got := tt.f.Condition(); !cmp.Equal(got, tt.want, cmpopts.EquateEmpty()) {
			t.Errorf("%+v.Condition() = %+v, want %+v", tt.f, got, tt.want)
		}
	}
}

func TestEveryEventParamAccepted(t *testing.T) {
	for name, p := range eventParams {
		val := "x"
		switch {
		case p.boolean:
			val = "True"
		case p.enum != nil:
			val = p.enum[0]
		}
		v, _ := url.ParseQuery(dates)
		v.Set(name, val)
		q, err := ParseQueryParams(v)
		if err != nil || len(q.Events) != 1 {
			t.Errorf("ParseQueryParams with %s=%s = %+v, %v; want one event filter", name, val, q.Events, err)
		}
	}
}

func TestDeriveStatus(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, StatusInProgress},
		{[]string{StatusDelivered, ""}, StatusInProgress},
		{[]string{StatusDelivered, StatusDelivered}, StatusDelivered},
		{[]string{StatusHardBounced, StatusDelivered}, StatusDelivered},
		{[]string{StatusHardBounced, StatusSoftBounced}, StatusBounced},
		{[]string{StatusDroppedAV, StatusQuarantinedCF}, StatusQuarantinedCF},
	}
	for _, tt := range tests {
		if got := DeriveStatus(tt.in); got != tt.want {
			t.Errorf("DeriveStatus(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseDate(f *testing.F) {
	f.Add("2019-04-01T01:00:00.000Z")
	f.Add("2019-04-01T01:00:59.999Z")
	f.Add("0000-00-00T00:00:00.000Z")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDate(s)
		if err != nil {
			return
		}
		if got := d.Format(apiDateLayout); got != s {
			t.Errorf("parseDate(%q) = %v, which formats as %q", s, d, got)
		}
	})
}

// FuzzParseQueryParams checks that any accepted query survives a round trip
// through Query.Values.
func FuzzParseQueryParams(f *testing.F) {
	f.Add(dates + "&envelopeSenderfilterOperator=is&envelopeSenderfilterValue=a+b@x.com&ciscoMid=3&limit=5")
	f.Add(dates + "&subjectfilterOperator=is_empty&senderIp=::ffff:1.2.3.4&contentFiltersName=x&contentFiltersDirection=inbound")
	f.Add(dates + "&deliveryStatus=DELIVERED&virusPositive=True&replyToValue=%20x&messageIdHeader=<a>")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQueryParams(v)
		if err != nil {
			if sightline.ErrorKind(err) != sightline.Invalid {
				t.Fatalf("ParseQueryParams(%q) error kind = %v, want Invalid", raw, sightline.ErrorKind(err))
			}
			return
		}
		back, err := ParseQueryParams(q.Values())
		if err != nil {
			t.Fatalf("ParseQueryParams(%q) of Values of %q: %v", q.Values().Encode(), raw, err)
		}
		if diff := cmp.Diff(q, back, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", raw, diff)
		}
	})
}
