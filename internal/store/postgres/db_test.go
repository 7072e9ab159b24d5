package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sightline/sightline"
)

// testDSN returns the DSN of the test server from SIGHTLINE_TEST_POSTGRES. When
// it is unset the test is skipped, unless CI=true, where it fails.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("SIGHTLINE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SIGHTLINE_TEST_POSTGRES is not set: CI needs the DSN of a PostgreSQL server")
		}
		t.Skip("SIGHTLINE_TEST_POSTGRES is not set: no PostgreSQL to test against")
	}
	return dsn
}

// freshSchema creates an empty schema t_<random> on the test server, dropped
// at cleanup, and returns a DSN whose search_path is that schema.
func freshSchema(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	ctx := context.Background()
	b := make([]byte, 8)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)

	admin := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := admin("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := admin("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withParam(t, dsn, "search_path", schema)
}

// withParam adds key=value to a URL or keyword/value DSN.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " " + key + "=" + value
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("SIGHTLINE_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func mustOpen(t *testing.T, dsn, area string, migrations []Migration) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, area, migrations)
	if err != nil {
		t.Fatalf("Open(%s): %v", area, err)
	}
	t.Cleanup(db.Close)
	return db
}

// versions returns the versions of area recorded in schema_migrations.
func versions(t *testing.T, db *DB, area string) []int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT version FROM schema_migrations WHERE area = $1 ORDER BY version`, area)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return v
}

var testMigrations = []Migration{
	{Version: 1, SQL: `CREATE TABLE things (id integer PRIMARY KEY); INSERT INTO things VALUES (1);`},
	{Version: 2, SQL: `ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT ''; INSERT INTO things VALUES (2, 'two');`},
}

func TestOpenMigratesOnce(t *testing.T) {
	dsn := freshSchema(t)
	ctx := context.Background()

	// Replicas starting at once: every Open succeeds and each step runs once
	// (a second run of a step would fail on the duplicate key).
	const replicas = 8
	dbs := make([]*DB, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { dbs[i], errs[i] = Open(ctx, dsn, "things", testMigrations) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open = %v", i, err)
		}
		t.Cleanup(dbs[i].Close)
	}
	if got := fmt.Sprint(versions(t, dbs[0], "things")); got != "[1 2]" {
		t.Errorf("schema_migrations versions = %s, want [1 2]", got)
	}
	var n int
	if err := dbs[0].Pool.QueryRow(ctx, `SELECT count(*) FROM things`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows in things = %d, %v; want 2 (each migration applied once)", n, err)
	}

	// Another area in the same schema keeps its own versions.
	other := mustOpen(t, dsn, "others", []Migration{{Version: 1, SQL: `CREATE TABLE others (id integer)`}})
	if got := fmt.Sprint(versions(t, other, "others")); got != "[1]" {
		t.Errorf("schema_migrations versions of others = %s, want [1]", got)
	}

	// An older program refuses the newer schema.
	_, err := Open(ctx, dsn, "things", testMigrations[:1])
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open with only version 1 of a version 2 database = %v, want a newer-version error", err)
	}
}

func TestOpenFailedMigrationRollsBack(t *testing.T) {
	dsn := freshSchema(t)
	bad := []Migration{
		{Version: 1, SQL: `CREATE TABLE a (id integer)`},
		{Version: 2, SQL: `CREATE TABLE b (id integer); SELECT no_such_function()`},
	}
	_, err := Open(context.Background(), dsn, "bad", bad)
	if err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("Open with a failing version 2 = %v, want an error naming version 2", err)
	}
	db := mustOpen(t, dsn, "bad", bad[:1])
	if got := fmt.Sprint(versions(t, db, "bad")); got != "[1]" {
		t.Errorf("versions after a failed step = %s, want [1]", got)
	}
	var exists bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT to_regclass('b') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("table b of the failed step exists = %v, %v; want false", exists, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()

	tests := []struct {
		name       string
		dsn        string
		area       string
		migrations []Migration
		want       sightline.Kind
	}{
		{"bad DSN", "postgres://u:secret@[::1", "x", nil, sightline.Invalid},
		{"no server", "postgres://postgres:secret@" + closed + "/test?sslmode=disable&connect_timeout=5", "x", nil, sightline.Unavailable},
		{"no area", "postgres://127.0.0.1/test", "", nil, sightline.Internal},
		{"versions out of order", "postgres://127.0.0.1/test", "x", []Migration{{Version: 2}, {Version: 1}}, sightline.Internal},
		{"version zero", "postgres://127.0.0.1/test", "x", []Migration{{Version: 0}}, sightline.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(context.Background(), tt.dsn, tt.area, tt.migrations)
			if err == nil {
				db.Close()
			}
			if got := sightline.ErrorKind(err); got != tt.want {
				t.Errorf("Open(%q) = %v, want a %s error", tt.dsn, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%q) error %q shows the password", tt.dsn, err)
			}
		})
	}
}

func TestDBErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want sightline.Kind
		msg  string // user-safe message
	}{
		{"unique", &pgconn.PgError{Code: "23505"}, sightline.Conflict, "create x: already exists"},
		{"foreign key", &pgconn.PgError{Code: "23503"}, sightline.NotFound, "create x: refers to a record that does not exist"},
		{"not null", &pgconn.PgError{Code: "23502"}, sightline.Invalid, "create x: breaks a rule of the database"},
		{"check", &pgconn.PgError{Code: "23514"}, sightline.Invalid, "create x: breaks a rule of the database"},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, sightline.Unavailable, "create x: database unavailable, retry later"},
		{"serialization", &pgconn.PgError{Code: "40001"}, sightline.Unavailable, "create x: database unavailable, retry later"},
		{"shutdown", &pgconn.PgError{Code: "57P01"}, sightline.Unavailable, "create x: database unavailable, retry later"},
		{"connection class", &pgconn.PgError{Code: "08006"}, sightline.Unavailable, "create x: database unavailable, retry later"},
		{"wrapped", fmt.Errorf("tx: %w", &pgconn.PgError{Code: "23505"}), sightline.Conflict, "create x: already exists"},
		{"syntax", &pgconn.PgError{Code: "42601"}, sightline.Internal, "internal error"},
		{"canceled", context.Canceled, sightline.Internal, "internal error"},
		{"other", errors.New("boom"), sightline.Internal, "internal error"},
		{"nil", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dbErr("create x", tt.err)
			if got := sightline.ErrorKind(err); got != tt.want {
				t.Errorf("dbErr(%v) kind = %q, want %q", tt.err, got, tt.want)
			}
			if got := sightline.ErrorMessage(err); got != tt.msg {
				t.Errorf("dbErr(%v) message = %q, want %q", tt.err, got, tt.msg)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("dbErr(%v) = %v, does not wrap its cause", tt.err, err)
			}
		})
	}
}
