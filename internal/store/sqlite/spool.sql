-- The gateway queue's spool: message state, recipient state, and raw bytes
-- kept apart from the metadata so that state scans never read bodies.
CREATE TABLE spool_message (
    mid            INTEGER PRIMARY KEY,
    state          TEXT    NOT NULL,           -- new | queued | quarantined
    envelope       BLOB    NOT NULL,           -- JSON of mailflow.Envelope
    quarantine     TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    subject        TEXT    NOT NULL DEFAULT '',
    quarantined_at INTEGER NOT NULL DEFAULT 0  -- unix nanoseconds
) STRICT;

CREATE INDEX spool_message_state ON spool_message (state, quarantine);

CREATE TABLE spool_body (
    mid  INTEGER PRIMARY KEY REFERENCES spool_message (mid) ON DELETE CASCADE,
    data BLOB NOT NULL
) STRICT;

CREATE TABLE spool_recipient (
    mid          INTEGER NOT NULL REFERENCES spool_message (mid) ON DELETE CASCADE,
    rid          INTEGER NOT NULL,
    address      TEXT    NOT NULL,
    state        TEXT    NOT NULL,             -- pending | deferred | delivered | bounced
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,   -- unix nanoseconds
    last_reply   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (mid, rid)
) STRICT, WITHOUT ROWID;
