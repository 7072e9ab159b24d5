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
