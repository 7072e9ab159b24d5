package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
	var mids, icids []int64
	for _, m := range ms {
		mids = append(mids, m.MID)
		if m.ICID != 0 {
			icids = append(icids, m.ICID)
		}
	}
	midList, err := json.Marshal(mids)
	if err != nil {
		return nil, err
	}
	icidList, err := json.Marshal(icids)
	if err != nil {
		return nil, err
	}
	end, err := s.db.readTurn(ctx)
	if err != nil {
		return nil, wrapDB("read last tracking events", err)
	}
	defer end()
	rows, err := s.reads.QueryContext(ctx, lastEventsSQL, string(midList), string(icidList))
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

// lastEventsSQL reads the newest event with a summary of each MID of the
// JSON array ?1, and of each connection of the array ?2 among its events
// without a MID. Each is read newest first through its index and the read
// stops at the first event with a summary, usually the very last: one row
// per message, where max(seq) read every event. "mid <> 0" and "mid = 0"
// match the partial indexes events_mid and events_connection, which SQLite
// would not use otherwise. The text is fixed, so it is prepared once.
const lastEventsSQL = `
SELECT e.mid, e.icid, e.seq, e.time FROM json_each(?1) AS j JOIN events AS e ON e.seq = (
	SELECT seq FROM events WHERE mid = j.value AND mid <> 0 AND summary <> '' ORDER BY seq DESC LIMIT 1)
UNION ALL
SELECT e.mid, e.icid, e.seq, e.time FROM json_each(?2) AS j JOIN events AS e ON e.seq = (
	SELECT seq FROM events WHERE mid = 0 AND icid = j.value AND summary <> '' ORDER BY seq DESC LIMIT 1)`

// briefsByMID reads the messages of mids in brief, newest first, each in
// one row with its recipients, attachments and URLs as JSON arrays and the
// time of its last event as LastEvents finds it (lastEventsSQL): the later
// by seq of its own newest event with a summary and its connection's.
func briefsByMID(ctx context.Context, tx cachedTx, mids []int64) ([]*tracking.Brief, error) {
	bs := make([]*tracking.Brief, 0, len(mids))
	if len(mids) == 0 {
		return bs, nil
	}
	err := eachRow(tx.QueryContext(ctx, briefsSQL, jsonInts(mids)))(func(rows *sql.Rows) error {
		var b tracking.Brief
		var injected int64
		var last sql.NullInt64
		var rcpts, attachments, urls string
		if err := rows.Scan(&b.MID, &injected, &b.Direction, &b.Sender, &b.Subject, &b.Status, &b.SenderIP,
			&b.MessageID, &b.VerdictChart, &rcpts, &attachments, &urls, &last); err != nil {
			return err
		}
		b.InjectedAt = time.Unix(0, injected).UTC()
		if last.Valid {
			b.LastEventAt = time.Unix(0, last.Int64).UTC()
		}
		var pairs [][2]string
		if err := errors.Join(json.Unmarshal([]byte(rcpts), &b.Recipients), json.Unmarshal([]byte(attachments), &pairs),
			json.Unmarshal([]byte(urls), &b.URLs)); err != nil {
			return fmt.Errorf("MID %d: %w", b.MID, err)
		}
		for _, p := range pairs {
			b.Attachments = append(b.Attachments, tracking.BriefAttachment{Name: p[0], SHA256: p[1]})
		}
		bs = append(bs, &b)
		return nil
	})
	return bs, err
}

// briefsSQL reads the rows of briefsByMID.
const briefsSQL = `
SELECT m.mid, m.injected_at, m.direction, m.sender, m.subject, m.status, m.sender_ip, m.message_id, m.verdict_chart,
	(SELECT json_group_array(address ORDER BY rid) FROM recipients WHERE mid = m.mid),
	(SELECT json_group_array(json_array(name, sha256) ORDER BY idx) FROM attachments WHERE mid = m.mid),
	(SELECT json_group_array(url ORDER BY idx) FROM urls WHERE mid = m.mid),
	(SELECT time FROM events WHERE seq = max(
		coalesce((SELECT seq FROM events WHERE mid = m.mid AND mid <> 0 AND summary <> '' ORDER BY seq DESC LIMIT 1), 0),
		coalesce((SELECT seq FROM events WHERE mid = 0 AND icid = m.icid AND m.icid <> 0 AND summary <> '' ORDER BY seq DESC LIMIT 1), 0)))
FROM messages m WHERE m.mid IN (SELECT value FROM json_each(?))
ORDER BY m.injected_at DESC, m.mid DESC`
