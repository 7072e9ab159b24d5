package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"), Options{}, []Migration{{Version: 1, SQL: `CREATE TABLE t (n INTEGER)`}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
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
