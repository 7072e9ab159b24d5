package sqlite

import (
	"context"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// LastEvents implements tracking.Store in one read: the newest
// event with a summary of each MID, and of each connection's events without
// a MID, the later of the two winning as Details orders them (by seq).
func (s *TrackingStore) LastEvents(ctx context.Context, ms []*tracking.Message) (map[int64]time.Time, error) {
	last := make(map[int64]time.Time, len(ms))
	if len(ms) == 0 {
		return last, nil
	}
	var mids, icids []any
	for _, m := range ms {
		mids = append(mids, m.MID)
		if m.ICID != 0 {
			icids = append(icids, m.ICID)
		}
	}
	// "mid <> 0" matches the partial index events_mid, which SQLite would
	// not use otherwise.
	q := `SELECT mid, icid, seq, time FROM events WHERE seq IN (
		SELECT max(seq) FROM events WHERE mid IN ` + placeholders(len(mids)) + ` AND mid <> 0 AND summary <> '' GROUP BY mid`
	args := mids
	if len(icids) > 0 {
		q += ` UNION ALL SELECT max(seq) FROM events WHERE mid = 0 AND icid IN ` + placeholders(len(icids)) + ` AND summary <> '' GROUP BY icid`
		args = append(args, icids...)
	}
	rows, err := s.reads.QueryContext(ctx, q+`)`, args...)
	if err != nil {
		return nil, wrapDB("read last tracking events", err)
	}
	defer rows.Close()
	type event struct {
		seq int64
		t   time.Time
	}
	byMID, byICID := map[int64]event{}, map[int64]event{}
	for rows.Next() {
		var mid, icid, seq, t int64
		if err := rows.Scan(&mid, &icid, &seq, &t); err != nil {
			return nil, wrapDB("read last tracking events", err)
		}
		if mid != 0 {
			byMID[mid] = event{seq, time.Unix(0, t).UTC()}
		} else {
			byICID[icid] = event{seq, time.Unix(0, t).UTC()}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrapDB("read last tracking events", err)
	}
	for _, m := range ms {
		own, hasOwn := byMID[m.MID]
		conn, hasConn := byICID[m.ICID]
		switch {
		case hasOwn && (!hasConn || own.seq > conn.seq):
			last[m.MID] = own.t
		case hasConn:
			last[m.MID] = conn.t
		}
	}
	return last, nil
}
