package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/registry"
)

//go:embed exchange.sql
var exchangeSchema string

//go:embed exchange_audit.sql
var exchangeAuditFields string

var exchangeMigrations = []Migration{{Version: 1, SQL: exchangeSchema}, {Version: 2, SQL: exchangeGeneration},
	{Version: 3, SQL: exchangeAuditFields}}

// exchangeGeneration keeps registry.Store.Generation: triggers move it in
// the transaction of every change that can stop a request being let through.
// A device's last_seen (TouchDevice) is not one.
const exchangeGeneration = `
CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO generation (id, n) VALUES (1, 1);
CREATE TRIGGER api_keys_update_generation AFTER UPDATE ON api_keys BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER api_keys_delete_generation AFTER DELETE ON api_keys BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER organisations_update_generation AFTER UPDATE ON organisations BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER organisations_delete_generation AFTER DELETE ON organisations BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER devices_update_generation AFTER UPDATE OF id, org_id, name, description, type, version, serial,
	connector_version, status, ip, credential_hash, token_id, created_at ON devices BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER devices_delete_generation AFTER DELETE ON devices BEGIN UPDATE generation SET n = n + 1; END;
`

// ExchangeStore is the exchange's registry.Store on SQLite.
type ExchangeStore struct {
	db *DB
	r  *stmtCache // reads, prepared once
}

var _ registry.Store = (*ExchangeStore)(nil)

// OpenExchange opens (creating it if needed) the exchange database at path.
// Its commits are fsynced: it holds credentials and token counts that must
// not go back.
func OpenExchange(ctx context.Context, path string) (*ExchangeStore, error) {
	db, err := Open(ctx, path, Options{Durable: true}, exchangeMigrations)
	if err != nil {
		return nil, err
	}
	return &ExchangeStore{db: db, r: newStmtCache(db.R)}, nil
}

// Close closes the database.
func (s *ExchangeStore) Close() error {
	s.r.Close()
	return s.db.Close()
}

func exUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func exTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// insert runs an INSERT … ON CONFLICT DO NOTHING and turns "nothing
// inserted" into a Conflict error with msg.
func (s *ExchangeStore) insert(ctx context.Context, msg, query string, args ...any) error {
	res, err := s.db.W.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	} else if n == 0 {
		return sightline.Errorf(sightline.Conflict, "%s: already exists", msg)
	}
	return nil
}

// change runs an UPDATE or DELETE and turns "no row" into a NotFound error
// with msg.
func (s *ExchangeStore) change(ctx context.Context, msg, query string, args ...any) error {
	res, err := s.db.W.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	} else if n == 0 {
		return sightline.Errorf(sightline.NotFound, "%s: not found", msg)
	}
	return nil
}

// one maps a single-row scan error: no row is NotFound with msg.
func exOne(err error, msg string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return sightline.Errorf(sightline.NotFound, "%s: not found", msg)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return nil
}

// list runs a query and scans every row with scan.
func exList[T any](ctx context.Context, db queryer, msg string, scan func(exScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", msg, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", msg, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", msg, err)
	}
	return out, nil
}

type exScanner interface{ Scan(dest ...any) error }

// Organisations.

const orgColumns = `id, name, threat_response, created_at`

func scanOrg(sc exScanner) (registry.Organisation, error) {
	var o registry.Organisation
	var created int64
	err := sc.Scan(&o.ID, &o.Name, &o.ThreatResponse, &created)
	o.CreatedAt = exTime(created)
	return o, err
}

func (s *ExchangeStore) CreateOrganisation(ctx context.Context, o registry.Organisation) error {
	return s.insert(ctx, fmt.Sprintf("create organisation %q", o.Name),
		`INSERT INTO organisations (`+orgColumns+`) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		o.ID, o.Name, o.ThreatResponse, exUnix(o.CreatedAt))
}

func (s *ExchangeStore) Organisation(ctx context.Context, id string) (registry.Organisation, error) {
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organisations WHERE id = ?`, id))
	return o, exOne(err, fmt.Sprintf("organisation %s", id))
}

func (s *ExchangeStore) OrganisationByName(ctx context.Context, name string) (registry.Organisation, error) {
	o, err := scanOrg(s.r.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM organisations WHERE name = ?`, name))
	return o, exOne(err, fmt.Sprintf("organisation %q", name))
}

func (s *ExchangeStore) Organisations(ctx context.Context) ([]registry.Organisation, error) {
	return exList(ctx, s.r, "list organisations", scanOrg,
		`SELECT `+orgColumns+` FROM organisations ORDER BY created_at, rowid`)
}

func (s *ExchangeStore) SetThreatResponse(ctx context.Context, orgID string, on bool) error {
	return s.change(ctx, fmt.Sprintf("organisation %s", orgID),
		`UPDATE organisations SET threat_response = ? WHERE id = ?`, on, orgID)
}

// Users.

func (s *ExchangeStore) CreateUser(ctx context.Context, u registry.User) error {
	return s.insert(ctx, fmt.Sprintf("create user %q", u.Name),
		`INSERT INTO users (name, org_id, password_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		u.Name, u.OrgID, u.PasswordHash, exUnix(u.CreatedAt))
}

func (s *ExchangeStore) User(ctx context.Context, name string) (registry.User, error) {
	u := registry.User{Name: name}
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT org_id, password_hash, created_at FROM users WHERE name = ?`, name).
		Scan(&u.OrgID, &u.PasswordHash, &created)
	u.CreatedAt = exTime(created)
	return u, exOne(err, fmt.Sprintf("user %q", name))
}

// API keys.

const keyColumns = `id, org_id, name, hash, created_at, created_by`

func scanKey(sc exScanner) (registry.APIKey, error) {
	var k registry.APIKey
	var created int64
	err := sc.Scan(&k.ID, &k.OrgID, &k.Name, &k.Hash, &created, &k.CreatedBy)
	k.CreatedAt = exTime(created)
	return k, err
}

func (s *ExchangeStore) CreateAPIKey(ctx context.Context, k registry.APIKey) error {
	return s.insert(ctx, fmt.Sprintf("create api key %q", k.Name),
		`INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.OrgID, k.Name, k.Hash, exUnix(k.CreatedAt), k.CreatedBy)
}

func (s *ExchangeStore) APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash))
	return k, exOne(err, "api key")
}

func (s *ExchangeStore) APIKeys(ctx context.Context, orgID string) ([]registry.APIKey, error) {
	return exList(ctx, s.r, "list api keys", scanKey,
		`SELECT `+keyColumns+` FROM api_keys WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
}

func (s *ExchangeStore) DeleteAPIKey(ctx context.Context, orgID, id string) error {
	return s.change(ctx, fmt.Sprintf("api key %s", id), `DELETE FROM api_keys WHERE org_id = ? AND id = ?`, orgID, id)
}

// Tokens.

const tokenColumns = `id, org_id, region, hash, devices, remaining, created_at, expires_at, revoked_at, created_by`

func scanToken(sc exScanner) (registry.Token, error) {
	var t registry.Token
	var created, expires, revoked int64
	err := sc.Scan(&t.ID, &t.OrgID, &t.Region, &t.Hash, &t.Devices, &t.Remaining, &created, &expires, &revoked, &t.CreatedBy)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = exTime(created), exTime(expires), exTime(revoked)
	return t, err
}

func (s *ExchangeStore) CreateToken(ctx context.Context, t registry.Token) error {
	return s.insert(ctx, "create token",
		`INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.ID, t.OrgID, t.Region, t.Hash, t.Devices, t.Remaining, exUnix(t.CreatedAt), exUnix(t.ExpiresAt), exUnix(t.RevokedAt), t.CreatedBy)
}

func (s *ExchangeStore) TokenByHash(ctx context.Context, hash string) (registry.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	return t, exOne(err, "token")
}

func (s *ExchangeStore) Tokens(ctx context.Context, orgID string) ([]registry.Token, error) {
	return exList(ctx, s.r, "list tokens", scanToken,
		`SELECT `+tokenColumns+` FROM tokens WHERE org_id = ? ORDER BY created_at DESC, rowid DESC`, orgID)
}

func (s *ExchangeStore) RevokeToken(ctx context.Context, orgID, id string, at time.Time) error {
	return s.change(ctx, fmt.Sprintf("token %s", id),
		`UPDATE tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE org_id = ? AND id = ?`,
		exUnix(at), orgID, id)
}

// Devices.

const deviceColumns = `id, org_id, name, description, type, version, serial, connector_version, status, ip,
	credential_hash, token_id, created_at, last_seen`

func scanDevice(sc exScanner) (registry.Device, error) {
	var d registry.Device
	var created, seen int64
	err := sc.Scan(&d.ID, &d.OrgID, &d.Name, &d.Description, &d.Type, &d.Version, &d.Serial, &d.ConnectorVersion,
		&d.Status, &d.IP, &d.CredentialHash, &d.TokenID, &created, &seen)
	d.CreatedAt, d.LastSeen = exTime(created), exTime(seen)
	return d, err
}

func (s *ExchangeStore) RegisterDevice(ctx context.Context, tokenID string, now time.Time, d registry.Device) error {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("register device: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE tokens SET remaining = remaining - 1
		WHERE id = ? AND org_id = ? AND remaining > 0 AND revoked_at = 0 AND expires_at > ?`, tokenID, d.OrgID, now.Unix())
	if err != nil {
		return fmt.Errorf("register device: use token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("register device: use token: %w", err)
	} else if n == 0 {
		return sightline.Errorf(sightline.Conflict, "token %s cannot register another device", tokenID)
	}
	res, err = tx.ExecContext(ctx, `INSERT INTO devices (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		d.ID, d.OrgID, d.Name, d.Description, d.Type, d.Version, d.Serial, d.ConnectorVersion, d.Status, d.IP,
		d.CredentialHash, tokenID, exUnix(d.CreatedAt), exUnix(d.LastSeen))
	if err != nil {
		return fmt.Errorf("register device: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("register device: %w", err)
	} else if n == 0 {
		return sightline.Errorf(sightline.Conflict, "device %s already exists", d.ID)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("register device: commit: %w", err)
	}
	return nil
}

func (s *ExchangeStore) Device(ctx context.Context, orgID, id string) (registry.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE org_id = ? AND id = ?`, orgID, id))
	return d, exOne(err, fmt.Sprintf("device %s", id))
}

func (s *ExchangeStore) DeviceByCredential(ctx context.Context, hash string) (registry.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE credential_hash = ?`, hash))
	return d, exOne(err, "device credential")
}

func (s *ExchangeStore) Devices(ctx context.Context, orgID string) ([]registry.Device, error) {
	return exList(ctx, s.r, "list devices", scanDevice,
		`SELECT `+deviceColumns+` FROM devices WHERE org_id = ? ORDER BY created_at, rowid`, orgID)
}

func (s *ExchangeStore) UpdateDevice(ctx context.Context, orgID, id, name, description string) error {
	return s.change(ctx, fmt.Sprintf("device %s", id),
		`UPDATE devices SET name = ?, description = ? WHERE org_id = ? AND id = ?`, name, description, orgID, id)
}

func (s *ExchangeStore) TouchDevice(ctx context.Context, id string, at time.Time) error {
	if _, err := s.db.W.ExecContext(ctx, `UPDATE devices SET last_seen = ? WHERE id = ?`, exUnix(at), id); err != nil {
		return fmt.Errorf("touch device %s: %w", id, err)
	}
	return nil
}

func (s *ExchangeStore) DeleteDevice(ctx context.Context, orgID, id string) error {
	return s.change(ctx, fmt.Sprintf("device %s", id), `DELETE FROM devices WHERE org_id = ? AND id = ?`, orgID, id)
}

// Audit.

const auditColumns = `id, org_id, time, actor, source, action, target, outcome, detail,
	reason, token_id, token_fingerprint, token_region, device_id, device_name, device_version, min_version`

func scanAudit(sc exScanner) (registry.AuditEntry, error) {
	var e registry.AuditEntry
	var t int64
	err := sc.Scan(&e.ID, &e.OrgID, &t, &e.Actor, &e.Source, &e.Action, &e.Target, &e.Outcome, &e.Detail,
		&e.Reason, &e.TokenID, &e.TokenFingerprint, &e.TokenRegion, &e.DeviceID, &e.DeviceName, &e.DeviceVersion, &e.MinVersion)
	e.Time = exTime(t)
	return e, err
}

func (s *ExchangeStore) AddAudit(ctx context.Context, e registry.AuditEntry) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO audit (org_id, time, actor, source, action, target, outcome, detail,
		reason, token_id, token_fingerprint, token_region, device_id, device_name, device_key, device_version, min_version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.OrgID, exUnix(e.Time), e.Actor, e.Source, e.Action, e.Target, e.Outcome, e.Detail,
		e.Reason, e.TokenID, e.TokenFingerprint, e.TokenRegion, e.DeviceID, e.DeviceName, registry.DeviceKey(e.DeviceName),
		e.DeviceVersion, e.MinVersion)
	if err != nil {
		return fmt.Errorf("add audit entry: %w", err)
	}
	return nil
}

// Audit reads the entries newest first along the index of their most
// selective filter: a branch of the query for each organisation, and for
// each column the device and the token filters may match, merged. A Since
// bound also bounds the ID: no entry at or after Since has an ID below the
// smallest of those that are, so each read stops there. That smallest ID
// is the min of id + 0, not of id, so that the planner finds it among the
// entries since Since by the (org_id, time) index, rather than walking the
// older entries in ID order until it meets one.
//
// The query's text depends on the filters given, so it is not kept in
// the store's cache of prepared statements.
func (s *ExchangeStore) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEntry, error) {
	q, err := q.Check()
	if err != nil {
		return nil, err
	}
	var parts []string
	var args []any
	for _, orgID := range q.OrgIDs {
		for _, conds := range auditBranches(q, orgID) {
			var where []string
			for _, c := range conds {
				where = append(where, c.sql)
				args = append(args, c.args...)
			}
			parts = append(parts, `SELECT `+auditColumns+` FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`)
			args = append(args, q.Limit)
		}
	}
	query := parts[0]
	if len(parts) > 1 {
		query = `SELECT * FROM (` + strings.Join(parts, `) UNION SELECT * FROM (`) + `) ORDER BY id DESC LIMIT ?`
		args = append(args, q.Limit)
	}
	return exList(ctx, s.db.R, "read audit log", scanAudit, query, args...)
}

// auditCond is a condition of the audit query and its arguments.
type auditCond struct {
	sql  string
	args []any
}

// auditBranches returns the conditions of each branch of the audit query
// on the entries of orgID. The device and the token filters each match
// one of two indexed columns; each branch tests one of them, so that it
// reads one index in ID order.
func auditBranches(q registry.AuditQuery, orgID string) [][]auditCond {
	common := []auditCond{{"org_id = ?", []any{orgID}}}
	if q.Before != 0 {
		common = append(common, auditCond{"id < ?", []any{q.Before}})
	}
	if !q.Since.IsZero() {
		since := q.Since.Unix()
		common = append(common, auditCond{"time >= ?", []any{since}},
			auditCond{"id >= (SELECT min(id + 0) FROM audit WHERE org_id = ? AND time >= ?)", []any{orgID, since}})
	}
	if q.Action != "" {
		common = append(common, auditCond{"action = ?", []any{q.Action}})
	}
	if q.Outcome != "" {
		common = append(common, auditCond{"outcome = ?", []any{q.Outcome}})
	}
	branches := [][]auditCond{common}
	either := func(a, b auditCond) {
		var out [][]auditCond
		for _, br := range branches {
			out = append(out, append(slices.Clip(br), a), append(slices.Clip(br), b))
		}
		branches = out
	}
	if q.Device != "" {
		either(auditCond{"device_id = ?", []any{q.Device}}, auditCond{"device_key = ?", []any{registry.DeviceKey(q.Device)}})
	}
	if q.Token != "" {
		either(auditCond{"token_id = ?", []any{q.Token}}, auditCond{"token_fingerprint = ?", []any{q.Token}})
	}
	return branches
}

// Generation implements registry.Store.
func (s *ExchangeStore) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT n FROM generation WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return n, nil
}

// Secrets.

func (s *ExchangeStore) Secret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	var v []byte
	err := s.db.W.QueryRowContext(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = value RETURNING value`, name, candidate).Scan(&v)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}
