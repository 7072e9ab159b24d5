package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sightline/sightline"
)

// GatewayStore keeps a gateway's own state: identifier counters, users, and
// the configuration with its pending changes and commit history.
type GatewayStore struct {
	db *DB
}

var gatewayMigrations = []Migration{{Version: 1, SQL: `
CREATE TABLE counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE config_commits (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	committed_at INTEGER NOT NULL,
	user        TEXT NOT NULL,
	comment     TEXT NOT NULL,
	config      TEXT NOT NULL
);
CREATE TABLE config_pending (
	user       TEXT PRIMARY KEY,
	config     TEXT NOT NULL,
	updated_at INTEGER NOT NULL
);
`}}

// OpenGateway opens the gateway database at path. Its commits are fsynced:
// it is small and holds what must never go back (identifier counters).
func OpenGateway(ctx context.Context, path string) (*GatewayStore, error) {
	db, err := Open(ctx, path, Options{Durable: true}, gatewayMigrations)
	if err != nil {
		return nil, err
	}
	return &GatewayStore{db: db}, nil
}

// Close closes the database.
func (s *GatewayStore) Close() error { return s.db.Close() }

// Reserve durably reserves n values of the named counter, starting at 1.
func (s *GatewayStore) Reserve(ctx context.Context, name string, n int64) (int64, error) {
	var first int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO counters (name, next) VALUES (?, 1 + ?)
			ON CONFLICT (name) DO UPDATE SET next = next + ? RETURNING next - ?`, name, n, n, n).Scan(&first)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reserve counter %s: %w", name, err)
	}
	return first, nil
}

// Setting returns a named value, and whether it exists.
func (s *GatewayStore) Setting(ctx context.Context, name string) (string, bool, error) {
	var v string
	err := s.db.R.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", name, err)
	}
	return v, true, nil
}

// SetSetting stores a named value.
func (s *GatewayStore) SetSetting(ctx context.Context, name, value string) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	if err != nil {
		return fmt.Errorf("write setting %s: %w", name, err)
	}
	return nil
}

// User is a stored account.
type User struct {
	Name         string
	PasswordHash string
	Role         string
	CreatedAt    time.Time
}

// User returns the named user, or a NotFound error.
func (s *GatewayStore) User(ctx context.Context, name string) (*User, error) {
	u := &User{Name: name}
	var created int64
	err := s.db.R.QueryRowContext(ctx, `SELECT password_hash, role, created_at FROM users WHERE name = ?`, name).
		Scan(&u.PasswordHash, &u.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sightline.Errorf(sightline.NotFound, "no user %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read user %s: %w", name, err)
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	return u, nil
}

// Users lists all users by name.
func (s *GatewayStore) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT name, password_hash, role, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		var u User
		var created int64
		if err := rows.Scan(&u.Name, &u.PasswordHash, &u.Role, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.CreatedAt = time.Unix(created, 0).UTC()
		us = append(us, u)
	}
	return us, rows.Err()
}

// CreateUser adds a user; a Conflict error if the name is taken.
func (s *GatewayStore) CreateUser(ctx context.Context, u User) error {
	res, err := s.db.W.ExecContext(ctx, `INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, u.Name, u.PasswordHash, u.Role, u.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sightline.Errorf(sightline.Conflict, "user %q already exists", u.Name)
	}
	return nil
}

// SetPassword replaces a user's password hash.
func (s *GatewayStore) SetPassword(ctx context.Context, name, hash string) error {
	res, err := s.db.W.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE name = ?`, hash, name)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sightline.Errorf(sightline.NotFound, "no user %q", name)
	}
	return nil
}

// DeleteUser removes a user, or answers NotFound.
func (s *GatewayStore) DeleteUser(ctx context.Context, name string) error {
	res, err := s.db.W.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sightline.Errorf(sightline.NotFound, "no user %q", name)
	}
	return nil
}

// Commit is one entry of the configuration history.
type Commit struct {
	ID          int64
	CommittedAt time.Time
	User        string
	Comment     string
	Config      []byte // the whole configuration as JSON
}

// Running returns the latest commit, or NotFound before the first one.
func (s *GatewayStore) Running(ctx context.Context) (*Commit, error) {
	return s.commit(ctx, s.db.R, `ORDER BY id DESC LIMIT 1`)
}

// CommitByID returns one commit of the history, or NotFound.
func (s *GatewayStore) CommitByID(ctx context.Context, id int64) (*Commit, error) {
	return s.commit(ctx, s.db.R, `WHERE id = ?`, id)
}

func (s *GatewayStore) commit(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, where string, args ...any) (*Commit, error) {
	var c Commit
	var at int64
	var cfg string
	err := q.QueryRowContext(ctx, `SELECT id, committed_at, user, comment, config FROM config_commits `+where, args...).
		Scan(&c.ID, &at, &c.User, &c.Comment, &cfg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sightline.Errorf(sightline.NotFound, "no such configuration commit")
	}
	if err != nil {
		return nil, fmt.Errorf("read configuration commit: %w", err)
	}
	c.CommittedAt = time.UnixMilli(at).UTC()
	c.Config = []byte(cfg)
	return &c, nil
}

// History lists the newest limit commits, newest first, without their configs.
func (s *GatewayStore) History(ctx context.Context, limit int) ([]Commit, error) {
	rows, err := s.db.R.QueryContext(ctx, `SELECT id, committed_at, user, comment FROM config_commits ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list configuration history: %w", err)
	}
	defer rows.Close()
	var cs []Commit
	for rows.Next() {
		var c Commit
		var at int64
		if err := rows.Scan(&c.ID, &at, &c.User, &c.Comment); err != nil {
			return nil, fmt.Errorf("list configuration history: %w", err)
		}
		c.CommittedAt = time.UnixMilli(at).UTC()
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

// Pending returns a user's staged configuration, and whether there is one.
func (s *GatewayStore) Pending(ctx context.Context, user string) ([]byte, bool, error) {
	var cfg string
	err := s.db.R.QueryRowContext(ctx, `SELECT config FROM config_pending WHERE user = ?`, user).Scan(&cfg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read pending configuration: %w", err)
	}
	return []byte(cfg), true, nil
}

// SetPending stages a user's configuration.
func (s *GatewayStore) SetPending(ctx context.Context, user string, config []byte) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO config_pending (user, config, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (user) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at`,
		user, string(config), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("stage configuration: %w", err)
	}
	return nil
}

// ClearPending drops a user's staged configuration and reports whether there was one.
func (s *GatewayStore) ClearPending(ctx context.Context, user string) (bool, error) {
	res, err := s.db.W.ExecContext(ctx, `DELETE FROM config_pending WHERE user = ?`, user)
	if err != nil {
		return false, fmt.Errorf("clear pending configuration: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AppendCommit records a new running configuration and, in the same
// transaction, drops the committing user's pending copy. It keeps the newest
// keep commits (0 keeps all).
func (s *GatewayStore) AppendCommit(ctx context.Context, c Commit, keep int) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO config_commits (committed_at, user, comment, config) VALUES (?, ?, ?, ?) RETURNING id`,
			c.CommittedAt.UnixMilli(), c.User, c.Comment, string(c.Config)).Scan(&id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM config_pending WHERE user = ?`, c.User); err != nil {
			return err
		}
		if keep > 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM config_commits WHERE id <= ? - ?`, id, keep)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("commit configuration: %w", err)
	}
	return id, nil
}

func (s *GatewayStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
