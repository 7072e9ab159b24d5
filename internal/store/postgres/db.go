// Package postgres implements Sightline's storage contracts on PostgreSQL
// (pgx), for roles that run several replicas over one shared database.
//
// Each area (the exchange today, the console and the manager later) lives in
// its own file of this package with its own embedded schema, applied by Open.
// Areas that share a database must not share table names: give each role its
// own database, or its own schema through search_path in the DSN.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sightline/sightline"
)

// DB is a pool of connections to one PostgreSQL database, safe for
// concurrent use.
type DB struct {
	Pool *pgxpool.Pool
}

// Migration is one schema step, applied once in its own transaction.
type Migration struct {
	Version int
	SQL     string // one or more statements, without parameters
}

// migrateLock is the key of the transaction-scoped advisory lock every
// migration step holds, so replicas starting at once apply each step once.
const migrateLock = 0x5369676874 // "Sight"

// Open connects to the database named by dsn (a postgres:// URL or a
// "key=value" string; pgxpool settings such as pool_max_conns and run-time
// parameters such as search_path are accepted) and applies the migrations of
// area not yet applied, in Version order, each in its own transaction under
// an advisory lock. Applied versions are recorded per area in the table
// schema_migrations. Open refuses a database whose area has a version newer
// than the last of migrations, written by a newer Sightline.
//
// An unreachable server is an Unavailable *sightline.Error.
func Open(ctx context.Context, dsn, area string, migrations []Migration) (*DB, error) {
	if area == "" {
		return nil, errors.New("postgres: open: empty area")
	}
	for i, m := range migrations {
		if m.Version <= 0 || (i > 0 && m.Version <= migrations[i-1].Version) {
			return nil, fmt.Errorf("postgres: open %s: migration versions must increase from 1, got %d at %d", area, m.Version, i)
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, sightline.Wrap(sightline.Invalid, err, "postgres: invalid DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, dbErr(fmt.Sprintf("postgres: connect to %s", where(cfg)), err)
	}
	db := &DB{Pool: pool}
	if err := db.migrate(ctx, area, migrations); err != nil {
		pool.Close()
		msg := fmt.Sprintf("postgres: migrate %s on %s", area, where(cfg))
		if kindOf(err) == sightline.Unavailable {
			return nil, dbErr(msg, err)
		}
		return nil, fmt.Errorf("%s: %w", msg, err)
	}
	return db, nil
}

// where names the server and database of cfg, without credentials.
func where(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// Close closes every connection of the pool, waiting for those in use.
func (db *DB) Close() { db.Pool.Close() }

func (db *DB) migrate(ctx context.Context, area string, migrations []Migration) error {
	latest := 0
	if len(migrations) > 0 {
		latest = migrations[len(migrations)-1].Version
	}
	err := db.locked(ctx, func(tx pgx.Tx) error {
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations WHERE area = $1`, area).Scan(&have); err != nil {
			return err
		}
		if have > latest {
			return fmt.Errorf("database is at version %d, newer than this program's %d", have, latest)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range migrations {
		err := db.locked(ctx, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE area = $1 AND version = $2)`,
				area, m.Version).Scan(&done); err != nil || done {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (area, version) VALUES ($1, $2)`, area, m.Version)
			return err
		})
		if err != nil {
			return fmt.Errorf("version %d: %w", m.Version, err)
		}
	}
	return nil
}

// locked runs fn in a transaction that holds the migration lock and in which
// schema_migrations exists, and commits it if fn succeeds.
func (db *DB) locked(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		// Looked up before creating, so a role without CREATE on the schema
		// can run a program whose migrations are all applied.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (
				area       text NOT NULL,
				version    integer NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now(),
				PRIMARY KEY (area, version))`); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// PostgreSQL error codes dbErr classifies (Appendix A of its manual).
var codeKinds = map[string]sightline.Kind{
	"23505": sightline.Conflict,    // unique_violation
	"23503": sightline.NotFound,    // foreign_key_violation: what it refers to is missing
	"23502": sightline.Invalid,     // not_null_violation
	"23514": sightline.Invalid,     // check_violation
	"22001": sightline.Invalid,     // string_data_right_truncation
	"40001": sightline.Unavailable, // serialization_failure: retry
	"40P01": sightline.Unavailable, // deadlock_detected: retry
	"55P03": sightline.Unavailable, // lock_not_available
	"53300": sightline.Unavailable, // too_many_connections
	"57P01": sightline.Unavailable, // admin_shutdown
	"57P02": sightline.Unavailable, // crash_shutdown
	"57P03": sightline.Unavailable, // cannot_connect_now
}

// kindTexts are the user-safe explanations appended to the message of a
// classified error.
var kindTexts = map[sightline.Kind]string{
	sightline.Conflict:    "already exists",
	sightline.NotFound:    "refers to a record that does not exist",
	sightline.Invalid:     "breaks a rule of the database",
	sightline.Unavailable: "database unavailable, retry later",
}

// dbErr wraps err with the context msg. Errors the caller can act on become
// a *sightline.Error that shows msg and a short reason: a unique violation is
// a Conflict, a missing referenced record NotFound, a broken constraint
// Invalid, a failed connection or a transient failure (deadlock,
// serialization, shutdown) Unavailable. Anything else, cancellation
// included, is wrapped as is.
func dbErr(msg string, err error) error {
	if err == nil {
		return nil
	}
	kind := kindOf(err)
	if kind == "" {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return sightline.Wrap(kind, err, msg+": "+kindTexts[kind])
}

// kindOf classifies err for dbErr; "" means unclassified.
func kindOf(err error) sightline.Kind {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &pgErr):
		if k := codeKinds[pgErr.Code]; k != "" {
			return k
		}
		if strings.HasPrefix(pgErr.Code, "08") { // connection_exception class
			return sightline.Unavailable
		}
	case errors.As(err, &connErr):
		return sightline.Unavailable
	}
	return ""
}

// one maps the error of a single-row query: no row is NotFound with msg.
func one(msg string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return sightline.Errorf(sightline.NotFound, "%s: not found", msg)
	}
	return dbErr(msg, err)
}

// scanner is a row to scan: pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// list runs query on db and scans every row with scan; no row is a nil slice.
func list[T any](ctx context.Context, db *DB, msg string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Pool.Query(ctx, query, args...)
	if err != nil {
		return nil, dbErr(msg, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbErr(msg, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(msg, err)
	}
	return out, nil
}
