package sqlite

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// TestSubstringSearchWithinMIDRanges checks that a windowed "contains"
// search, whose substring lookup reads only the MIDs of the window's hours,
// finds every match even when MIDs do not follow injection times (a clock
// stepped back, a message saved again with another time), on window bounds
// at and off hour boundaries, before 1970, and from ranges rebuilt by
// migration 7.
func TestSubstringSearchWithinMIDRanges(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	h := func(x float64) time.Time { return t0.Add(time.Duration(x * float64(time.Hour))) }
	msg := func(mid int64, at time.Time) *tracking.Message {
		return &tracking.Message{MID: mid, InjectedAt: at, Sender: "a@b.example", Subject: "Invoice due",
			Recipients: []tracking.Recipient{{Address: "c@d.example"}}, URLs: []string{"https://x.example/pay", "https://y.example/invoice"}}
	}
	s := openSearchStore(t)
	apply := func(ms ...*tracking.Message) {
		t.Helper()
		if err := s.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := s.IndexPending(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	// MIDs 1–3 in order; then the clock steps back two hours (4, 5); 6 is
	// saved again an hour later than first; 7 was injected in 1969.
	apply(msg(1, h(0)), msg(2, h(1.5)), msg(3, h(2)))
	apply(msg(4, h(0.25)), msg(5, h(2.5)), msg(6, h(3)))
	apply(msg(6, h(4)), msg(7, time.Unix(-30, 0)))

	windows := []struct {
		start, end time.Time
		want       []int64
	}{
		{h(0), h(1), []int64{4, 1}},
		{h(0.1), h(0.3), []int64{4}},
		{h(1), h(2), []int64{2}},
		{h(2), h(2.5), []int64{3}},
		{h(2), time.Time{}, []int64{6, 5, 3}},
		{time.Time{}, h(0.25), []int64{1, 7}},
		{h(3), h(4), nil},
		{h(10), h(20), nil},
		{time.Unix(-3600, 0), time.Unix(0, 0), []int64{7}},
	}
	check := func(label string) {
		t.Helper()
		for _, w := range windows {
			q := tracking.Query{Start: w.start, End: w.end, Limit: 20,
				Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"voice"}}}
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range page.Messages {
				got = append(got, m.MID)
			}
			if !slices.Equal(got, w.want) || page.Total != len(w.want) {
				t.Errorf("%s: subject contains in [%v, %v) = %v (total %d), want %v", label, w.start, w.end, got, page.Total, w.want)
			}
			// The same window in the search grammar (inclusive bounds), on
			// a message field and on URLs.
			for _, term := range []string{"subject:voice", "url:/invoice", "-url:nothing.example"} {
				q := term
				if !w.start.IsZero() {
					q += " after:" + w.start.Format(time.RFC3339Nano)
				}
				if !w.end.IsZero() {
					q += " before:" + w.end.Add(-1).Format(time.RFC3339Nano)
				}
				sq, err := tracking.ParseSearch(q, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				sp, err := s.SearchMessages(ctx, tracking.SearchQuery{Search: sq, Limit: 20})
				if err != nil {
					t.Fatal(err)
				}
				got = got[:0]
				for _, m := range sp.Messages {
					got = append(got, m.MID)
				}
				if !slices.Equal(got, w.want) {
					t.Errorf("%s: SearchMessages(%q) = %v, want %v", label, q, got, w.want)
				}
			}
		}
	}
	check("ranges kept by Apply")

	// Migration 7 rebuilds the same ranges from the messages (but for the
	// hour 6 left, which Apply keeps as a looser range).
	if _, err := s.db.W.ExecContext(ctx, `DELETE FROM mid_ranges`); err != nil {
		t.Fatal(err)
	}
	backfill := trackingV7[strings.Index(trackingV7, "INSERT INTO mid_ranges"):]
	if _, err := s.db.W.ExecContext(ctx, backfill); err != nil {
		t.Fatalf("migration 7 backfill: %v", err)
	}
	check("ranges rebuilt by migration 7")
}
