-- Exchange schema, version 1. Hashes are hex SHA-256 text. A time the
-- contract allows to be unset (revoked_at, last_seen) is NULL when unset.
-- seq keeps the insertion order among rows created in the same instant.
CREATE TABLE organisations (
	id              text PRIMARY KEY,
	name            text NOT NULL UNIQUE,
	threat_response boolean NOT NULL DEFAULT false,
	created_at      timestamptz NOT NULL,
	seq             bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX organisations_order ON organisations (created_at, seq);
CREATE TABLE users (
	name          text PRIMARY KEY,
	org_id        text NOT NULL REFERENCES organisations (id),
	password_hash text NOT NULL,
	created_at    timestamptz NOT NULL
);
CREATE TABLE api_keys (
	id         text PRIMARY KEY,
	org_id     text NOT NULL REFERENCES organisations (id),
	name       text NOT NULL,
	hash       text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL,
	created_by text NOT NULL,
	seq        bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at, seq);
CREATE TABLE tokens (
	id         text PRIMARY KEY,
	org_id     text NOT NULL REFERENCES organisations (id),
	region     text NOT NULL,
	hash       text NOT NULL UNIQUE,
	devices    integer NOT NULL,
	remaining  integer NOT NULL CHECK (remaining >= 0),
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz,
	created_by text NOT NULL,
	seq        bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX tokens_org ON tokens (org_id, created_at, seq);
CREATE TABLE devices (
	id                text PRIMARY KEY,
	org_id            text NOT NULL REFERENCES organisations (id),
	name              text NOT NULL,
	description       text NOT NULL,
	type              text NOT NULL,
	version           text NOT NULL,
	serial            text NOT NULL,
	connector_version text NOT NULL,
	status            text NOT NULL,
	ip                text NOT NULL,
	credential_hash   text NOT NULL UNIQUE,
	token_id          text NOT NULL,
	created_at        timestamptz NOT NULL,
	last_seen         timestamptz,
	seq               bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX devices_org ON devices (org_id, created_at, seq);
CREATE TABLE audit (
	id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	org_id  text NOT NULL,
	time    timestamptz NOT NULL,
	actor   text NOT NULL,
	source  text NOT NULL,
	action  text NOT NULL,
	target  text NOT NULL,
	outcome text NOT NULL,
	detail  text NOT NULL
);
CREATE INDEX audit_org ON audit (org_id, id);
CREATE TABLE secrets (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
