package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	msqlite "modernc.org/sqlite"

	"github.com/sightline/sightline/internal/tracking"
)

// sightline_test_sleep(ms) sleeps: a migration step that takes as long as a
// test needs, however fast the machine or slow the race detector.
func init() {
	msqlite.MustRegisterScalarFunction("sightline_test_sleep", 1, func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		ms, _ := args[0].(int64)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return nil, nil
	})
}

// TestSlowMigrationLogged checks that a migration step running longer than
// slowMigration is logged while it runs and when it ends, and a quick one
// not at all.
func TestSlowMigrationLogged(t *testing.T) {
	defer func(d time.Duration) { slowMigration = d }(slowMigration)
	slowMigration = 100 * time.Millisecond
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	migs := []Migration{
		{1, `CREATE TABLE a (x INTEGER)`},
		{2, `INSERT INTO a SELECT sightline_test_sleep(400)`},
	}
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), Options{Logger: logger}, migs)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	log := buf.String()
	for _, want := range []string{`msg="migrating database; this step reads the whole database and may take minutes"`, `msg="migrated database"`, "version=2"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "version=1") {
		t.Errorf("quick step 1 was logged:\n%s", log)
	}
}

// TestReadTurns checks that a reader's turn is given back however often it
// is ended, that a reader waits while every turn is taken (until its
// context ends), and that no read of the tracking store keeps its turn:
// one that did would stop every read once the readers are used up.
func TestReadTurns(t *testing.T) {
	s := openSearchStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	readers := cap(s.db.turns)
	if readers < 2 {
		t.Fatalf("%d turns, want one per reader connection", readers)
	}
	var ends []func()
	for range readers {
		end, err := s.db.readTurn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := s.db.readTurn(short)
	stop()
	if err != context.DeadlineExceeded {
		t.Fatalf("a turn beyond the readers' = %v, want to wait until its context ends", err)
	}
	ends[0]()
	ends[0]()
	if _, err := s.db.readTurn(ctx); err != nil {
		t.Fatalf("a turn after one ended: %v", err)
	}
	if len(s.db.turns) != readers {
		t.Fatalf("%d turns taken after ending one twice and taking one, want %d", len(s.db.turns), readers)
	}
	for len(s.db.turns) > 0 {
		<-s.db.turns
	}

	mustApplyInternal(t, s)
	q := tracking.Query{Subject: tracking.TextFilter{Op: tracking.OpContains, Values: []string{"invoice"}}}
	for i := range 3 * readers {
		if _, err := s.Search(ctx, q); err != nil {
			t.Fatalf("Search %d: %v", i, err)
		}
		if _, err := s.Briefs(ctx, q); err != nil {
			t.Fatalf("Briefs %d: %v", i, err)
		}
		if _, _, err := s.Details(ctx, 1); err != nil {
			t.Fatalf("Details %d: %v", i, err)
		}
		if _, err := s.LastEvents(ctx, []*tracking.Message{{MID: 1, ICID: 1}}); err != nil {
			t.Fatalf("LastEvents %d: %v", i, err)
		}
		if _, err := s.SearchMessages(ctx, tracking.SearchQuery{Limit: 10}); err != nil {
			t.Fatalf("SearchMessages %d: %v", i, err)
		}
		if _, err := s.Overview(ctx, time.Time{}); err != nil {
			t.Fatalf("Overview %d: %v", i, err)
		}
		if _, err := s.Unindexed(ctx); err != nil {
			t.Fatalf("Unindexed %d: %v", i, err)
		}
	}
	if n := len(s.db.turns); n != 0 {
		t.Errorf("%d turns still taken after the reads", n)
	}
}

// mustApplyInternal saves one message with MID 1 and an event.
func mustApplyInternal(t *testing.T, s *TrackingStore) {
	t.Helper()
	err := s.Apply(context.Background(), tracking.Batch{
		Messages: []*tracking.Message{{MID: 1, ICID: 1, Direction: "incoming", InjectedAt: time.Now(), Subject: "Invoice 1",
			Recipients: []tracking.Recipient{{Address: "a@b.example"}}}},
		Events: []tracking.Event{{Time: time.Now(), MID: 1, ICID: 1, Summary: "Start message 1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
}
