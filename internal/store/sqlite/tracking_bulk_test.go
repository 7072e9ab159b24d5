package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

// TestBulkLoadLeavesTheSchemaApplyUses checks that BulkLoad rebuilds every
// index it dropped, restores the trigram tables' hashsize and leaves nothing
// queued, and that it refuses a store that already holds messages.
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
	hashsizes := func() []string {
		var out []string
		for _, tbl := range []string{"messages_fts", "search_fts", "urls_fts"} {
			var v string
			if err := s.db.W.QueryRowContext(ctx, `SELECT v FROM `+tbl+`_config WHERE k = 'hashsize'`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	before, beforeHash := schema(), hashsizes()

	batches := 3
	next := func() (tracking.Batch, bool) {
		if batches == 0 {
			return tracking.Batch{}, false
		}
		batches--
		var b tracking.Batch
		for i := range 4 {
			mid := int64(batches*10 + i + 1)
			b.Messages = append(b.Messages, &tracking.Message{MID: mid, InjectedAt: time.Unix(mid, 0),
				Sender: "a@b.example", Subject: "Invoice Due", Recipients: []tracking.Recipient{{Address: "c@d.example"}},
				URLs: []string{"https://e.example/x"}, Flags: []string{"virusPositive"}})
			b.Events = append(b.Events, tracking.Event{MID: mid, Time: time.Unix(mid, 0), Status: tracking.StatusDelivered})
		}
		return b, true
	}
	if err := s.BulkLoad(ctx, slog.New(slog.DiscardHandler), next); err != nil {
		t.Fatalf("BulkLoad: %v", err)
	}
	if diff := cmp.Diff(before, schema()); diff != "" {
		t.Errorf("schema after BulkLoad (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeHash, hashsizes()); diff != "" {
		t.Errorf("FTS5 hashsize after BulkLoad (-before +after):\n%s", diff)
	}
	if n, err := s.Unindexed(ctx); err != nil || n != 0 {
		t.Errorf("Unindexed = %d, %v; want 0", n, err)
	}
	page, err := s.Search(ctx, tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"voice d"}}, Limit: 100})
	if err != nil || page.Total != 12 {
		t.Errorf("subject contains after BulkLoad: total %d, %v; want 12", page.Total, err)
	}

	err = s.BulkLoad(ctx, nil, func() (tracking.Batch, bool) { return tracking.Batch{}, false })
	if sightline.ErrorKind(err) != sightline.Invalid {
		t.Errorf("BulkLoad on a store with messages = %v, want an Invalid error", err)
	}
}
