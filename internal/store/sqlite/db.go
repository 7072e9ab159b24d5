// Package sqlite implements Sightline's storage contracts on embedded SQLite
// (modernc.org/sqlite, pure Go), one database file per area, WAL journaled.
//
// Each area (tracking, spool, gateway configuration) lives in its own file of
// this package with its own embedded schema, applied by Open.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// DB is one SQLite database file with a single writer connection and a pool
// of readers, so writers queue in Go rather than on SQLITE_BUSY.
type DB struct {
	Path string
	W    *sql.DB // exactly one connection: every write goes here
	R    *sql.DB // read-only connections
	// turns holds a token for each reader connection taken by readTurn.
	turns chan struct{}
}

// readTurn waits for a reader connection, in order of arrival, and returns
// the function that ends the turn (once, however often it is called).
// database/sql gives a freed connection to a waiter picked at random: with
// more concurrent reads than readers, some waited many times longer than
// the others (the console's 50 concurrent investigations: p99 two to four
// times the median; in turn, 1.6 times).
func (db *DB) readTurn(ctx context.Context) (end func(), err error) {
	select {
	case db.turns <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() { once.Do(func() { <-db.turns }) }, nil
}

// Migration is one schema step, applied once in its own transaction.
type Migration struct {
	Version int
	SQL     string
}

// Options tune a database.
type Options struct {
	// Durable makes each commit fsynced (synchronous=FULL); otherwise it is
	// only written (NORMAL, which loses nothing on a process crash, only on
	// power loss).
	Durable bool
	// WriterCacheKiB and ReaderCacheKiB size the page cache of the writer
	// and of each reader connection; zero means SQLite's default (2 MiB).
	WriterCacheKiB, ReaderCacheKiB int
	// Logger reports the migration steps that run long (slowMigration);
	// nil means slog.Default.
	Logger *slog.Logger
}

// readerMmapBytes is how much of the file readers map into memory, from
// its start: the most this build of SQLite maps (SQLITE_MAX_MMAP_SIZE).
// A page there is read from the OS's cache without a system call and a
// copy: a search that reads a page per candidate, or per message of the
// result (a gateway's tracking), spends its time in pread otherwise. A
// disk I/O error in the mapped part then stops the process rather than
// failing the query.
const readerMmapBytes = 0x7fff0000

// Open opens (creating it if needed) the database at path and applies the
// migrations not yet applied, in Version order.
func Open(ctx context.Context, path string, o Options, migrations []Migration) (*DB, error) {
	sync := "NORMAL"
	if o.Durable {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_txlock", "immediate")
	if o.WriterCacheKiB > 0 {
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", o.WriterCacheKiB))
	}
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	db := &DB{Path: path, W: w}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := db.migrate(ctx, migrations, logger); err != nil {
		w.Close()
		return nil, err
	}
	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout(10000)")
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", fmt.Sprintf("mmap_size(%d)", readerMmapBytes))
	if o.ReaderCacheKiB > 0 {
		rq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", o.ReaderCacheKiB))
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Keep every reader open: database/sql keeps two idle by default and
	// closes the others when they are put back, so under concurrent reads
	// connections were closed and opened all the time, each close freeing
	// the page cache that the next connection read again from the file,
	// and each open preparing its statements anew.
	readers := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	db.R, db.turns = r, make(chan struct{}, readers)
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err := db.W.Close()
	if db.R != nil {
		if rerr := db.R.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

func (db *DB) migrate(ctx context.Context, migrations []Migration, logger *slog.Logger) error {
	if _, err := db.W.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("migrate %s: %w", db.Path, err)
	}
	for _, m := range migrations {
		if err := db.apply(ctx, m, logger); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", db.Path, m.Version, err)
		}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, m Migration, logger *slog.Logger) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_version WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	// Some steps read a whole store (minutes for millions of messages): a
	// step still running after slowMigration is logged, so that a slow start
	// is not taken for a hung one.
	start := time.Now()
	slow := time.AfterFunc(slowMigration, func() {
		logger.Info("migrating database; this step reads the whole database and may take minutes",
			"path", db.Path, "version", m.Version)
	})
	_, err = tx.ExecContext(ctx, m.SQL)
	if !slow.Stop() && err == nil {
		logger.Info("migrated database", "path", db.Path, "version", m.Version, "took", time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, m.Version); err != nil {
		return err
	}
	return tx.Commit()
}

// slowMigration is how long a migration step runs before it is logged.
var slowMigration = 2 * time.Second
