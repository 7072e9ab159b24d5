-- Message Tracking: one row per MID, its recipients, attachments, URLs and
-- tags, and the event stream. Every AsyncOS filter has an index: *_lc columns
-- hold folded copies (tracking.Fold) for exact and prefix matching, and the
-- trigram FTS table narrows "contains" to candidate rows.

CREATE TABLE messages (
	mid              INTEGER PRIMARY KEY,
	icid             INTEGER NOT NULL,
	direction        TEXT NOT NULL,
	injected_at      INTEGER NOT NULL, -- Unix nanoseconds
	sender_ip        TEXT NOT NULL,    -- canonical form
	reverse_dns      TEXT NOT NULL,
	helo             TEXT NOT NULL,
	sbrs             TEXT NOT NULL,
	sender_group     TEXT NOT NULL,
	mail_policy      TEXT NOT NULL,    -- names joined by newlines
	smtp_auth_id     TEXT NOT NULL,
	tls              TEXT NOT NULL,
	listener         TEXT NOT NULL,
	sender           TEXT NOT NULL,
	sender_lc        TEXT NOT NULL,
	sender_domain    TEXT NOT NULL,
	sender_domain_lc TEXT NOT NULL,
	header_from      TEXT NOT NULL,
	friendly_from    TEXT NOT NULL,
	reply_to         TEXT NOT NULL,
	reply_to_lc      TEXT NOT NULL,
	subject          TEXT NOT NULL,
	subject_lc       TEXT NOT NULL,
	final_subject    TEXT NOT NULL,
	message_id       TEXT NOT NULL,
	message_id_key   TEXT NOT NULL,    -- tracking.MessageIDKey
	size             INTEGER NOT NULL,
	body_snippet     TEXT NOT NULL,
	status           TEXT NOT NULL,
	verdict_chart    TEXT NOT NULL,
	flags            TEXT NOT NULL,    -- Message.Flags joined by newlines
	content_filters  TEXT NOT NULL,    -- joined by newlines
	threat_name      TEXT NOT NULL,
	spf              TEXT NOT NULL,
	dkim             TEXT NOT NULL,
	dmarc            TEXT NOT NULL,
	quarantine       TEXT NOT NULL
);
CREATE INDEX messages_time ON messages (injected_at, mid);
CREATE INDEX messages_direction ON messages (direction, injected_at, mid);
CREATE INDEX messages_sender ON messages (sender_lc);
CREATE INDEX messages_sender_domain ON messages (sender_domain_lc);
CREATE INDEX messages_reply_to ON messages (reply_to_lc);
CREATE INDEX messages_subject ON messages (subject_lc);
CREATE INDEX messages_message_id ON messages (message_id_key);
CREATE INDEX messages_sender_ip ON messages (sender_ip);
CREATE INDEX messages_status ON messages (status);

CREATE TABLE recipients (
	mid        INTEGER NOT NULL,
	rid        INTEGER NOT NULL,
	address    TEXT NOT NULL,
	address_lc TEXT NOT NULL,
	domain     TEXT NOT NULL, -- folded
	status     TEXT NOT NULL,
	reply      TEXT NOT NULL,
	PRIMARY KEY (mid, rid)
) WITHOUT ROWID;
CREATE INDEX recipients_address ON recipients (address_lc);
CREATE INDEX recipients_domain ON recipients (domain);
CREATE INDEX recipients_status ON recipients (status);

CREATE TABLE attachments (
	mid     INTEGER NOT NULL,
	idx     INTEGER NOT NULL,
	name    TEXT NOT NULL,
	name_lc TEXT NOT NULL,
	type    TEXT NOT NULL,
	size    INTEGER NOT NULL,
	sha256  TEXT NOT NULL,
	sha1    TEXT NOT NULL,
	md5     TEXT NOT NULL,
	PRIMARY KEY (mid, idx)
) WITHOUT ROWID;
CREATE INDEX attachments_name ON attachments (name_lc);
CREATE INDEX attachments_sha256 ON attachments (sha256);
CREATE INDEX attachments_sha1 ON attachments (sha1);
CREATE INDEX attachments_md5 ON attachments (md5);

CREATE TABLE urls (
	mid INTEGER NOT NULL,
	idx INTEGER NOT NULL,
	url TEXT NOT NULL,
	PRIMARY KEY (mid, idx)
) WITHOUT ROWID;
CREATE INDEX urls_url ON urls (url);

-- tracking.Message.Tags: the advanced filters' labels.
CREATE TABLE flags (
	flag TEXT NOT NULL,
	mid  INTEGER NOT NULL,
	PRIMARY KEY (flag, mid)
) WITHOUT ROWID;
CREATE INDEX flags_mid ON flags (mid);

-- Folded text for "contains": rowid = mid; recipients and attachment names
-- joined by newlines. Contentless: the text lives in the tables above.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	subject, sender, reply_to, recipients, attachments, domains,
	tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);

CREATE TABLE events (
	seq       INTEGER PRIMARY KEY,
	mid       INTEGER NOT NULL,
	icid      INTEGER NOT NULL,
	dcid      INTEGER NOT NULL,
	time      INTEGER NOT NULL, -- Unix nanoseconds
	level     TEXT NOT NULL,
	summary   TEXT NOT NULL,
	log       TEXT NOT NULL,
	status    TEXT NOT NULL,
	recipient TEXT NOT NULL,
	reply     TEXT NOT NULL
);
CREATE INDEX events_mid ON events (mid) WHERE mid <> 0;
CREATE INDEX events_connection ON events (icid) WHERE mid = 0;
