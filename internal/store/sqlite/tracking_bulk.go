package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

// BulkLoad writes a large history into an empty store, several times faster
// than the same batches through Apply: it drops the secondary indexes of the
// tracking tables, applies every batch next returns (until it returns false),
// builds the indexes again, each by one sort, and then writes the substring
// index of every message in large batches. What it leaves is the
// store Apply and IndexPending would have made. Searches made meanwhile are
// slow, so nothing else should use the store until it returns; on an error
// the store is left without some of its indexes and should be discarded.
//
// It is for generating benchmark stores and for importing history; the
// gateway itself only ever uses Apply.
func (s *TrackingStore) BulkLoad(ctx context.Context, logger *slog.Logger, next func() (tracking.Batch, bool)) error {
	if logger == nil {
		logger = slog.Default()
	}
	var any int
	if err := s.db.W.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages LIMIT 1)`).Scan(&any); err != nil {
		return wrapDB("bulk load tracking", err)
	}
	if any > 0 {
		return sightline.Errorf(sightline.Invalid, "bulk load needs an empty tracking store; this one holds messages")
	}
	indexes, err := s.dropIndexes(ctx)
	if err != nil {
		return err
	}
	start, n := time.Now(), 0
	for {
		b, ok := next()
		if !ok {
			break
		}
		if err := s.Apply(ctx, b); err != nil {
			return err
		}
		n += len(b.Messages)
	}
	logger.Info("bulk load: records written", "messages", n, "took", time.Since(start).Round(time.Millisecond))
	for _, ix := range indexes {
		t := time.Now()
		if _, err := s.db.W.ExecContext(ctx, ix.sql); err != nil {
			return wrapDB("bulk load tracking: build index "+ix.name, err)
		}
		logger.Info("bulk load: index built", "index", ix.name, "took", time.Since(t).Round(time.Millisecond))
	}
	return s.indexAllPending(ctx, logger)
}

type namedSQL struct{ name, sql string }

// dropIndexes drops the secondary indexes of the tracking tables and
// returns the statements that create them again.
func (s *TrackingStore) dropIndexes(ctx context.Context) ([]namedSQL, error) {
	var indexes []namedSQL
	err := eachRow(s.db.W.QueryContext(ctx, `SELECT name, sql FROM sqlite_master
		WHERE type = 'index' AND sql IS NOT NULL
		AND tbl_name IN ('messages', 'recipients', 'attachments', 'urls', 'flags', 'events') ORDER BY name`))(
		func(rows *sql.Rows) error {
			var ix namedSQL
			err := rows.Scan(&ix.name, &ix.sql)
			indexes = append(indexes, ix)
			return err
		})
	if err != nil {
		return nil, wrapDB("bulk load tracking: list indexes", err)
	}
	for _, ix := range indexes {
		if _, err := s.db.W.ExecContext(ctx, `DROP INDEX "`+ix.name+`"`); err != nil {
			return nil, wrapDB("bulk load tracking: drop index "+ix.name, err)
		}
	}
	return indexes, nil
}

// bulkIndexBatch is how many messages BulkLoad indexes per transaction:
// each chunk bitmap of those messages is written once.
const bulkIndexBatch = 100_000

// indexAllPending writes the substring index of every queued message, then
// seals its complete eras.
func (s *TrackingStore) indexAllPending(ctx context.Context, logger *slog.Logger) error {
	start, done := time.Now(), 0
	for {
		n, err := s.IndexPending(ctx, bulkIndexBatch)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		done += n
		logger.Info("bulk load: substring index", "messages", done, "per_second", int(float64(done)/time.Since(start).Seconds()))
	}
	start = time.Now()
	n, err := s.SealEras(ctx)
	if err == nil {
		logger.Info("bulk load: substring index sealed", "steps", n, "took", time.Since(start).Round(time.Millisecond))
	}
	return err
}
