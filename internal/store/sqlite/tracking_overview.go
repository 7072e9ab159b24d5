package sqlite

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// overviewTop is how many senders and threats the overview ranks.
const overviewTop = 10

// Overview counts the messages injected since a moment by hour and outcome,
// and ranks their senders and threats.
func (s *TrackingStore) Overview(ctx context.Context, since time.Time) (tracking.Overview, error) {
	var ov tracking.Overview
	tx, err := s.beginRead(ctx) // one snapshot for the counts and the ranks
	if err != nil {
		return ov, fmt.Errorf("tracking overview: %w", err)
	}
	defer tx.Rollback()
	const hour = int64(time.Hour)
	rows, err := tx.QueryContext(ctx, `SELECT injected_at / ?, status, count(*) FROM messages
		WHERE injected_at >= ? GROUP BY 1, 2 ORDER BY 1`, hour, since.UnixNano())
	if err != nil {
		return ov, fmt.Errorf("tracking overview: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		var status string
		var n int
		if err := rows.Scan(&h, &status, &n); err != nil {
			return ov, fmt.Errorf("tracking overview: %w", err)
		}
		start := time.Unix(0, h*hour).UTC()
		if len(ov.Hours) == 0 || !ov.Hours[len(ov.Hours)-1].Start.Equal(start) {
			ov.Hours = append(ov.Hours, tracking.HourCount{Start: start})
		}
		hc := &ov.Hours[len(ov.Hours)-1]
		switch {
		case status == tracking.StatusDelivered:
			hc.Delivered += n
		case strings.HasPrefix(status, "Quarantined"):
			hc.Quarantined += n
		case strings.HasPrefix(status, "Dropped"):
			hc.Dropped += n
		case strings.HasSuffix(status, "Bounced"):
			hc.Bounced += n
		}
	}
	if err := rows.Err(); err != nil {
		return ov, fmt.Errorf("tracking overview: %w", err)
	}
	if ov.TopSenders, err = rank(ctx, tx, `SELECT sender_lc, count(*) FROM messages
		WHERE injected_at >= ? AND sender_lc != '' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?`, since.UnixNano(), overviewTop); err != nil {
		return ov, err
	}
	// A message names its threats in threat_name and content_filters
	// (newline-separated); rank them together.
	threats, err := rank(ctx, tx, `SELECT threat_name || char(10) || content_filters, count(*) FROM messages
		WHERE injected_at >= ? AND (threat_name != '' OR content_filters != '') GROUP BY 1`, since.UnixNano(), -1)
	if err != nil {
		return ov, err
	}
	byName := map[string]int{}
	for _, t := range threats {
		for _, name := range strings.Split(t.Name, "\n") {
			if name != "" {
				byName[name] += t.Count
			}
		}
	}
	for name, n := range byName {
		ov.TopThreats = append(ov.TopThreats, tracking.Count{Name: name, Count: n})
	}
	sort.Slice(ov.TopThreats, func(i, j int) bool {
		a, b := ov.TopThreats[i], ov.TopThreats[j]
		return a.Count > b.Count || a.Count == b.Count && a.Name < b.Name
	})
	if len(ov.TopThreats) > overviewTop {
		ov.TopThreats = ov.TopThreats[:overviewTop]
	}
	return ov, nil
}

func rank(ctx context.Context, tx cachedTx, query string, args ...any) ([]tracking.Count, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("tracking overview: %w", err)
	}
	defer rows.Close()
	var out []tracking.Count
	for rows.Next() {
		var c tracking.Count
		if err := rows.Scan(&c.Name, &c.Count); err != nil {
			return nil, fmt.Errorf("tracking overview: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
