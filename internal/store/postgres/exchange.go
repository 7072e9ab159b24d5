package postgres

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/exchange/registry"
)

//go:embed exchange.sql
var exchangeSchema string

//go:embed exchange_audit.sql
var exchangeAuditFields string

var exchangeMigrations = []Migration{{Version: 1, SQL: exchangeSchema}, {Version: 2, SQL: exchangeGeneration},
	{Version: 3, SQL: exchangeAuditFields}}

// exchangeGeneration keeps registry.Store.Generation: statement triggers
// move it in the transaction of every change that can stop a request being
// let through, for every replica at once. A device's last_seen
// (TouchDevice) is not one.
const exchangeGeneration = `
CREATE TABLE generation (id integer PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
INSERT INTO generation (id, n) VALUES (1, 1);
CREATE FUNCTION exchange_next_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE generation SET n = n + 1 WHERE id = 1;
	RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_generation AFTER UPDATE OR DELETE ON api_keys
	FOR EACH STATEMENT EXECUTE FUNCTION exchange_next_generation();
CREATE TRIGGER organisations_generation AFTER UPDATE OR DELETE ON organisations
	FOR EACH STATEMENT EXECUTE FUNCTION exchange_next_generation();
CREATE TRIGGER devices_generation AFTER UPDATE OF id, org_id, name, description, type, version, serial,
	connector_version, status, ip, credential_hash, token_id, created_at OR DELETE ON devices
	FOR EACH STATEMENT EXECUTE FUNCTION exchange_next_generation();
`

// ExchangeStore is the exchange's registry.Store on PostgreSQL; several
// exchange replicas may share one.
type ExchangeStore struct {
	db *DB
}

var _ registry.Store = (*ExchangeStore)(nil)

// OpenExchange connects to the exchange database named by dsn (see Open) and
// brings its schema up to date. Each region is its own exchange: give each
// its own database or schema (search_path=… in the DSN).
func OpenExchange(ctx context.Context, dsn string) (*ExchangeStore, error) {
	db, err := Open(ctx, dsn, "exchange", exchangeMigrations)
	if err != nil {
		return nil, err
	}
	return &ExchangeStore{db: db}, nil
}

// Close closes the connection pool. It always returns nil; it has an error
// result to be an io.Closer like the SQLite store.
func (s *ExchangeStore) Close() error {
	s.db.Close()
	return nil
}

// orNull returns nil (SQL NULL) for the zero time, so optional times read
// back as zero.
func orNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// utc returns *p in UTC, or the zero time for NULL.
func utc(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// exec runs an INSERT, UPDATE or DELETE. With mustChange, no row affected is
// a NotFound error with msg.
func (s *ExchangeStore) exec(ctx context.Context, mustChange bool, msg, query string, args ...any) error {
	tag, err := s.db.Pool.Exec(ctx, query, args...)
	if err != nil {
		return dbErr(msg, err)
	}
	if mustChange && tag.RowsAffected() == 0 {
		return sightline.Errorf(sightline.NotFound, "%s: not found", msg)
	}
	return nil
}

// Organisations.

const orgColumns = `id, name, threat_response, created_at`

func scanOrg(sc scanner) (registry.Organisation, error) {
	var o registry.Organisation
	err := sc.Scan(&o.ID, &o.Name, &o.ThreatResponse, &o.CreatedAt)
	o.CreatedAt = o.CreatedAt.UTC()
	return o, err
}

func (s *ExchangeStore) CreateOrganisation(ctx context.Context, o registry.Organisation) error {
	return s.exec(ctx, false, fmt.Sprintf("create organisation %q", o.Name),
		`INSERT INTO organisations (`+orgColumns+`) VALUES ($1, $2, $3, $4)`,
		o.ID, o.Name, o.ThreatResponse, o.CreatedAt)
}

func (s *ExchangeStore) Organisation(ctx context.Context, id string) (registry.Organisation, error) {
	o, err := scanOrg(s.db.Pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organisations WHERE id = $1`, id))
	return o, one(fmt.Sprintf("organisation %s", id), err)
}

func (s *ExchangeStore) OrganisationByName(ctx context.Context, name string) (registry.Organisation, error) {
	o, err := scanOrg(s.db.Pool.QueryRow(ctx, `SELECT `+orgColumns+` FROM organisations WHERE name = $1`, name))
	return o, one(fmt.Sprintf("organisation %q", name), err)
}

func (s *ExchangeStore) Organisations(ctx context.Context) ([]registry.Organisation, error) {
	return list(ctx, s.db, "list organisations", scanOrg,
		`SELECT `+orgColumns+` FROM organisations ORDER BY created_at, seq`)
}

func (s *ExchangeStore) SetThreatResponse(ctx context.Context, orgID string, on bool) error {
	return s.exec(ctx, true, fmt.Sprintf("organisation %s", orgID),
		`UPDATE organisations SET threat_response = $1 WHERE id = $2`, on, orgID)
}

// Users.

func (s *ExchangeStore) CreateUser(ctx context.Context, u registry.User) error {
	return s.exec(ctx, false, fmt.Sprintf("create user %q", u.Name),
		`INSERT INTO users (name, org_id, password_hash, created_at) VALUES ($1, $2, $3, $4)`,
		u.Name, u.OrgID, u.PasswordHash, u.CreatedAt)
}

func (s *ExchangeStore) User(ctx context.Context, name string) (registry.User, error) {
	u := registry.User{Name: name}
	err := s.db.Pool.QueryRow(ctx, `SELECT org_id, password_hash, created_at FROM users WHERE name = $1`, name).
		Scan(&u.OrgID, &u.PasswordHash, &u.CreatedAt)
	u.CreatedAt = u.CreatedAt.UTC()
	return u, one(fmt.Sprintf("user %q", name), err)
}

// API keys.

const keyColumns = `id, org_id, name, hash, created_at, created_by`

func scanKey(sc scanner) (registry.APIKey, error) {
	var k registry.APIKey
	err := sc.Scan(&k.ID, &k.OrgID, &k.Name, &k.Hash, &k.CreatedAt, &k.CreatedBy)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

func (s *ExchangeStore) CreateAPIKey(ctx context.Context, k registry.APIKey) error {
	return s.exec(ctx, false, fmt.Sprintf("create api key %q", k.Name),
		`INSERT INTO api_keys (`+keyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.OrgID, k.Name, k.Hash, k.CreatedAt, k.CreatedBy)
}

func (s *ExchangeStore) APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error) {
	k, err := scanKey(s.db.Pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	return k, one("api key", err)
}

func (s *ExchangeStore) APIKeys(ctx context.Context, orgID string) ([]registry.APIKey, error) {
	return list(ctx, s.db, "list api keys", scanKey,
		`SELECT `+keyColumns+` FROM api_keys WHERE org_id = $1 ORDER BY created_at, seq`, orgID)
}

func (s *ExchangeStore) DeleteAPIKey(ctx context.Context, orgID, id string) error {
	return s.exec(ctx, true, fmt.Sprintf("api key %s", id), `DELETE FROM api_keys WHERE org_id = $1 AND id = $2`, orgID, id)
}

// Tokens.

const tokenColumns = `id, org_id, region, hash, devices, remaining, created_at, expires_at, revoked_at, created_by`

func scanToken(sc scanner) (registry.Token, error) {
	var t registry.Token
	var revoked *time.Time
	err := sc.Scan(&t.ID, &t.OrgID, &t.Region, &t.Hash, &t.Devices, &t.Remaining, &t.CreatedAt, &t.ExpiresAt, &revoked, &t.CreatedBy)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), utc(revoked)
	return t, err
}

func (s *ExchangeStore) CreateToken(ctx context.Context, t registry.Token) error {
	return s.exec(ctx, false, "create token",
		`INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.OrgID, t.Region, t.Hash, t.Devices, t.Remaining, t.CreatedAt, t.ExpiresAt, orNull(t.RevokedAt), t.CreatedBy)
}

func (s *ExchangeStore) TokenByHash(ctx context.Context, hash string) (registry.Token, error) {
	t, err := scanToken(s.db.Pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	return t, one("token", err)
}

func (s *ExchangeStore) Tokens(ctx context.Context, orgID string) ([]registry.Token, error) {
	return list(ctx, s.db, "list tokens", scanToken,
		`SELECT `+tokenColumns+` FROM tokens WHERE org_id = $1 ORDER BY created_at DESC, seq DESC`, orgID)
}

func (s *ExchangeStore) RevokeToken(ctx context.Context, orgID, id string, at time.Time) error {
	return s.exec(ctx, true, fmt.Sprintf("token %s", id),
		`UPDATE tokens SET revoked_at = coalesce(revoked_at, $1) WHERE org_id = $2 AND id = $3`, at, orgID, id)
}

// Devices.

const deviceColumns = `id, org_id, name, description, type, version, serial, connector_version, status, ip,
	credential_hash, token_id, created_at, last_seen`

func scanDevice(sc scanner) (registry.Device, error) {
	var d registry.Device
	var seen *time.Time
	err := sc.Scan(&d.ID, &d.OrgID, &d.Name, &d.Description, &d.Type, &d.Version, &d.Serial, &d.ConnectorVersion,
		&d.Status, &d.IP, &d.CredentialHash, &d.TokenID, &d.CreatedAt, &seen)
	d.CreatedAt, d.LastSeen = d.CreatedAt.UTC(), utc(seen)
	return d, err
}

// RegisterDevice takes one use of the token and inserts the device in one
// transaction. Under READ COMMITTED the conditional UPDATE waits for a
// concurrent registration on the same token and re-checks remaining > 0
// against its outcome, so the count never goes below zero.
func (s *ExchangeStore) RegisterDevice(ctx context.Context, tokenID string, now time.Time, d registry.Device) error {
	return pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		var used string
		err := tx.QueryRow(ctx, `UPDATE tokens SET remaining = remaining - 1
			WHERE id = $1 AND org_id = $2 AND remaining > 0 AND revoked_at IS NULL AND expires_at > $3
			RETURNING id`, tokenID, d.OrgID, now).Scan(&used)
		if errors.Is(err, pgx.ErrNoRows) {
			return sightline.Errorf(sightline.Conflict, "token %s cannot register another device", tokenID)
		} else if err != nil {
			return dbErr("register device: use token", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO devices (`+deviceColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			d.ID, d.OrgID, d.Name, d.Description, d.Type, d.Version, d.Serial, d.ConnectorVersion, d.Status, d.IP,
			d.CredentialHash, tokenID, d.CreatedAt, orNull(d.LastSeen))
		return dbErr(fmt.Sprintf("register device %s", d.ID), err)
	})
}

func (s *ExchangeStore) Device(ctx context.Context, orgID, id string) (registry.Device, error) {
	d, err := scanDevice(s.db.Pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE org_id = $1 AND id = $2`, orgID, id))
	return d, one(fmt.Sprintf("device %s", id), err)
}

func (s *ExchangeStore) DeviceByCredential(ctx context.Context, hash string) (registry.Device, error) {
	d, err := scanDevice(s.db.Pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE credential_hash = $1`, hash))
	return d, one("device credential", err)
}

func (s *ExchangeStore) Devices(ctx context.Context, orgID string) ([]registry.Device, error) {
	return list(ctx, s.db, "list devices", scanDevice,
		`SELECT `+deviceColumns+` FROM devices WHERE org_id = $1 ORDER BY created_at, seq`, orgID)
}

func (s *ExchangeStore) UpdateDevice(ctx context.Context, orgID, id, name, description string) error {
	return s.exec(ctx, true, fmt.Sprintf("device %s", id),
		`UPDATE devices SET name = $1, description = $2 WHERE org_id = $3 AND id = $4`, name, description, orgID, id)
}

func (s *ExchangeStore) TouchDevice(ctx context.Context, id string, at time.Time) error {
	return s.exec(ctx, false, fmt.Sprintf("touch device %s", id),
		`UPDATE devices SET last_seen = $1 WHERE id = $2`, orNull(at), id)
}

func (s *ExchangeStore) DeleteDevice(ctx context.Context, orgID, id string) error {
	return s.exec(ctx, true, fmt.Sprintf("device %s", id), `DELETE FROM devices WHERE org_id = $1 AND id = $2`, orgID, id)
}

// Audit.

const auditColumns = `id, org_id, time, actor, source, action, target, outcome, detail,
	reason, token_id, token_fingerprint, token_region, device_id, device_name, device_version, min_version`

func scanAudit(sc scanner) (registry.AuditEntry, error) {
	var e registry.AuditEntry
	err := sc.Scan(&e.ID, &e.OrgID, &e.Time, &e.Actor, &e.Source, &e.Action, &e.Target, &e.Outcome, &e.Detail,
		&e.Reason, &e.TokenID, &e.TokenFingerprint, &e.TokenRegion, &e.DeviceID, &e.DeviceName, &e.DeviceVersion, &e.MinVersion)
	e.Time = e.Time.UTC()
	return e, err
}

func (s *ExchangeStore) AddAudit(ctx context.Context, e registry.AuditEntry) error {
	return s.exec(ctx, false, "add audit entry",
		`INSERT INTO audit (org_id, time, actor, source, action, target, outcome, detail,
		reason, token_id, token_fingerprint, token_region, device_id, device_name, device_key, device_version, min_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		e.OrgID, e.Time, e.Actor, e.Source, e.Action, e.Target, e.Outcome, e.Detail,
		e.Reason, e.TokenID, e.TokenFingerprint, e.TokenRegion, e.DeviceID, e.DeviceName, registry.DeviceKey(e.DeviceName),
		e.DeviceVersion, e.MinVersion)
}

// Audit reads the entries newest first along the index of their most
// selective filter: a branch of the query for each organisation, and for
// each column the device and the token filters may match, merged. A Since
// bound also bounds the ID: no entry at or after Since has an ID below the
// smallest of those that are, so each read stops there. That smallest ID
// is the min of id + 0, not of id, so that the planner finds it among the
// entries since Since by the (org_id, time) index, rather than walking the
// older entries in ID order until it meets one.
func (s *ExchangeStore) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEntry, error) {
	q, err := q.Check()
	if err != nil {
		return nil, err
	}
	var parts []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, orgID := range q.OrgIDs {
		for _, conds := range auditBranches(q, orgID) {
			var where []string
			for _, c := range conds {
				where = append(where, c(arg))
			}
			parts = append(parts, `SELECT `+auditColumns+` FROM audit WHERE `+strings.Join(where, " AND ")+
				` ORDER BY id DESC LIMIT `+arg(q.Limit))
		}
	}
	query := parts[0]
	if len(parts) > 1 {
		query = `(` + strings.Join(parts, `) UNION (`) + `) ORDER BY id DESC LIMIT ` + arg(q.Limit)
	}
	return list(ctx, s.db, "read audit log", scanAudit, query, args...)
}

// auditCond is a condition of the audit query: its SQL, given a function
// that adds an argument and returns its placeholder.
type auditCond func(arg func(any) string) string

// eq is the condition column = v.
func eq(column string, v any) auditCond {
	return func(arg func(any) string) string { return column + " = " + arg(v) }
}

// auditBranches returns the conditions of each branch of the audit query
// on the entries of orgID. The device and the token filters each match
// one of two indexed columns; each branch tests one of them, so that it
// reads one index in ID order.
func auditBranches(q registry.AuditQuery, orgID string) [][]auditCond {
	common := []auditCond{eq("org_id", orgID)}
	if q.Before != 0 {
		common = append(common, func(arg func(any) string) string { return "id < " + arg(q.Before) })
	}
	if !q.Since.IsZero() {
		common = append(common, func(arg func(any) string) string {
			since := arg(q.Since)
			return "time >= " + since + " AND id >= (SELECT min(id + 0) FROM audit WHERE org_id = " + arg(orgID) + " AND time >= " + since + ")"
		})
	}
	if q.Action != "" {
		common = append(common, eq("action", q.Action))
	}
	if q.Outcome != "" {
		common = append(common, eq("outcome", q.Outcome))
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
		either(eq("device_id", q.Device), eq("device_key", registry.DeviceKey(q.Device)))
	}
	if q.Token != "" {
		either(eq("token_id", q.Token), eq("token_fingerprint", q.Token))
	}
	return branches
}

// Secrets.

// Generation implements registry.Store.
func (s *ExchangeStore) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT n FROM generation WHERE id = 1`).Scan(&n); err != nil {
		return 0, dbErr("read generation", err)
	}
	return n, nil
}

// Secret relies on INSERT … ON CONFLICT being atomic: of replicas calling it
// at once with different candidates, all get the one that was stored.
func (s *ExchangeStore) Secret(ctx context.Context, name string, candidate []byte) ([]byte, error) {
	var v []byte
	err := s.db.Pool.QueryRow(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = secrets.value RETURNING value`, name, candidate).Scan(&v)
	if err != nil {
		return nil, dbErr(fmt.Sprintf("secret %s", name), err)
	}
	return v, nil
}
