package sqlite

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
		// About a second of work: counting far past the threshold.
		{2, `INSERT INTO a SELECT count(*) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT i FROM n)`},
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
