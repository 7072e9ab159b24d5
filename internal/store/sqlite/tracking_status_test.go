package sqlite

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// TestDerivedTags checks that the status and domain tags in flags follow
// every change of a message's and its recipients' statuses, that status and
// domain searches read them right (alone, with a window, paged, with several
// tags of one message, and beside another filter), and that migration 8
// writes the same tags from the rows.
func TestDerivedTags(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	rcpts := func(addrs ...string) []tracking.Recipient {
		rs := make([]tracking.Recipient, len(addrs))
		for i, a := range addrs {
			rs[i] = tracking.Recipient{RID: i, Address: a}
		}
		return rs
	}
	s := openSearchStore(t)
	apply := func(b tracking.Batch) {
		t.Helper()
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	apply(tracking.Batch{Messages: []*tracking.Message{
		{MID: 1, InjectedAt: t0, Sender: "a@X.example", Recipients: rcpts("bob@corp.example", "carol@Other.example.")},
		{MID: 2, InjectedAt: t0.Add(time.Minute), Sender: "b@x.example", Recipients: rcpts("dan@corp.example", "eve@corp.example")},
		{MID: 3, InjectedAt: t0.Add(2 * time.Minute), Sender: "", Recipients: rcpts("fay@corp.example", "postmaster")},
		{MID: 4, InjectedAt: t0.Add(-48 * time.Hour), Sender: "d@corp.example", Status: tracking.StatusDelivered, Recipients: rcpts("gus@corp.example")},
	}})

	// checkTags checks the derived tags of every message against its rows.
	checkTags := func(label string) {
		t.Helper()
		for mid := int64(1); mid <= 4; mid++ {
			m, _, err := s.Details(ctx, mid)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{statusTag(m.Status), domainTag(tracking.Fold(m.SenderDomain))}
			for _, r := range m.Recipients {
				want = append(want, statusTag(r.Status), domainTag(tracking.Domain(r.Address)))
			}
			slices.Sort(want)
			want = slices.Compact(want)
			var got []string
			rows, err := s.db.R.QueryContext(ctx, `SELECT flag FROM flags WHERE mid = ? AND (flag LIKE 'status:%' OR flag LIKE 'domain:%') ORDER BY flag`, mid)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var f string
				if err := rows.Scan(&f); err != nil {
					t.Fatal(err)
				}
				got = append(got, f)
			}
			rows.Close()
			if !slices.Equal(got, want) {
				t.Errorf("%s: status tags of MID %d = %q, want %q", label, mid, got, want)
			}
		}
	}
	type search struct {
		q     tracking.Query
		want  []int64
		total int
	}
	ev := func(name, value string) []tracking.EventFilter {
		return []tracking.EventFilter{{Name: name, Value: value}}
	}
	checkSearches := func(label string, ss []search) {
		t.Helper()
		for _, c := range ss {
			page, err := s.Search(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range page.Messages {
				got = append(got, m.MID)
			}
			if !slices.Equal(got, c.want) || page.Total != c.total {
				t.Errorf("%s: Search(%+v) = %v total %d, want %v total %d", label, c.q, got, page.Total, c.want, c.total)
			}
		}
	}
	checkTags("saved")
	domain := func(v ...string) tracking.TextFilter { return tracking.TextFilter{Op: tracking.OpIs, Values: v} }
	checkSearches("saved", []search{
		{tracking.Query{Events: ev("deliveryStatus", "DELIVERED")}, []int64{4}, 1},
		{tracking.Query{Start: t0.Add(-time.Hour), Events: ev("deliveryStatus", "DELIVERED")}, nil, 0},
		{tracking.Query{Domain: domain("corp.example")}, []int64{3, 2, 1, 4}, 4},
		{tracking.Query{Domain: domain(" @CORP.example"), Start: t0.Add(-time.Hour)}, []int64{3, 2, 1}, 3},
		{tracking.Query{Domain: domain("x.example")}, []int64{2, 1}, 2},
		{tracking.Query{Domain: domain("other.example")}, []int64{1}, 1},
		// MID 1 has both domains and counts once.
		{tracking.Query{Domain: domain("x.example", "other.example"), Limit: 1, Offset: 1}, []int64{1}, 2},
		{tracking.Query{Domain: domain("corp.example"), End: t0.Add(90 * time.Second), Limit: 2}, []int64{2, 1}, 3},
		// Beside another filter, the domain's MIDs are a set within the window.
		{tracking.Query{Domain: domain("x.example"), Sender: tracking.TextFilter{Op: tracking.OpBeginsWith, Values: []string{"a"}}}, []int64{1}, 1},
		{tracking.Query{Domain: domain("corp.example"), Direction: "incoming", Start: t0}, nil, 0},
	})

	at := func(m time.Duration) time.Time { return t0.Add(10*time.Minute + m) }
	apply(tracking.Batch{Events: []tracking.Event{
		{Time: at(1), MID: 1, Recipient: "bob@corp.example", Status: tracking.StatusSoftBounced},
	}})
	checkTags("soft bounce")
	checkSearches("soft bounce", []search{
		{tracking.Query{Events: ev("softBounced", "True")}, []int64{1}, 1},
		{tracking.Query{Events: ev("deliveryStatus", "BOUNCED")}, []int64{1}, 1},
	})

	apply(tracking.Batch{Events: []tracking.Event{
		{Time: at(2), MID: 1, Recipient: "<BOB@corp.example>", Status: tracking.StatusDelivered},
		{Time: at(2), MID: 1, Recipient: "Carol@other.example.", Status: tracking.StatusHardBounced},
		{Time: at(3), MID: 2, Recipient: "dan@corp.example", Status: tracking.StatusBounced},
		{Time: at(3), MID: 2, Recipient: "eve@corp.example", Status: tracking.StatusHardBounced},
		{Time: at(4), MID: 3, Status: tracking.StatusQuarantinedCF},
		{Time: at(4), MID: 99, Status: tracking.StatusDelivered}, // no such message
	}})
	checkTags("delivered and bounced")
	window := t0.Add(-time.Hour)
	checkSearches("delivered and bounced", []search{
		{tracking.Query{Events: ev("softBounced", "True")}, nil, 0},
		{tracking.Query{Events: ev("deliveryStatus", "DELIVERED")}, []int64{1, 4}, 2},
		{tracking.Query{Start: window, Events: ev("deliveryStatus", "DELIVERED")}, []int64{1}, 1},
		{tracking.Query{Events: ev("hardBounced", "True")}, []int64{2, 1}, 2},
		// MID 2 has two bounce statuses and counts once.
		{tracking.Query{Events: ev("deliveryStatus", "BOUNCED")}, []int64{2, 1}, 2},
		{tracking.Query{Events: ev("deliveryStatus", "BOUNCED"), Limit: 1, Offset: 1}, []int64{1}, 2},
		{tracking.Query{Events: ev("deliveryStatus", "BOUNCED"), Limit: 1}, []int64{2}, 2},
		{tracking.Query{Events: ev("quarantineStatus", "POLICY")}, []int64{3}, 1},
		// Beside another filter, the status is checked row by row.
		{tracking.Query{Sender: tracking.TextFilter{Op: tracking.OpIs, Values: []string{"b@x.example"}},
			Events: ev("deliveryStatus", "BOUNCED")}, []int64{2}, 1},
		{tracking.Query{Sender: tracking.TextFilter{Op: tracking.OpBeginsWith, Values: []string{"a@"}},
			Events: ev("deliveryStatus", "DELIVERED")}, []int64{1}, 1},
		{tracking.Query{Direction: "incoming", Events: ev("deliveryStatus", "DELIVERED")}, nil, 0},
	})

	// Released from quarantine and delivered: the old status goes.
	apply(tracking.Batch{Events: []tracking.Event{
		{Time: at(5), MID: 3, Recipient: "fay@corp.example", Status: tracking.StatusDelivered},
		{Time: at(5), MID: 3, Recipient: "postmaster", Status: tracking.StatusDelivered},
	}})
	checkTags("released")
	checkSearches("released", []search{
		{tracking.Query{Events: ev("quarantineStatus", "POLICY")}, nil, 0},
		{tracking.Query{Start: window, Events: ev("deliveryStatus", "DELIVERED")}, []int64{3, 1}, 2},
	})

	// Migration 8 writes the same tags from the rows.
	if _, err := s.db.W.ExecContext(ctx, `DELETE FROM flags WHERE flag LIKE 'status:%' OR flag LIKE 'domain:%'`); err != nil {
		t.Fatal(err)
	}
	backfill := trackingV8[:strings.Index(trackingV8, "DROP INDEX")]
	if _, err := s.db.W.ExecContext(ctx, backfill); err != nil {
		t.Fatalf("migration 8 backfill: %v", err)
	}
	checkTags("migration 8")
}

// TestStatusTagsDeletedByKey checks that Apply deletes a message's status
// tags by their whole key: BulkLoad drops flags_mid, and a delete by MID
// would then read every status tag of the store for each status event.
func TestStatusTagsDeletedByKey(t *testing.T) {
	s := openSearchStore(t)
	ctx := context.Background()
	if _, err := s.db.W.ExecContext(ctx, `DROP INDEX flags_mid`); err != nil {
		t.Fatal(err)
	}
	plan := queryPlan(t, s.db.W, deleteStatusTagsSQL, 1)
	if len(plan) == 0 || plan[0] != "SEARCH flags USING PRIMARY KEY (flag=? AND injected_at=? AND mid=?)" {
		t.Errorf("plan of deleteStatusTagsSQL without flags_mid:\n%s\nwant a search of flags by its whole key first", strings.Join(plan, "\n"))
	}
}

// TestSubjectPrefixByDay checks a subject prefix within windows that start
// and end on and off day boundaries (the day numbers where.days lists, the
// days pageByDay reads a page from), whole and in pages of 2; and that with
// a window the prefix is read from messages_subject_day, day by day.
func TestSubjectPrefixByDay(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ms []*tracking.Message
	// Four messages around each of five midnights: 1 ns before, at, 1 ns
	// after, and noon; half of them with the prefix.
	for d := range 5 {
		midnight := day.Add(time.Duration(d) * 24 * time.Hour)
		for i, at := range []time.Time{midnight.Add(-time.Nanosecond), midnight, midnight.Add(time.Nanosecond), midnight.Add(12 * time.Hour)} {
			subject := "Invoice " + strconv.Itoa(d) + "-" + strconv.Itoa(i)
			if (d+i)%2 == 1 {
				subject = "Meeting " + strconv.Itoa(d)
			}
			mid := int64(len(ms) + 1)
			ms = append(ms, &tracking.Message{MID: mid, ICID: mid, InjectedAt: at, Subject: subject, Status: tracking.StatusDelivered})
		}
	}
	if err := s.Apply(ctx, tracking.Batch{Messages: ms}); err != nil {
		t.Fatal(err)
	}
	prefix := tracking.TextFilter{Op: tracking.OpBeginsWith, Values: []string{"INVOICE"}}
	search := func(q tracking.Query) ([]int64, tracking.Page) {
		t.Helper()
		got, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var found []int64
		for _, m := range got.Messages {
			found = append(found, m.MID)
		}
		return found, got
	}
	windows := [][2]time.Time{
		{day, day.Add(24 * time.Hour)},                                           // one whole day
		{day.Add(-time.Nanosecond), day.Add(24*time.Hour + time.Nanosecond)},     // a nanosecond beyond each side
		{day.Add(time.Nanosecond), day.Add(3 * 24 * time.Hour)},                  // from just after a midnight
		{day.Add(12 * time.Hour), day.Add(12*time.Hour + time.Nanosecond)},       // one instant
		{day.Add(-24 * time.Hour), day.Add(10 * 24 * time.Hour)},                 // all of them
		{day.Add(2*24*time.Hour - time.Nanosecond), day.Add(2 * 24 * time.Hour)}, // the last nanosecond of a day
	}
	for _, w := range windows {
		var want []int64
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if !m.InjectedAt.Before(w[0]) && m.InjectedAt.Before(w[1]) && strings.HasPrefix(m.Subject, "Invoice") {
				want = append(want, m.MID)
			}
		}
		q := tracking.Query{Start: w[0], End: w[1], Subject: prefix, Limit: 100}
		have, got := search(q)
		if !slices.Equal(have, want) || got.Total != len(want) {
			t.Errorf("subject begins with %q in [%s, %s) = %v (total %d), want %v", "INVOICE",
				w[0].Format(time.RFC3339Nano), w[1].Format(time.RFC3339Nano), have, got.Total, want)
		}
		// Pages of 2, whose days are read one at a time, newest first.
		for off := 0; off <= len(want); off++ {
			q.Limit, q.Offset = 2, off
			page, got := search(q)
			if w := want[off:min(off+2, len(want))]; !slices.Equal(page, w) || got.Messages == nil {
				t.Errorf("page at offset %d of %v = %v, want %v", off, want, page, w)
			}
		}
	}

	var w where
	w.build(tracking.Query{Start: day, End: day.Add(3 * 24 * time.Hour), Subject: prefix})
	if !strings.Contains(w.sql(), "IN (?, ?, ?)") {
		t.Errorf("a 3-day window lists its days: %s", w.sql())
	}
	if text := strings.Join(queryPlan(t, s.db.R, w.plan().count, append(w.args, 100)...), "\n"); !strings.Contains(text, "messages_subject_day") {
		t.Errorf("a subject prefix in a window is not read day by day:\n%s", text)
	}
	var open where
	open.build(tracking.Query{Subject: prefix})
	if strings.Contains(open.sql(), dayExpr) {
		t.Errorf("a search without a window lists days: %s", open.sql())
	}
}
