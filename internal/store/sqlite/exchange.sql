-- Exchange schema, version 1. Times are Unix seconds (UTC); 0 means unset.
CREATE TABLE organisations (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL UNIQUE,
	threat_response INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL
);
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES organisations (id),
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);
CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES organisations (id),
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);
CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES organisations (id),
	region     TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	devices    INTEGER NOT NULL,
	remaining  INTEGER NOT NULL CHECK (remaining >= 0),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	created_by TEXT NOT NULL
);
CREATE INDEX tokens_org ON tokens (org_id, created_at);
CREATE TABLE devices (
	id                TEXT PRIMARY KEY,
	org_id            TEXT NOT NULL REFERENCES organisations (id),
	name              TEXT NOT NULL,
	description       TEXT NOT NULL,
	type              TEXT NOT NULL,
	version           TEXT NOT NULL,
	serial            TEXT NOT NULL,
	connector_version TEXT NOT NULL,
	status            TEXT NOT NULL,
	ip                TEXT NOT NULL,
	credential_hash   TEXT NOT NULL UNIQUE,
	token_id          TEXT NOT NULL,
	created_at        INTEGER NOT NULL,
	last_seen         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_org ON devices (org_id, created_at);
CREATE TABLE audit (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id   TEXT NOT NULL,
	time     INTEGER NOT NULL,
	actor    TEXT NOT NULL,
	source   TEXT NOT NULL,
	action   TEXT NOT NULL,
	target   TEXT NOT NULL,
	outcome  TEXT NOT NULL,
	detail   TEXT NOT NULL
);
CREATE INDEX audit_org ON audit (org_id, id);
CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
