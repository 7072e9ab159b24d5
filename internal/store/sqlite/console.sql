-- Console schema, version 1. Times are Unix seconds (UTC); 0 means unset.
CREATE TABLE console_organisations (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	exchange_key TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL
);
CREATE TABLE console_users (
	name          TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES console_organisations (id),
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);
CREATE INDEX console_users_org ON console_users (org_id, name);
CREATE TABLE console_clients (
	id          TEXT PRIMARY KEY,
	org_id      TEXT NOT NULL REFERENCES console_organisations (id),
	name        TEXT NOT NULL,
	secret_hash TEXT NOT NULL,
	scopes      TEXT NOT NULL, -- space-separated
	created_at  INTEGER NOT NULL,
	created_by  TEXT NOT NULL
);
CREATE INDEX console_clients_org ON console_clients (org_id, created_at);
CREATE TABLE console_signing_keys (
	id         TEXT PRIMARY KEY,
	private    BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE console_instances (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES console_organisations (id),
	type_id    TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	enabled    INTEGER NOT NULL,
	settings   TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX console_instances_org ON console_instances (org_id, name, id);
CREATE TABLE console_entities (
	org_id  TEXT NOT NULL REFERENCES console_organisations (id),
	type    TEXT NOT NULL,
	id      TEXT NOT NULL,
	doc     TEXT NOT NULL,
	version INTEGER NOT NULL,
	PRIMARY KEY (org_id, type, id)
);
CREATE TABLE console_entity_observables (
	org_id    TEXT NOT NULL,
	type      TEXT NOT NULL,
	id        TEXT NOT NULL,
	obs_type  TEXT NOT NULL,
	obs_value TEXT NOT NULL,
	PRIMARY KEY (org_id, type, obs_type, obs_value, id),
	FOREIGN KEY (org_id, type, id) REFERENCES console_entities (org_id, type, id) ON DELETE CASCADE
);
