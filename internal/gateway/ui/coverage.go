package ui

import (
	"fmt"
	"math"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// rangeCoverage is the line AsyncOS shows above tracking results, "Data in
// time range: 100.0% complete": how much of the searched time range the
// tracking store can answer for.
type rangeCoverage struct {
	// Percent is the complete share, "100.0%" or "42.3%", rounded down so
	// that only a range wholly in the past reads 100.0%. It is "" when the
	// range has no start and ends in the future: no share can be given,
	// although everything up to now is complete.
	Percent string
	// Future is the end of a range that reaches past now, else zero.
	Future time.Time
}

// coverage returns the coverage at now of the time range [start, end); a
// zero bound is open. Tracking data is written within milliseconds of what
// it records, so every instant up to now is complete and every instant
// after it is not: the share is 100% unless end is after now, and then
// (now − start)/(end − start), 0% for a range entirely in the future.
func coverage(start, end, now time.Time) rangeCoverage {
	if end.IsZero() || !end.After(now) {
		return rangeCoverage{Percent: "100.0%"}
	}
	c := rangeCoverage{Future: end}
	if start.IsZero() {
		return c
	}
	share := 0.0
	if now.After(start) {
		share = float64(now.Sub(start)) / float64(end.Sub(start))
	}
	c.Percent = fmt.Sprintf("%.1f%%", math.Floor(share*1000)/10)
	return c
}

// searchRange returns the time range a native search is bounded to: the
// latest lower bound and the earliest upper bound among its after: and
// before: terms (a negated after: is an upper bound, a negated before: a
// lower one); zero where it has none.
func searchRange(s tracking.Search) (start, end time.Time) {
	for _, t := range s.Terms {
		if t.Key != tracking.KeyAfter && t.Key != tracking.KeyBefore {
			continue
		}
		if (t.Key == tracking.KeyAfter) != t.Negated {
			if start.IsZero() || t.Time.After(start) {
				start = t.Time
			}
		} else if end.IsZero() || t.Time.Before(end) {
			end = t.Time
		}
	}
	return start, end
}
