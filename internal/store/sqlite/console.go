package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/console/module"
	"github.com/sightline/sightline/internal/console/records"
	"github.com/sightline/sightline/internal/ctim"
)

//go:embed console.sql
var consoleSchema string

var consoleMigrations = []Migration{
	{Version: 1, SQL: consoleSchema},
	{Version: 2, SQL: `CREATE TABLE console_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)`},
	{Version: 3, SQL: `CREATE TABLE console_module_types (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES console_organisations (id),
	title      TEXT NOT NULL,
	record     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	UNIQUE (org_id, title)
);
CREATE INDEX console_instances_type ON console_instances (org_id, type_id);`},
}

// ConsoleStore is the console's records.Store on SQLite.
type ConsoleStore struct {
	db *DB
	r  *stmtCache // the reads of every API call, prepared once
}

var _ records.Store = (*ConsoleStore)(nil)

// OpenConsole opens (creating it if needed) the console database at path.
// Its commits are fsynced: it holds clients, keys and analysts' work.
func OpenConsole(ctx context.Context, path string) (*ConsoleStore, error) {
	db, err := Open(ctx, path, Options{Durable: true}, consoleMigrations)
	if err != nil {
		return nil, err
	}
	return &ConsoleStore{db: db, r: newStmtCache(db.R)}, nil
}

// Close closes the database.
func (s *ConsoleStore) Close() error {
	s.r.Close()
	return s.db.Close()
}

// exec runs a write; with conflict, "nothing changed" is a Conflict error,
// otherwise a NotFound one, both naming what.
func (s *ConsoleStore) exec(ctx context.Context, conflict bool, what, query string, args ...any) error {
	return execOn(ctx, s.db.W, conflict, what, query, args...)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func execOn(ctx context.Context, db execer, conflict bool, what, query string, args ...any) error {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case n > 0:
		return nil
	case conflict:
		return sightline.Errorf(sightline.Conflict, "%s: already exists", what)
	}
	return sightline.Errorf(sightline.NotFound, "%s: not found", what)
}

const (
	inserted = true
	changed  = false
)

// Organisations.

const cOrgColumns = `id, name, exchange_key, created_at`

func scanConsoleOrg(sc exScanner) (records.Organisation, error) {
	var o records.Organisation
	var created int64
	err := sc.Scan(&o.ID, &o.Name, &o.ExchangeKey, &created)
	o.CreatedAt = exTime(created)
	return o, err
}

func (s *ConsoleStore) CreateOrganisation(ctx context.Context, o records.Organisation) error {
	return s.exec(ctx, inserted, fmt.Sprintf("create organisation %q", o.Name),
		`INSERT INTO console_organisations (`+cOrgColumns+`) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		o.ID, o.Name, o.ExchangeKey, exUnix(o.CreatedAt))
}

func (s *ConsoleStore) Organisation(ctx context.Context, id string) (records.Organisation, error) {
	o, err := scanConsoleOrg(s.r.QueryRowContext(ctx, `SELECT `+cOrgColumns+` FROM console_organisations WHERE id = ?`, id))
	return o, exOne(err, fmt.Sprintf("organisation %s", id))
}

func (s *ConsoleStore) OrganisationByName(ctx context.Context, name string) (records.Organisation, error) {
	o, err := scanConsoleOrg(s.db.R.QueryRowContext(ctx, `SELECT `+cOrgColumns+` FROM console_organisations WHERE name = ?`, name))
	return o, exOne(err, fmt.Sprintf("organisation %q", name))
}

func (s *ConsoleStore) Organisations(ctx context.Context) ([]records.Organisation, error) {
	return exList(ctx, s.db.R, "list organisations", scanConsoleOrg,
		`SELECT `+cOrgColumns+` FROM console_organisations ORDER BY name`)
}

func (s *ConsoleStore) SetExchangeKey(ctx context.Context, orgID, key string) error {
	return s.exec(ctx, changed, fmt.Sprintf("organisation %s", orgID),
		`UPDATE console_organisations SET exchange_key = ? WHERE id = ?`, key, orgID)
}

// Users.

const cUserColumns = `name, org_id, role, password_hash, created_at`

func scanConsoleUser(sc exScanner) (records.User, error) {
	var u records.User
	var created int64
	err := sc.Scan(&u.Name, &u.OrgID, &u.Role, &u.PasswordHash, &created)
	u.CreatedAt = exTime(created)
	return u, err
}

func (s *ConsoleStore) CreateUser(ctx context.Context, u records.User) error {
	return s.exec(ctx, inserted, fmt.Sprintf("create user %q", u.Name),
		`INSERT INTO console_users (`+cUserColumns+`) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		u.Name, u.OrgID, u.Role, u.PasswordHash, exUnix(u.CreatedAt))
}

func (s *ConsoleStore) User(ctx context.Context, name string) (records.User, error) {
	u, err := scanConsoleUser(s.db.R.QueryRowContext(ctx, `SELECT `+cUserColumns+` FROM console_users WHERE name = ?`, name))
	return u, exOne(err, fmt.Sprintf("user %q", name))
}

func (s *ConsoleStore) Users(ctx context.Context, orgID string) ([]records.User, error) {
	return exList(ctx, s.db.R, "list users", scanConsoleUser,
		`SELECT `+cUserColumns+` FROM console_users WHERE org_id = ? ORDER BY name`, orgID)
}

func (s *ConsoleStore) DeleteUser(ctx context.Context, orgID, name string) error {
	return s.exec(ctx, changed, fmt.Sprintf("user %q", name),
		`DELETE FROM console_users WHERE org_id = ? AND name = ?`, orgID, name)
}

func (s *ConsoleStore) SetUserPassword(ctx context.Context, orgID, name, hash string) error {
	return s.exec(ctx, changed, fmt.Sprintf("user %q", name),
		`UPDATE console_users SET password_hash = ? WHERE org_id = ? AND name = ?`, hash, orgID, name)
}

func (s *ConsoleStore) Secret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	var v []byte
	err := s.db.W.QueryRowContext(ctx, `INSERT INTO console_secrets (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = value RETURNING value`, name, candidate).Scan(&v)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// API clients.

const cClientColumns = `id, org_id, name, secret_hash, scopes, created_at, created_by`

func scanClient(sc exScanner) (records.Client, error) {
	var c records.Client
	var scopes string
	var created int64
	err := sc.Scan(&c.ID, &c.OrgID, &c.Name, &c.SecretHash, &scopes, &created, &c.CreatedBy)
	c.Scopes = strings.Fields(scopes)
	c.CreatedAt = exTime(created)
	return c, err
}

func (s *ConsoleStore) CreateClient(ctx context.Context, c records.Client) error {
	return s.exec(ctx, inserted, fmt.Sprintf("create client %q", c.Name),
		`INSERT INTO console_clients (`+cClientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.ID, c.OrgID, c.Name, c.SecretHash, strings.Join(c.Scopes, " "), exUnix(c.CreatedAt), c.CreatedBy)
}

func (s *ConsoleStore) Client(ctx context.Context, id string) (records.Client, error) {
	c, err := scanClient(s.r.QueryRowContext(ctx, `SELECT `+cClientColumns+` FROM console_clients WHERE id = ?`, id))
	return c, exOne(err, fmt.Sprintf("client %s", id))
}

func (s *ConsoleStore) Clients(ctx context.Context, orgID string) ([]records.Client, error) {
	return exList(ctx, s.db.R, "list clients", scanClient,
		`SELECT `+cClientColumns+` FROM console_clients WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
}

func (s *ConsoleStore) DeleteClient(ctx context.Context, orgID, id string) error {
	return s.exec(ctx, changed, fmt.Sprintf("client %s", id),
		`DELETE FROM console_clients WHERE org_id = ? AND id = ?`, orgID, id)
}

// Signing keys.

func (s *ConsoleStore) AddSigningKey(ctx context.Context, k records.SigningKey) error {
	return s.exec(ctx, inserted, fmt.Sprintf("add signing key %s", k.ID),
		`INSERT INTO console_signing_keys (id, private, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.Private, exUnix(k.CreatedAt))
}

func (s *ConsoleStore) SigningKeys(ctx context.Context, since time.Time) ([]records.SigningKey, error) {
	return exList(ctx, s.db.R, "list signing keys", func(sc exScanner) (records.SigningKey, error) {
		var k records.SigningKey
		var created int64
		err := sc.Scan(&k.ID, &k.Private, &created)
		k.CreatedAt = exTime(created)
		return k, err
	}, `SELECT id, private, created_at FROM console_signing_keys WHERE created_at >= ? ORDER BY created_at DESC, rowid DESC`,
		since.Unix())
}

func (s *ConsoleStore) DeleteSigningKeys(ctx context.Context, before time.Time) error {
	_, err := s.db.W.ExecContext(ctx, `DELETE FROM console_signing_keys WHERE created_at < ? AND rowid <>
		(SELECT rowid FROM console_signing_keys ORDER BY created_at DESC, rowid DESC LIMIT 1)`, before.Unix())
	if err != nil {
		return fmt.Errorf("delete signing keys: %w", err)
	}
	return nil
}

// Module instances.

const cInstanceColumns = `id, org_id, type_id, kind, name, enabled, settings, created_at, updated_at`

func scanInstance(sc exScanner) (records.Instance, error) {
	var in records.Instance
	var settings string
	var created, updated int64
	err := sc.Scan(&in.ID, &in.OrgID, &in.TypeID, &in.Kind, &in.Name, &in.Enabled, &settings, &created, &updated)
	in.Settings = []byte(settings)
	in.CreatedAt, in.UpdatedAt = exTime(created), exTime(updated)
	return in, err
}

func settingsText(in module.Instance) string {
	if len(in.Settings) == 0 {
		return "{}"
	}
	return string(in.Settings)
}

func (s *ConsoleStore) CreateInstance(ctx context.Context, in records.Instance) error {
	return s.exec(ctx, inserted, fmt.Sprintf("create module instance %q", in.Name),
		`INSERT INTO console_instances (`+cInstanceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		in.ID, in.OrgID, in.TypeID, in.Kind, in.Name, in.Enabled, settingsText(in.Instance), exUnix(in.CreatedAt), exUnix(in.UpdatedAt))
}

func (s *ConsoleStore) Instance(ctx context.Context, orgID, id string) (records.Instance, error) {
	in, err := scanInstance(s.db.R.QueryRowContext(ctx,
		`SELECT `+cInstanceColumns+` FROM console_instances WHERE org_id = ? AND id = ?`, orgID, id))
	return in, exOne(err, fmt.Sprintf("module instance %s", id))
}

func (s *ConsoleStore) Instances(ctx context.Context, orgID string) ([]records.Instance, error) {
	return exList(ctx, s.r, "list module instances", scanInstance,
		`SELECT `+cInstanceColumns+` FROM console_instances WHERE org_id = ? ORDER BY name, id`, orgID)
}

func (s *ConsoleStore) UpdateInstance(ctx context.Context, in records.Instance) error {
	return s.exec(ctx, changed, fmt.Sprintf("module instance %s", in.ID),
		`UPDATE console_instances SET name = ?, enabled = ?, settings = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
		in.Name, in.Enabled, settingsText(in.Instance), exUnix(in.UpdatedAt), in.OrgID, in.ID)
}

func (s *ConsoleStore) DeleteInstance(ctx context.Context, orgID, id string) error {
	return s.exec(ctx, changed, fmt.Sprintf("module instance %s", id),
		`DELETE FROM console_instances WHERE org_id = ? AND id = ?`, orgID, id)
}

// Module types.

const cTypeColumns = `id, org_id, title, record, created_at, created_by`

func scanModuleType(sc exScanner) (records.ModuleType, error) {
	var t records.ModuleType
	var record string
	var created int64
	err := sc.Scan(&t.ID, &t.OrgID, &t.Title, &record, &created, &t.CreatedBy)
	t.Record = []byte(record)
	t.CreatedAt = exTime(created)
	return t, err
}

func (s *ConsoleStore) CreateModuleType(ctx context.Context, t records.ModuleType) error {
	return s.exec(ctx, inserted, fmt.Sprintf("create module type %q", t.Title),
		`INSERT INTO console_module_types (`+cTypeColumns+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.ID, t.OrgID, t.Title, string(t.Record), exUnix(t.CreatedAt), t.CreatedBy)
}

func (s *ConsoleStore) ModuleType(ctx context.Context, orgID, id string) (records.ModuleType, error) {
	t, err := scanModuleType(s.db.R.QueryRowContext(ctx,
		`SELECT `+cTypeColumns+` FROM console_module_types WHERE org_id = ? AND id = ?`, orgID, id))
	return t, exOne(err, fmt.Sprintf("module type %s", id))
}

func (s *ConsoleStore) ModuleTypes(ctx context.Context, orgID string) ([]records.ModuleType, error) {
	return exList(ctx, s.db.R, "list module types", scanModuleType,
		`SELECT `+cTypeColumns+` FROM console_module_types WHERE org_id = ? ORDER BY title, id`, orgID)
}

func (s *ConsoleStore) DeleteModuleType(ctx context.Context, orgID, id string) error {
	what := fmt.Sprintf("module type %s", id)
	return s.tx(ctx, "delete "+what, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM console_instances WHERE org_id = ? AND type_id = ?`,
			orgID, id).Scan(&n); err != nil {
			return fmt.Errorf("delete %s: %w", what, err)
		}
		if n > 0 {
			return sightline.Errorf(sightline.Conflict, "%s has %d module instances", what, n)
		}
		return execOn(ctx, tx, changed, what, `DELETE FROM console_module_types WHERE org_id = ? AND id = ?`, orgID, id)
	})
}

// Stored intelligence.

func (s *ConsoleStore) CreateEntity(ctx context.Context, e records.Entity) error {
	what := fmt.Sprintf("create %s %s", e.Type, e.ID)
	return s.tx(ctx, what, func(tx *sql.Tx) error {
		if err := execOn(ctx, tx, inserted, what,
			`INSERT INTO console_entities (org_id, type, id, doc, version) VALUES (?, ?, ?, ?, 1) ON CONFLICT DO NOTHING`,
			e.OrgID, e.Type, e.ID, string(e.Doc)); err != nil {
			return err
		}
		return indexObservables(ctx, tx, e)
	})
}

func indexObservables(ctx context.Context, tx *sql.Tx, e records.Entity) error {
	for _, o := range e.Observables {
		if _, err := tx.ExecContext(ctx, `INSERT INTO console_entity_observables (org_id, type, id, obs_type, obs_value)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, e.OrgID, e.Type, e.ID, string(o.Type), o.Value); err != nil {
			return fmt.Errorf("index observable: %w", err)
		}
	}
	return nil
}

// tx runs fn in a write transaction.
func (s *ConsoleStore) tx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func scanEntity(sc exScanner) (records.Entity, error) {
	var e records.Entity
	var doc string
	err := sc.Scan(&e.OrgID, &e.Type, &e.ID, &doc, &e.Version)
	e.Doc = []byte(doc)
	return e, err
}

func (s *ConsoleStore) Entity(ctx context.Context, orgID, typ, id string) (records.Entity, error) {
	e, err := scanEntity(s.r.QueryRowContext(ctx,
		`SELECT org_id, type, id, doc, version FROM console_entities WHERE org_id = ? AND type = ? AND id = ?`, orgID, typ, id))
	if err != nil {
		return e, exOne(err, fmt.Sprintf("%s %s", typ, id))
	}
	e.Observables, err = exList(ctx, s.r, "entity observables", func(sc exScanner) (ctim.Observable, error) {
		var o ctim.Observable
		err := sc.Scan(&o.Type, &o.Value)
		return o, err
	}, `SELECT obs_type, obs_value FROM console_entity_observables WHERE org_id = ? AND type = ? AND id = ? ORDER BY rowid`,
		orgID, typ, id)
	return e, err
}

func (s *ConsoleStore) UpdateEntity(ctx context.Context, e records.Entity) error {
	what := fmt.Sprintf("%s %s", e.Type, e.ID)
	return s.tx(ctx, "update "+what, func(tx *sql.Tx) error {
		var version int
		err := tx.QueryRowContext(ctx, `SELECT version FROM console_entities WHERE org_id = ? AND type = ? AND id = ?`,
			e.OrgID, e.Type, e.ID).Scan(&version)
		if err := exOne(err, what); err != nil {
			return err
		}
		if version != e.Version {
			return sightline.Errorf(sightline.Conflict, "%s was changed by someone else (version %d, not %d)", what, version, e.Version)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE console_entities SET doc = ?, version = version + 1
			WHERE org_id = ? AND type = ? AND id = ?`, string(e.Doc), e.OrgID, e.Type, e.ID); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_entity_observables WHERE org_id = ? AND type = ? AND id = ?`,
			e.OrgID, e.Type, e.ID); err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
		return indexObservables(ctx, tx, e)
	})
}

func (s *ConsoleStore) DeleteEntity(ctx context.Context, orgID, typ, id string) error {
	return s.exec(ctx, changed, fmt.Sprintf("%s %s", typ, id),
		`DELETE FROM console_entities WHERE org_id = ? AND type = ? AND id = ?`, orgID, typ, id)
}

func (s *ConsoleStore) Entities(ctx context.Context, orgID, typ string, obs *ctim.Observable) ([]records.Entity, error) {
	if obs == nil {
		return exList(ctx, s.r, "list "+typ, scanEntity,
			`SELECT org_id, type, id, doc, version FROM console_entities WHERE org_id = ? AND type = ? ORDER BY rowid`, orgID, typ)
	}
	return exList(ctx, s.r, "list "+typ, scanEntity,
		`SELECT e.org_id, e.type, e.id, e.doc, e.version FROM console_entities e
		 JOIN console_entity_observables o ON o.org_id = e.org_id AND o.type = e.type AND o.id = e.id
		 WHERE e.org_id = ? AND e.type = ? AND o.obs_type = ? AND o.obs_value = ? ORDER BY e.rowid`,
		orgID, typ, string(obs.Type), obs.Value)
}
