package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openTableT opens a database of one table, t (n INTEGER), closed when
// the test ends.
func openTableT(ctx context.Context, t *testing.T) *DB {
	t.Helper()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"), Options{}, []Migration{{Version: 1, SQL: `CREATE TABLE t (n INTEGER)`}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db := openTableT(ctx, t)
	c := newStmtCache(db.R)

	// More distinct queries than the cache holds: all answer, the cache
	// stops growing at its bound.
	for i := range maxCachedStmts + 10 {
		var n int
		if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT %d", i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d = %d, %v", i, n, err)
		}
	}
	if len(c.stmts) != maxCachedStmts {
		t.Errorf("cache holds %d statements, want %d", len(c.stmts), maxCachedStmts)
	}
	// A query that cannot be prepared reports its error.
	if _, err := c.QueryContext(ctx, "SELECT * FROM missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("query of a missing table = %v, want its error", err)
	}
	if err := c.QueryRowContext(ctx, "SELECT nothing FROM missing").Scan(new(int)); err == nil {
		t.Error("row of a missing table: no error")
	}
	if err := c.Close(); err != nil || len(c.stmts) != 0 {
		t.Errorf("Close() = %v, %d statements left", err, len(c.stmts))
	}
}

// TestCachedTxNeverWaitsForAConnection runs a transaction on the writer pool
// (one connection) through a cold cache: the query runs unprepared at once
// instead of waiting for the connection the transaction holds, and is
// prepared once the transaction ends.
func TestCachedTxNeverWaitsForAConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := openTableT(ctx, t)
	c := newStmtCache(db.W)
	defer c.Close()
	const insert = `INSERT INTO t (n) VALUES (?)`
	for i := range 2 {
		tx, err := db.W.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (cachedTx{Tx: tx, stmts: c}).ExecContext(ctx, insert, i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the background preparation got the connection back
			for c.cached(insert) == nil {
				if ctx.Err() != nil {
					t.Fatal("the statement was never prepared")
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	var n int
	if err := db.W.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows = %d, %v; want 2", n, err)
	}
}

// TestStmtCacheCloseWaitsForBackground closes a cache while a statement is
// being prepared in the background, waiting for the writer's only
// connection: Close returns once that preparation is done, so that the pool
// then closes with no connection in use (before, the connection was closed
// later, and the database's files changed after its store was closed).
func TestStmtCacheCloseWaitsForBackground(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db := openTableT(ctx, t)
	held, err := db.W.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(db.W)
	if c.cached(`SELECT n FROM t`) != nil {
		t.Fatal("prepared without a connection")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a statement was being prepared in the background")
	case <-time.After(50 * time.Millisecond):
	}
	held.Close()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close never returned")
	}
	if n := db.W.Stats().InUse; n != 0 {
		t.Errorf("%d connections in use after Close", n)
	}
	if len(c.stmts) != 0 {
		t.Errorf("%d statements kept after Close", len(c.stmts))
	}
}
