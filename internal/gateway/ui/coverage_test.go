package ui

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/sightline/sightline/internal/store/sqlite"
	"github.com/sightline/sightline/internal/tracking"
)

func TestCoverage(t *testing.T) {
	now := testNow
	h := func(n int) time.Time { return now.Add(time.Duration(n) * time.Hour) }
	tests := []struct {
		name       string
		start, end time.Time
		want       rangeCoverage
	}{
		{"past range", h(-48), h(-24), rangeCoverage{Percent: "100.0%"}},
		{"range ending now", h(-24), now, rangeCoverage{Percent: "100.0%"}},
		{"open end", h(-24), time.Time{}, rangeCoverage{Percent: "100.0%"}},
		{"unbounded", time.Time{}, time.Time{}, rangeCoverage{Percent: "100.0%"}},
		{"ending in the future", h(-2), h(2), rangeCoverage{Percent: "50.0%", Future: h(2)}},
		{"rounded down, never up to 100.0%", h(-9999), now.Add(time.Second), rangeCoverage{Percent: "99.9%", Future: now.Add(time.Second)}},
		{"starting now", now, h(1), rangeCoverage{Percent: "0.0%", Future: h(1)}},
		{"entirely in the future", h(1), h(3), rangeCoverage{Percent: "0.0%", Future: h(3)}},
		{"empty range in the future", h(3), h(1), rangeCoverage{Percent: "0.0%", Future: h(1)}},
		{"no start, future end", time.Time{}, h(1), rangeCoverage{Future: h(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := coverage(tt.start, tt.end, now); got != tt.want {
				t.Errorf("coverage(%v, %v, %v) = %+v, want %+v", tt.start, tt.end, now, got, tt.want)
			}
		})
	}
}

func TestSearchRange(t *testing.T) {
	d := func(day int) time.Time { return time.Date(2026, 1, day, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		query      string
		start, end time.Time
	}{
		{"subject:invoice", time.Time{}, time.Time{}},
		{"after:2026-01-02", d(2), time.Time{}},
		{"before:2026-01-05", time.Time{}, d(5)},
		{"after:2026-01-02 after:2026-01-03 before:2026-01-09 before:2026-01-05", d(3), d(5)},
		{"-before:2026-01-04 -after:2026-01-08", d(4), d(8)},
	}
	for _, tt := range tests {
		s, err := tracking.ParseSearch(tt.query, time.UTC)
		if err != nil {
			t.Fatalf("ParseSearch(%q): %v", tt.query, err)
		}
		if start, end := searchRange(s); !start.Equal(tt.start) || !end.Equal(tt.end) {
			t.Errorf("searchRange(%q) = %v, %v, want %v, %v", tt.query, start, end, tt.start, tt.end)
		}
	}
}

// coverageLine returns the text of the results' coverage line, "" when
// the page has none.
func coverageLine(p page) string {
	if n := find(p.doc, func(n *html.Node) bool { return attr(n, "id") == "coverage" }); len(n) == 1 {
		return text(n[0])
	}
	return ""
}

func TestTrackingCoverage(t *testing.T) {
	e := newEnv(t, Config{Tracking: newTracker(10)})
	custom := func(startDate, startTime, endDate, endTime string) string {
		return "/monitor/tracking?" + url.Values{"search": {"1"}, "range": {"custom"}, "start_date": {startDate},
			"start_time": {startTime}, "end_date": {endDate}, "end_time": {endTime}}.Encode()
	}
	// testNow is 2026-01-10 08:30 UTC; a custom range ends a minute after its end time.
	tests := []struct {
		name, path, want string
	}{
		{"last day", "/monitor/tracking?search=1&range=day", "Data in time range: 100.0% complete"},
		{"past range", custom("2026-01-09", "00:00", "2026-01-10", "08:00"), "Data in time range: 100.0% complete"},
		{"range ending in the future", custom("2026-01-10", "06:30", "2026-01-10", "10:29"),
			"Data in time range: 50.0% complete (the range ends 10 Jan 2026 10:30:00 (GMT +00:00), in the future)"},
		{"range entirely in the future", custom("2026-01-11", "00:00", "2026-01-11", "23:59"),
			"Data in time range: 0.0% complete (the range ends 12 Jan 2026 00:00:00 (GMT +00:00), in the future)"},
		{"no search yet", "/monitor/tracking", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.get(t, tt.path)
			if p.status != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200:\n%s", tt.path, p.status, p.body)
			}
			if diff := cmp.Diff(tt.want, coverageLine(p)); diff != "" {
				t.Errorf("GET %s: coverage line (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestTrackingQueryCoverage(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenTracking(ctx, filepath.Join(t.TempDir(), "tracking.db"))
	if err != nil {
		t.Fatalf("OpenTracking: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, Config{Tracking: st})
	tests := []struct {
		query, want string
	}{
		{"invoice", "Data in time range: 100.0% complete"},
		{"after:2026-01-10T06:30:00Z before:2026-01-10T10:30:00Z",
			"Data in time range: 50.0% complete (the range ends 10 Jan 2026 10:30:00 (GMT +00:00), in the future)"},
		{"before:2026-02-01", "Data in time range: complete up to now (the range ends 01 Feb 2026 00:00:00 (GMT +00:00), in the future)"},
	}
	for _, tt := range tests {
		p := e.get(t, "/monitor/tracking?"+url.Values{"q": {tt.query}}.Encode())
		if p.status != http.StatusOK {
			t.Fatalf("query %q = %d, want 200:\n%s", tt.query, p.status, p.body)
		}
		if got := coverageLine(p); got != tt.want {
			t.Errorf("query %q: coverage line = %q, want %q", tt.query, got, tt.want)
		}
	}
}
