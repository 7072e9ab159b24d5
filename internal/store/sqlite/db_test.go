package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sightline/sightline/internal/store/sqlite"
)

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	migs := []sqlite.Migration{
		{1, `CREATE TABLE a (x INTEGER)`},
		{2, `INSERT INTO a VALUES (1)`},
	}
	for i := 0; i < 2; i++ {
		db, err := sqlite.Open(ctx, path, sqlite.Options{Durable: true}, migs)
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		var n int
		if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("after open #%d: rows = %d, want 1 (migration 2 applied once)", i, n)
		}
		if _, err := db.R.ExecContext(ctx, `INSERT INTO a VALUES (2)`); err == nil {
			t.Errorf("write through the read pool succeeded, want query_only refusal")
		}
		// Readers map the file: the first 2 GiB, as much as SQLite will.
		var mmap int64
		if err := db.R.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&mmap); err != nil || mmap != 0x7fff0000 {
			t.Errorf("readers' mmap_size = %d, %v; want %d", mmap, err, 0x7fff0000)
		}
		db.Close()
	}
}
