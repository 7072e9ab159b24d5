package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

// TestBulkLoadLeavesTheSchemaApplyUses checks that BulkLoad rebuilds every
// index it dropped, writes the substring index that Apply and IndexPending
// write, in batches of any size, and leaves nothing queued, and that it
// refuses a store that already holds messages.
func TestBulkLoadLeavesTheSchemaApplyUses(t *testing.T) {
	ctx := context.Background()
	s := openSearchStore(t)
	schema := func() [][3]string {
		var out [][3]string
		if err := eachRow(s.db.W.QueryContext(ctx, `SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY name`))(
			func(rows *sql.Rows) error {
				var r [3]string
				err := rows.Scan(&r[0], &r[1], &r[2])
				out = append(out, r)
				return err
			}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := schema()

	// Three batches of four messages, the MIDs of the last two on both
	// sides of a chunk boundary.
	batch := func(n int) tracking.Batch {
		var b tracking.Batch
		for i := range 4 {
			mid := int64(n*chunkMIDs - 2 + i)
			if n == 0 {
				mid = int64(i + 1)
			}
			b.Messages = append(b.Messages, &tracking.Message{MID: mid, InjectedAt: time.Unix(mid, 0),
				Sender: "a@b.example", Subject: fmt.Sprintf("Invoice Due %d", i), Recipients: []tracking.Recipient{{Address: "c@d.example"}},
				URLs: []string{"https://e.example/x"}, Flags: []string{"virusPositive"}})
			b.Events = append(b.Events, tracking.Event{MID: mid, Time: time.Unix(mid, 0), Status: tracking.StatusDelivered})
		}
		return b
	}
	batches := 0
	next := func() (tracking.Batch, bool) {
		if batches == 3 {
			return tracking.Batch{}, false
		}
		batches++
		return batch(batches - 1), true
	}
	if err := s.BulkLoad(ctx, slog.New(slog.DiscardHandler), next); err != nil {
		t.Fatalf("BulkLoad: %v", err)
	}
	if diff := cmp.Diff(before, schema()); diff != "" {
		t.Errorf("schema after BulkLoad (-before +after):\n%s", diff)
	}
	// The same messages through Apply, indexed three at a time.
	applied := openSearchStore(t)
	for n := range 3 {
		if err := applied.Apply(ctx, batch(n)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		n, err := applied.IndexPending(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if diff := cmp.Diff(gramRows(t, applied), gramRows(t, s)); diff != "" {
		t.Errorf("substring index after BulkLoad (-Apply and IndexPending +BulkLoad):\n%s", diff)
	}
	if n, err := s.Unindexed(ctx); err != nil || n != 0 {
		t.Errorf("Unindexed = %d, %v; want 0", n, err)
	}
	page, err := s.Search(ctx, tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"voice d"}}, Limit: 100})
	if err == nil && len(gramRows(t, s)) == 0 {
		t.Error("BulkLoad wrote no substring index")
	}
	if err != nil || page.Total != 12 {
		t.Errorf("subject contains after BulkLoad: total %d, %v; want 12", page.Total, err)
	}

	err = s.BulkLoad(ctx, nil, func() (tracking.Batch, bool) { return tracking.Batch{}, false })
	if sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("BulkLoad on a store with messages = %v, want an Invalid error", err)
	}
}
