package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/tracking"
)

//go:embed tracking.sql
var trackingSchema string

var trackingMigrations = []Migration{
	{Version: 1, SQL: trackingSchema},
	{Version: 2, SQL: trackingSearchSchema},
	// Triggers run in a statement savepoint, and a savepoint makes FTS5 flush
	// its pending terms: a segment per message instead of one per batch,
	// which made Apply slow down as the store grew. putMessage writes the
	// search tables itself instead.
	{Version: 3, SQL: `DROP TRIGGER messages_search_insert; DROP TRIGGER messages_search_delete;
		DROP TRIGGER urls_search_insert; DROP TRIGGER urls_search_delete;`},
	{Version: 4, SQL: trackingV4},
	// The injection time in each filter's index: a search counts its
	// matches in the window from the index alone, and an exact match is
	// read newest first without sorting.
	{Version: 5, SQL: `
		DROP INDEX messages_sender;
		DROP INDEX messages_sender_domain;
		DROP INDEX messages_reply_to;
		DROP INDEX messages_subject;
		DROP INDEX messages_message_id;
		DROP INDEX messages_sender_ip;
		CREATE INDEX messages_sender ON messages (sender_lc, injected_at);
		CREATE INDEX messages_sender_domain ON messages (sender_domain_lc, injected_at);
		CREATE INDEX messages_reply_to ON messages (reply_to_lc, injected_at);
		CREATE INDEX messages_subject ON messages (subject_lc, injected_at);
		CREATE INDEX messages_message_id ON messages (message_id_key, injected_at);
		CREATE INDEX messages_sender_ip ON messages (sender_ip, injected_at);`},
	// FTS5 writes a segment each time its pending terms reach hashsize
	// (1 MiB by default): a batch of the indexer made a dozen small
	// segments, and merging them cost a third of its time.
	{Version: 6, SQL: `
		INSERT INTO messages_fts (messages_fts, rank) VALUES ('hashsize', 67108864);
		INSERT INTO search_fts (search_fts, rank) VALUES ('hashsize', 67108864);
		INSERT INTO urls_fts (urls_fts, rank) VALUES ('hashsize', 67108864);`},
	{Version: 7, SQL: trackingV7},
	{Version: 8, SQL: trackingV8},
	// A subject prefix's messages in a window, day by day (where.days): the
	// index on (subject_lc, injected_at) holds each subject's messages
	// together, and a prefix common to many subjects read every entry of
	// it to count those in the window.
	{Version: 9, SQL: `CREATE INDEX messages_subject_day ON messages (` + dayExpr + `, subject_lc, injected_at);`},
	{Version: 10, SQL: trackingV10},
	{Version: 11, SQL: trackingV11},
	// The exact check of a "contains" on the subject or the sender reads
	// each candidate of the substring index by MID: from this index, some
	// 50 to a page, rather than from its row of messages, a few to a page.
	{Version: 12, SQL: `CREATE INDEX messages_text ON messages (mid, injected_at, subject_lc, sender_lc)`},
}

// trackingV10 replaces the FTS5 trigram tables with the substring index of
// chunk bitmaps (tracking_grams.go), which the indexer fills behind from
// the queue; meanwhile searches scan what is queued.
const trackingV10 = `
DROP TABLE messages_fts;
DROP TABLE search_fts;
DROP TABLE urls_fts;
CREATE TABLE grams (
	field INTEGER NOT NULL, -- gramField
	gram  INTEGER NOT NULL, -- three runes, 21 bits each
	chunk INTEGER NOT NULL, -- MID >> 12
	mids  BLOB NOT NULL,    -- the chunk's MIDs with the gram (encodeChunk)
	PRIMARY KEY (chunk, field, gram)
) WITHOUT ROWID;
INSERT OR IGNORE INTO search_queue (mid) SELECT mid FROM messages;
`

// dayNanos is a day in the unit of injected_at: a time's day number is
// injected_at / dayNanos, in SQL (dayExpr) as in Go, both truncating.
const dayNanos = int64(24 * time.Hour)

var dayExpr = "injected_at / " + strconv.FormatInt(dayNanos, 10)

// trackingV7 adds mid_ranges: the lowest and highest MID saved in each hour
// of injection time. A time window's messages have MIDs within the range of
// its hours, so a substring lookup reads only the index chunks of that
// range instead of the whole store's. Ranges only widen: a clock
// stepped back or a message saved again makes them looser, never wrong.
const trackingV7 = `
CREATE TABLE mid_ranges (
	hour    INTEGER PRIMARY KEY, -- floor(injected_at / 1 hour)
	min_mid INTEGER NOT NULL,
	max_mid INTEGER NOT NULL
);
INSERT INTO mid_ranges (hour, min_mid, max_mid)
	SELECT CASE WHEN injected_at >= 0 THEN injected_at / 3600000000000 ELSE (injected_at + 1) / 3600000000000 - 1 END AS h,
		min(mid), max(mid)
	FROM messages GROUP BY h;
`

// hourOf is the mid_ranges hour of a Unix-nanosecond injection time.
func hourOf(nanos int64) int64 {
	const hour = int64(time.Hour)
	if nanos >= 0 {
		return nanos / hour
	}
	return (nanos+1)/hour - 1
}

// trackingV8 adds derived tags to flags, which Apply keeps as messages are
// saved and events change them: a status tag for the message's status and
// each of its recipients' (statusTag), and a domain tag for its sender's
// domain and each of its recipients' (domainTag). A status filter, or an
// exact domain, is then one index range within the window (flags' key is
// tag, time, MID) instead of every message of the window and its
// recipients; the recipients' status index served only that and goes.
const trackingV8 = `
INSERT OR IGNORE INTO flags (flag, injected_at, mid)
	SELECT '` + statusTagPrefix + `' || status, injected_at, mid FROM messages;
INSERT OR IGNORE INTO flags (flag, injected_at, mid)
	SELECT '` + statusTagPrefix + `' || r.status, m.injected_at, m.mid FROM recipients r JOIN messages m ON m.mid = r.mid;
INSERT OR IGNORE INTO flags (flag, injected_at, mid)
	SELECT '` + domainTagPrefix + `' || sender_domain_lc, injected_at, mid FROM messages;
INSERT OR IGNORE INTO flags (flag, injected_at, mid)
	SELECT '` + domainTagPrefix + `' || r.domain, m.injected_at, m.mid FROM recipients r JOIN messages m ON m.mid = r.mid;
DROP INDEX recipients_status;
`

// Derived tags, beside tracking.Message.Tags in flags (whose namespaces
// differ). The statements write the tags of MID ?1 from its message and
// recipient rows (OR IGNORE drops the repeated ones, cheaper than a UNION's
// temporary table), or delete those its rows give now: by whole key, so
// that they need no index on MID (BulkLoad drops flags_mid).
const (
	statusTagPrefix = "status:"
	domainTagPrefix = "domain:"

	statusesOfMID       = `SELECT status FROM messages WHERE mid = ?1 UNION ALL SELECT status FROM recipients WHERE mid = ?1`
	insertStatusTagsSQL = `INSERT OR IGNORE INTO flags (flag, injected_at, mid)
		SELECT '` + statusTagPrefix + `' || s.status, m.injected_at, m.mid
		FROM messages m, (` + statusesOfMID + `) s
		WHERE m.mid = ?1`
	deleteStatusTagsSQL = `DELETE FROM flags WHERE mid = ?1
		AND flag IN (SELECT '` + statusTagPrefix + `' || status FROM (` + statusesOfMID + `))
		AND injected_at = (SELECT injected_at FROM messages WHERE mid = ?1)`
	domainsOfMID        = `SELECT sender_domain_lc AS domain FROM messages WHERE mid = ?1 UNION ALL SELECT domain FROM recipients WHERE mid = ?1`
	insertDomainTagsSQL = `INSERT OR IGNORE INTO flags (flag, injected_at, mid)
		SELECT '` + domainTagPrefix + `' || d.domain, m.injected_at, m.mid
		FROM messages m, (` + domainsOfMID + `) d
		WHERE m.mid = ?1`
)

// statusTag is the tag of a message whose status, or one of whose
// recipients' status, is status.
func statusTag(status string) string { return statusTagPrefix + status }

// domainTag is the tag of a message whose sender's domain, or one of whose
// recipients' domain, is the folded domain d.
func domainTag(d string) string { return domainTagPrefix + d }

// trackingV4 moves the trigram indexes behind ingest (search_queue), gives
// flags the injection time so that a tag is looked up within the window, and
// lets a status be counted from its index alone.
const trackingV4 = `
CREATE TABLE search_queue (mid INTEGER PRIMARY KEY);
CREATE TABLE flags_v4 (
	flag        TEXT NOT NULL,
	injected_at INTEGER NOT NULL,
	mid         INTEGER NOT NULL,
	PRIMARY KEY (flag, injected_at, mid)
) WITHOUT ROWID;
INSERT INTO flags_v4 SELECT f.flag, m.injected_at, f.mid FROM flags f JOIN messages m ON m.mid = f.mid;
DROP TABLE flags;
ALTER TABLE flags_v4 RENAME TO flags;
CREATE INDEX flags_mid ON flags (mid);
DROP INDEX messages_status;
CREATE INDEX messages_status ON messages (status, injected_at);

ALTER TABLE messages ADD COLUMN header_to TEXT NOT NULL DEFAULT '';  -- addresses joined by newlines
ALTER TABLE messages ADD COLUMN header_cc TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN has_inline INTEGER NOT NULL DEFAULT 0;

-- The trigram tables anew (search_fts gains To and Cc), filled behind by
-- the indexer from the queue.
DROP TABLE messages_fts;
DROP TABLE search_fts;
DROP TABLE urls_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5 (
	subject, sender, reply_to, recipients, attachments, domains,
	tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);
CREATE VIRTUAL TABLE search_fts USING fts5 (
	header_from, body, host, header_to, header_cc,
	tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);
CREATE VIRTUAL TABLE urls_fts USING fts5 (
	url, tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);
INSERT INTO search_queue (mid) SELECT mid FROM messages;
`

// DefaultCountLimit is the default TrackingStore.CountLimit.
const DefaultCountLimit = 100_000

// TrackingStore is tracking.Store on a SQLite file.
type TrackingStore struct {
	db *DB

	// CountLimit caps the matches Search counts for Page.Total, so that a
	// broad search over millions of messages stays interactive; above it
	// Page.TotalCapped is set. Zero means DefaultCountLimit. Set it before
	// the first Search.
	CountLimit int

	reads *stmtCache // the searches' statements, prepared once
	put   *putStmts
	index *indexStmts
	ix    *indexer // nil until StartIndexer
}

var _ tracking.Store = (*TrackingStore)(nil)

// OpenTracking opens (creating it if needed) the tracking database at path.
//
// The writer keeps 128 MiB of pages, each reader 16 MiB: index inserts at
// random keys (addresses, subjects, hashes) touch pages all over a large
// file, and a page found in the cache costs no system call.
//
// Commits are not fsynced (synchronous=NORMAL): a process crash loses
// nothing, and a power loss can lose only the last batches of tracking, not
// mail — every accepted message is durable in the spool, and one screened
// again after a restart is saved anew, replacing its record.
func OpenTracking(ctx context.Context, path string) (*TrackingStore, error) {
	db, err := Open(ctx, path, Options{WriterCacheKiB: 128 << 10, ReaderCacheKiB: 16 << 10}, trackingMigrations)
	if err != nil {
		return nil, err
	}
	// Give the planner fresh statistics (cheap: sampled, and only where they
	// are stale), so that it can weigh each filter's index.
	if _, err := db.W.ExecContext(ctx, `PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002`); err != nil {
		db.Close()
		return nil, fmt.Errorf("open tracking %s: optimize: %w", path, err)
	}
	put, err := preparePut(ctx, db.W)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open tracking %s: %w", path, err)
	}
	index, err := prepareIndex(ctx, db.W)
	if err != nil {
		put.close()
		db.Close()
		return nil, fmt.Errorf("open tracking %s: %w", path, err)
	}
	return &TrackingStore{db: db, reads: newStmtCache(db.R), put: put, index: index}, nil
}

// Close closes the database.
func (s *TrackingStore) Close() error {
	s.stopIndexer()
	s.reads.Close()
	s.put.close()
	closeAll(s.index.all())
	return s.db.Close()
}

// putStmts are the statements of Apply, prepared once on the writer
// connection.
type putStmts struct {
	delMessage, delRecipients, delAttachments, delURLs, delFlags        *sql.Stmt
	insMessage, insRecipient, insAttachment, insURL, insFlag, enqueue   *sql.Stmt
	insEvent, setStatus, setPendingRecipients, setRecipient, rcptStatus *sql.Stmt
	insEvents, widen, delStatusTags, insStatusTags, insDomainTags       *sql.Stmt
}

func (p *putStmts) all() []**sql.Stmt {
	return []**sql.Stmt{
		&p.delMessage, &p.delRecipients, &p.delAttachments, &p.delURLs, &p.delFlags,
		&p.insMessage, &p.insRecipient, &p.insAttachment, &p.insURL, &p.insFlag, &p.enqueue,
		&p.insEvent, &p.setStatus, &p.setPendingRecipients, &p.setRecipient, &p.rcptStatus,
		&p.insEvents, &p.widen, &p.delStatusTags, &p.insStatusTags, &p.insDomainTags,
	}
}

func preparePut(ctx context.Context, w *sql.DB) (*putStmts, error) {
	p := &putStmts{}
	return p, prepareAll(ctx, w, p.all(), []string{
		`DELETE FROM messages WHERE mid = ?`,
		`DELETE FROM recipients WHERE mid = ?`,
		`DELETE FROM attachments WHERE mid = ?`,
		`DELETE FROM urls WHERE mid = ?`,
		`DELETE FROM flags WHERE mid = ?`,
		`INSERT INTO messages (` + messageColumns + `) VALUES (?` + strings.Repeat(`, ?`, strings.Count(messageColumns, ",")) + `)`,
		`INSERT INTO recipients (mid, rid, address, address_lc, domain, status, reply) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		`INSERT INTO attachments (mid, idx, name, name_lc, type, size, sha256, sha1, md5) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`INSERT INTO urls (mid, idx, url) VALUES (?, ?, ?)`,
		`INSERT OR IGNORE INTO flags (flag, injected_at, mid) VALUES (?, ?, ?)`,
		`INSERT OR IGNORE INTO search_queue (mid) VALUES (?)`,
		insertEventsSQL,
		`UPDATE messages SET status = ? WHERE mid = ?`,
		`UPDATE recipients SET status = ? WHERE mid = ? AND status IN ('', '` + tracking.StatusInProgress + `')`,
		`UPDATE recipients SET status = ?, reply = ? WHERE mid = ? AND address_lc = ?`,
		`SELECT status FROM recipients WHERE mid = ? ORDER BY rid`,
		insertEventsSQL + strings.Repeat(`, `+eventValues, eventChunk-1),
		`INSERT INTO mid_ranges (hour, min_mid, max_mid) VALUES (?, ?, ?) ON CONFLICT (hour) DO UPDATE
			SET min_mid = min(min_mid, excluded.min_mid), max_mid = max(max_mid, excluded.max_mid)`,
		deleteStatusTagsSQL,
		insertStatusTagsSQL,
		insertDomainTagsSQL,
	})
}

// Events are inserted eventChunk rows per statement: most of a batch is
// events, and one statement per row cost more than the rows themselves.
const (
	eventChunk      = 32
	insertEventsSQL = `INSERT INTO events (mid, icid, dcid, time, level, summary, log, status, recipient, reply) VALUES ` + eventValues
	eventValues     = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// prepareAll prepares sqls[i] into *dst[i] on db, closing them all on error.
func prepareAll(ctx context.Context, db *sql.DB, dst []**sql.Stmt, sqls []string) error {
	for i, d := range dst {
		st, err := db.PrepareContext(ctx, sqls[i])
		if err != nil {
			closeAll(dst)
			return fmt.Errorf("prepare %q: %w", sqls[i], err)
		}
		*d = st
	}
	return nil
}

func closeAll(sts []**sql.Stmt) {
	for _, st := range sts {
		if *st != nil {
			(*st).Close()
		}
	}
}

func (p *putStmts) close() { closeAll(p.all()) }

// messageColumns are the columns of messages in the order scanMessage reads
// and putMessage writes them.
const messageColumns = `mid, icid, direction, injected_at, sender_ip, reverse_dns, helo, sbrs, sender_group,
	mail_policy, smtp_auth_id, tls, listener, sender, sender_lc, sender_domain, sender_domain_lc,
	header_from, friendly_from, reply_to, reply_to_lc, subject, subject_lc, final_subject, message_id,
	message_id_key, size, body_snippet, status, verdict_chart, flags, content_filters, threat_name,
	spf, dkim, dmarc, quarantine, header_to, header_cc, has_inline`

// Apply implements tracking.Store.
func (s *TrackingStore) Apply(ctx context.Context, b tracking.Batch) error {
	if len(b.Messages) == 0 && len(b.Events) == 0 {
		return nil
	}
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return wrapDB("apply tracking batch", err)
	}
	defer tx.Rollback()
	st := bindAll(ctx, tx, s.put.all(), &putStmts{})
	defer st.close()
	for _, m := range b.Messages {
		if err := st.putMessage(ctx, m); err != nil {
			return wrapDB(fmt.Sprintf("save tracking record of MID %d", m.MID), err)
		}
	}
	if err := st.widenRanges(ctx, b.Messages); err != nil {
		return wrapDB("save tracking MID ranges", err)
	}
	if err := st.insertEvents(ctx, b.Events); err != nil {
		return wrapDB("append tracking events", err)
	}
	for _, ev := range b.Events {
		if err := st.applyStatus(ctx, ev); err != nil {
			return wrapDB(fmt.Sprintf("apply tracking event of MID %d", ev.MID), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrapDB("commit tracking batch", err)
	}
	s.applied()
	return nil
}

// wrapDB makes a database failure an Unavailable error for the API while
// keeping the cause for logs; a cancelled context stays recognisable.
func wrapDB(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return sightline.Wrap(sightline.Unavailable, fmt.Errorf("%s: %w", op, err), "tracking database unavailable")
}

func (st *putStmts) putMessage(ctx context.Context, m *tracking.Message) error {
	res, err := st.delMessage.ExecContext(ctx, m.MID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		if err := st.replaceChildren(ctx, m.MID); err != nil {
			return err
		}
	}
	status := m.Status
	if status == "" {
		status = tracking.StatusInProgress
	}
	senderIP, ok := tracking.CanonicalIP(m.SenderIP)
	if !ok {
		senderIP = m.SenderIP
	}
	senderDomain := m.SenderDomain
	if senderDomain == "" {
		senderDomain = tracking.Domain(m.Sender)
	}
	if _, err := st.insMessage.ExecContext(ctx,
		m.MID, m.ICID, m.Direction, m.InjectedAt.UnixNano(), senderIP, m.ReverseDNS, m.HELO, m.SBRS, m.SenderGroup,
		joinLines(m.MailPolicy), m.SMTPAuthID, m.TLS, m.ListenerName, m.Sender, tracking.Fold(m.Sender),
		senderDomain, tracking.Fold(senderDomain), m.HeaderFrom, m.FriendlyFrom, m.ReplyTo, tracking.Fold(m.ReplyTo),
		m.Subject, tracking.Fold(m.Subject), m.FinalSubject, m.MessageID, tracking.MessageIDKey(m.MessageID),
		m.Size, m.BodySnippet, status, m.VerdictChart, joinLines(m.Flags), joinLines(m.ContentFilters), m.ThreatName,
		m.SPF, m.DKIM, m.DMARC, m.Quarantine, joinLines(m.HeaderTo), joinLines(m.HeaderCc), m.HasInline,
	); err != nil {
		return err
	}
	for _, r := range m.Recipients {
		rs := r.Status
		if rs == "" {
			rs = status
		}
		d := tracking.Domain(r.Address)
		if _, err := st.insRecipient.ExecContext(ctx, m.MID, r.RID, r.Address, tracking.Fold(r.Address), d, rs, r.Reply); err != nil {
			return err
		}
	}
	for i, a := range m.Attachments {
		if _, err := st.insAttachment.ExecContext(ctx, m.MID, i, a.Name, tracking.Fold(a.Name), a.Type, a.Size,
			strings.ToLower(a.SHA256), strings.ToLower(a.SHA1), strings.ToLower(a.MD5)); err != nil {
			return err
		}
	}
	for i, u := range m.URLs {
		if _, err := st.insURL.ExecContext(ctx, m.MID, i, u); err != nil {
			return err
		}
	}
	for _, t := range m.Tags() {
		if _, err := st.insFlag.ExecContext(ctx, t, m.InjectedAt.UnixNano(), m.MID); err != nil {
			return err
		}
	}
	for _, ins := range []*sql.Stmt{st.insStatusTags, st.insDomainTags} {
		if _, err := ins.ExecContext(ctx, m.MID); err != nil {
			return err
		}
	}
	// The substring index is written behind ingest (tracking_index.go).
	_, err = st.enqueue.ExecContext(ctx, m.MID)
	return err
}

// replaceChildren deletes the rows of a message saved again before its new
// record is written. Its bits in the substring index stay: a search checks
// every candidate exactly.
func (st *putStmts) replaceChildren(ctx context.Context, mid int64) error {
	for _, del := range []*sql.Stmt{st.delRecipients, st.delAttachments, st.delURLs, st.delFlags} {
		if _, err := del.ExecContext(ctx, mid); err != nil {
			return err
		}
	}
	return nil
}

// widenRanges widens the mid_ranges of the hours ms were injected in to
// hold their MIDs.
func (st *putStmts) widenRanges(ctx context.Context, ms []*tracking.Message) error {
	type mids struct{ lo, hi int64 }
	hours := map[int64]mids{}
	for _, m := range ms {
		h := hourOf(m.InjectedAt.UnixNano())
		r, ok := hours[h]
		if !ok {
			r = mids{m.MID, m.MID}
		}
		hours[h] = mids{min(r.lo, m.MID), max(r.hi, m.MID)}
	}
	for h, r := range hours {
		if _, err := st.widen.ExecContext(ctx, h, r.lo, r.hi); err != nil {
			return err
		}
	}
	return nil
}

// insertEvents appends evs to the event stream, in order.
func (st *putStmts) insertEvents(ctx context.Context, evs []tracking.Event) error {
	args := make([]any, 0, 10*eventChunk)
	for len(evs) > 0 {
		n := min(len(evs), eventChunk)
		stmt := st.insEvents
		if n < eventChunk {
			n, stmt = 1, st.insEvent
		}
		args = args[:0]
		for _, ev := range evs[:n] {
			level := ev.Level
			if level == "" {
				level = tracking.Info
			}
			args = append(args, ev.MID, ev.ICID, ev.DCID, ev.Time.UnixNano(), string(level),
				ev.Summary, ev.Log, ev.Status, ev.Recipient, ev.Reply)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// applyStatus carries an event's status to its message and recipients,
// and their status tags: the tags of the statuses before are deleted, those
// of the statuses after inserted.
func (st *putStmts) applyStatus(ctx context.Context, ev tracking.Event) error {
	if ev.Status == "" || ev.MID == 0 {
		return nil
	}
	if _, err := st.delStatusTags.ExecContext(ctx, ev.MID); err != nil {
		return err
	}
	if err := st.setStatuses(ctx, ev); err != nil {
		return err
	}
	_, err := st.insStatusTags.ExecContext(ctx, ev.MID)
	return err
}

// setStatuses writes ev's status to the message and recipients it concerns.
func (st *putStmts) setStatuses(ctx context.Context, ev tracking.Event) error {
	if ev.Recipient == "" {
		if _, err := st.setStatus.ExecContext(ctx, ev.Status, ev.MID); err != nil {
			return err
		}
		_, err := st.setPendingRecipients.ExecContext(ctx, ev.Status, ev.MID)
		return err
	}
	addr := tracking.Fold(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(ev.Recipient), "<"), ">"))
	res, err := st.setRecipient.ExecContext(ctx, ev.Status, ev.Reply, ev.MID, addr)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	rows, err := st.rcptStatus.QueryContext(ctx, ev.MID)
	if err != nil {
		return err
	}
	var all []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		all = append(all, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = st.setStatus.ExecContext(ctx, tracking.DeriveStatus(all), ev.MID)
	return err
}

func joinLines(ss []string) string { return strings.Join(ss, "\n") }

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Search implements tracking.Store.
func (s *TrackingStore) Search(ctx context.Context, q tracking.Query) (tracking.Page, error) {
	ms, f, err := readPage(ctx, s, q, func(ctx context.Context, tx cachedTx, mids []int64) ([]*tracking.Message, error) {
		ms, err := messagesByMID(ctx, tx, mids)
		if err == nil {
			err = loadChildren(ctx, tx, ms)
		}
		return ms, err
	})
	return tracking.Page{Messages: ms, Total: f.total, TotalCapped: f.capped}, err
}

// Briefs implements tracking.Store: the page Search finds, each message
// read in brief with its recipients, attachments, URLs and last event, in
// one statement.
func (s *TrackingStore) Briefs(ctx context.Context, q tracking.Query) (tracking.BriefPage, error) {
	bs, f, err := readPage(ctx, s, q, briefsByMID)
	return tracking.BriefPage{Briefs: bs, Total: f.total, TotalCapped: f.capped}, err
}

// readPage finds the page of q and reads its messages with read, in one
// read transaction.
func readPage[T any](ctx context.Context, s *TrackingStore, q tracking.Query,
	read func(context.Context, cachedTx, []int64) (T, error)) (T, foundPage, error) {
	var zero T
	tx, err := s.beginRead(ctx)
	if err != nil {
		return zero, foundPage{}, wrapDB("search tracking", err)
	}
	defer tx.Rollback()
	f, err := s.findPage(ctx, tx, q)
	if err != nil {
		return zero, foundPage{}, wrapDB("search tracking", err)
	}
	page, err := read(ctx, tx, f.mids)
	if err != nil {
		return zero, foundPage{}, wrapDB("search tracking", err)
	}
	return page, f, nil
}

// foundPage is a page of a search: the MIDs of its messages, newest
// first, and how many messages match, up to the count limit.
type foundPage struct {
	mids   []int64
	total  int
	capped bool // more than total match
}

// findPage finds the page of q.
func (s *TrackingStore) findPage(ctx context.Context, tx cachedTx, q tracking.Query) (foundPage, error) {
	var f foundPage
	p, ok, err := planSearch(ctx, tx, q)
	if err != nil || !ok {
		return f, err
	}
	limit := s.CountLimit
	if limit <= 0 {
		limit = DefaultCountLimit
	}
	readPage := true
	if p.driven != nil {
		var ms matchList
		var all bool
		if ms, f.total, all, err = readMatches(ctx, tx, *p.driven, limit); err != nil {
			return f, err
		}
		switch {
		case all:
			from := min(max(q.Offset, 0), len(ms))
			f.mids, readPage = ms.newest(from + q.PageLimit())[from:], false
		case f.total < scanPageMatches:
			// Counted up to a low limit: the candidates drive the page too.
			p.page, p.args = p.driven.drivenPage(`ORDER BY m.injected_at DESC, m.mid DESC LIMIT ? OFFSET ?`)
		}
		// Otherwise the planned page reads the newest rows of the window
		// and checks each, which finds a page of so many matches sooner.
	} else {
		countArgs := append(p.args[:len(p.args):len(p.args)], limit+1)
		if err := tx.QueryRowContext(ctx, p.count, countArgs...).Scan(&f.total); err != nil {
			return f, err
		}
	}
	if f.total > limit {
		f.total, f.capped = limit, true
	}
	switch {
	case !readPage:
	case p.byDay != nil:
		f.mids, err = pageByDay(ctx, tx, *p.byDay, q.PageLimit(), max(q.Offset, 0))
	default:
		f.mids, err = int64s(tx.QueryContext(ctx, p.page, append(p.args[:len(p.args):len(p.args)], q.PageLimit(), max(q.Offset, 0))...))
	}
	return f, err
}

// searchPlan is how Search reads its matches: count counts them up to a
// limit (its last argument), page reads the MIDs of the newest first
// (limit and offset last), both after args. driven, when set, is the search's where whose
// candidates drive it (readMatches): then count is not used.
type searchPlan struct {
	count, page string
	args        []any
	driven      *where
	// byDay, when set, reads the page instead of page, one day of its
	// window at a time (pageByDay).
	byDay *tracking.Query
}

// planSearch chooses how Search reads the matches of q, and reports false
// when q can match nothing.
func planSearch(ctx context.Context, tx cachedTx, q tracking.Query) (searchPlan, bool, error) {
	if tags, ok := soleTags(q); ok {
		return tagPlan(tags, q.Start, q.End), true, nil
	}
	subs, err := lookupSubstrings(ctx, tx, queryNeeds(q), q.Start, q.End)
	if err != nil {
		return searchPlan{}, false, err
	}
	w := where{subs: subs}
	if !w.build(q) {
		return searchPlan{}, false, nil
	}
	p := w.plan()
	if w.byDay {
		p.byDay = &q
	} else if w.driven {
		p.driven = &w
	}
	return p, true, nil
}

// pageByDay finds the MIDs of the page of offset and limit of q's matches
// from its window cut at each midnight (UTC), newest day first: a search
// whose matches come day by day from an index in subject order sorts one
// day's matches at a time, and only until its page is full, instead of
// every match of the window. Its substring
// filters check each message of the day's index range.
func pageByDay(ctx context.Context, tx cachedTx, q tracking.Query, limit, offset int) ([]int64, error) {
	want := offset + limit
	var mids []int64
	for end := q.End; end.After(q.Start) && len(mids) < want; {
		start := time.Unix(0, end.Add(-time.Nanosecond).UnixNano()/dayNanos*dayNanos)
		if start.Before(q.Start) {
			start = q.Start
		}
		dq := q
		dq.Start, dq.End = start, end
		var w where
		w.build(dq)
		day, err := int64s(tx.QueryContext(ctx, `SELECT m.mid FROM messages m`+w.sql()+` ORDER BY m.injected_at DESC, m.mid DESC LIMIT ?`,
			append(w.args, want-len(mids))...))
		if err != nil {
			return nil, err
		}
		mids = append(mids, day...)
		end = start
	}
	if offset >= len(mids) {
		return nil, nil
	}
	return mids[offset:min(len(mids), want)], nil
}

// messagesByMID reads the messages of mids, newest first.
func messagesByMID(ctx context.Context, tx cachedTx, mids []int64) ([]*tracking.Message, error) {
	if len(mids) == 0 {
		return []*tracking.Message{}, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.mid IN (SELECT value FROM json_each(?))
		ORDER BY m.injected_at DESC, m.mid DESC`, jsonInts(mids))
	if err != nil {
		return nil, err
	}
	return scanMessages(rows)
}

// match is a message that matched, by MID and injection time.
type match struct{ mid, at int64 }

// matchList is the matches of a search in no order.
type matchList []match

// readMatches reads and checks the candidates of w, which drive it, and
// returns its matches, how many there are up to limit+1, and whether ms
// holds them all. It keeps the MID and time of up to scanPageMatches
// matches, enough to sort a page from, and only counts the rest. It reads
// the candidates, highest MID first, in batches that double from
// firstMatchBatch, so that a search that reaches its limit early leaves the
// rest of them alone.
func readMatches(ctx context.Context, tx cachedTx, w where, limit int) (ms matchList, total int, all bool, err error) {
	keep := min(limit+1, scanPageMatches)
	ms = make(matchList, 0, min(keep, len(w.driver)))
	next := 0 // the first candidate not read yet
	for n := firstMatchBatch; next < len(w.driver) && total <= limit; n *= 2 {
		b := w
		b.driver = w.driver[next:min(next+n, len(w.driver))]
		next += len(b.driver)
		if len(ms) == keep {
			var more int
			query, args := b.batchMatches(`SELECT count(*) FROM (SELECT 1`)
			if err := tx.QueryRowContext(ctx, query+` LIMIT ?)`, append(args, limit+1-total)...).Scan(&more); err != nil {
				return nil, 0, false, err
			}
			total += more
			continue
		}
		query, args := b.batchMatches(`SELECT m.mid, m.injected_at`)
		err := eachRow(tx.QueryContext(ctx, query+` LIMIT ?`, append(args, keep-len(ms))...))(func(rows *sql.Rows) error {
			var m match
			err := rows.Scan(&m.mid, &m.at)
			ms = append(ms, m)
			return err
		})
		if err != nil {
			return nil, 0, false, err
		}
		if total = len(ms); total == keep {
			// Stopped at the last match kept, which may be within the
			// batch: the candidates come highest MID first.
			last, _ := slices.BinarySearchFunc(w.driver, ms[len(ms)-1].mid, func(a, b int64) int { return cmp.Compare(b, a) })
			next = last + 1
		}
	}
	return ms, total, total == len(ms) && next == len(w.driver), nil
}

// firstMatchBatch is how many candidates readMatches reads at first.
const firstMatchBatch = 4096

// before returns the matches before the cursor (at, mid) in a search's
// order.
func (ms matchList) before(at, mid int64) matchList {
	return slices.DeleteFunc(ms, func(m match) bool { return m.at > at || m.at == at && m.mid >= mid })
}

// newest returns the MIDs of the n newest matches, newest first, as a
// search orders them: by injection time, then MID.
func (ms matchList) newest(n int) []int64 {
	slices.SortFunc(ms, func(a, b match) int { return cmp.Or(cmp.Compare(b.at, a.at), cmp.Compare(b.mid, a.mid)) })
	out := make([]int64, 0, min(n, len(ms)))
	for _, m := range ms[:min(n, len(ms))] {
		out = append(out, m.mid)
	}
	return out
}

// plan reads the messages w selects.
func (w *where) plan() searchPlan {
	return searchPlan{
		count: `SELECT count(*) FROM (SELECT 1 FROM messages m` + w.sql() + ` LIMIT ?)`,
		page:  `SELECT m.mid FROM messages m` + w.sql() + ` ORDER BY m.injected_at DESC, m.mid DESC LIMIT ? OFFSET ?`,
		args:  w.args,
	}
}

// tagPlan reads the messages with any of tags injected in [start, end)
// from flags alone, whose key (tag, time, MID) holds them in order: a
// common tag is counted without reading a message, and a page reads only
// its own messages.
func tagPlan(tags []string, start, end time.Time) searchPlan {
	cond, args := tagRange(tags, start, end)
	// A message has each tag once, but may have several of tags.
	distinct := ""
	if len(tags) > 1 {
		distinct = "DISTINCT "
	}
	return searchPlan{
		count: `SELECT count(*) FROM (SELECT ` + distinct + `mid FROM flags WHERE ` + cond + ` LIMIT ?)`,
		page: `SELECT mid FROM (SELECT ` + distinct + `injected_at, mid FROM flags WHERE ` + cond +
			` ORDER BY injected_at DESC, mid DESC LIMIT ? OFFSET ?)`,
		args: args,
	}
}

// soleTags returns the tags of q's only filter, one of which a message
// must have, when q has no other filter but its window.
func soleTags(q tracking.Query) ([]string, bool) {
	if len(q.SenderIPs)+len(q.MessageIDs)+len(q.MIDs)+len(q.SHA256s) > 0 || q.Direction != "" {
		return nil, false
	}
	for _, f := range []tracking.TextFilter{q.Sender, q.Recipient, q.Subject, q.AttachmentName, q.ReplyTo} {
		if f.Active() {
			return nil, false
		}
	}
	switch {
	case q.Domain.Op == tracking.OpIs && len(q.Events) == 0:
		return domainTags(q.Domain.Values), true
	case q.Domain.Active() || len(q.Events) != 1:
		return nil, false
	}
	switch c := q.Events[0].Condition(); {
	case c.Never || c.Direction != "":
		return nil, false
	case len(c.Tags) == 1 && len(c.Statuses) == 0:
		return c.Tags, true
	case len(c.Tags) == 0 && len(c.Statuses) > 0:
		return statusTags(c.Statuses), true
	}
	return nil, false
}

func domainTags(values []string) []string {
	return tagsOf(values, func(v string) string { return domainTag(domainValue(v)) })
}

func statusTags(statuses []string) []string { return tagsOf(statuses, statusTag) }

func tagsOf(values []string, tag func(string) string) []string {
	tags := make([]string, len(values))
	for i, v := range values {
		tags[i] = tag(v)
	}
	return tags
}

// domainValue is the folded domain a domain filter's value names.
func domainValue(v string) string {
	return strings.TrimPrefix(strings.TrimSpace(tracking.Fold(v)), "@")
}

// beginRead begins a read transaction on a reader connection taken in
// turn; its Rollback ends the turn.
func (s *TrackingStore) beginRead(ctx context.Context) (cachedTx, error) {
	end, err := s.db.readTurn(ctx)
	if err != nil {
		return cachedTx{}, err
	}
	tx, err := s.db.R.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		end()
		return cachedTx{}, err
	}
	return cachedTx{Tx: tx, stmts: s.reads, end: end}, nil
}

// Details implements tracking.Store.
func (s *TrackingStore) Details(ctx context.Context, mid int64) (*tracking.Message, []tracking.Event, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, nil, wrapDB("read tracking details", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m WHERE mid = ?`, mid)
	if err != nil {
		return nil, nil, wrapDB("read tracking details", err)
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, nil, wrapDB("read tracking details", err)
	}
	if len(ms) == 0 {
		return nil, nil, sightline.Errorf(sightline.NotFound, "no message with MID %d", mid)
	}
	if err := loadChildren(ctx, tx, ms); err != nil {
		return nil, nil, wrapDB("read tracking details", err)
	}
	m := ms[0]
	// Connection events come before the MID exists; ICID 0 (a message the
	// gateway generated) has no connection.
	evRows, err := tx.QueryContext(ctx, `SELECT mid, icid, dcid, time, level, summary, log, status, recipient, reply FROM (
		SELECT * FROM events WHERE mid = ?1 AND mid <> 0
		UNION ALL SELECT * FROM events WHERE mid = 0 AND icid = ?2 AND ?2 <> 0
	) ORDER BY seq`, mid, m.ICID)
	if err != nil {
		return nil, nil, wrapDB("read tracking events", err)
	}
	defer evRows.Close()
	var evs []tracking.Event
	for evRows.Next() {
		var ev tracking.Event
		var t int64
		var level string
		if err := evRows.Scan(&ev.MID, &ev.ICID, &ev.DCID, &t, &level, &ev.Summary, &ev.Log, &ev.Status, &ev.Recipient, &ev.Reply); err != nil {
			return nil, nil, wrapDB("read tracking events", err)
		}
		ev.Time, ev.Level = time.Unix(0, t).UTC(), tracking.Level(level)
		evs = append(evs, ev)
	}
	if err := evRows.Err(); err != nil {
		return nil, nil, wrapDB("read tracking events", err)
	}
	return m, evs, nil
}

func scanMessages(rows *sql.Rows) ([]*tracking.Message, error) {
	defer rows.Close()
	ms := []*tracking.Message{}
	for rows.Next() {
		m := &tracking.Message{}
		var injected int64
		var policy, flags, cfs, senderLC, senderDomainLC, replyToLC, subjectLC, midKey, to, cc string
		if err := rows.Scan(&m.MID, &m.ICID, &m.Direction, &injected, &m.SenderIP, &m.ReverseDNS, &m.HELO, &m.SBRS, &m.SenderGroup,
			&policy, &m.SMTPAuthID, &m.TLS, &m.ListenerName, &m.Sender, &senderLC, &m.SenderDomain, &senderDomainLC,
			&m.HeaderFrom, &m.FriendlyFrom, &m.ReplyTo, &replyToLC, &m.Subject, &subjectLC, &m.FinalSubject, &m.MessageID,
			&midKey, &m.Size, &m.BodySnippet, &m.Status, &m.VerdictChart, &flags, &cfs, &m.ThreatName,
			&m.SPF, &m.DKIM, &m.DMARC, &m.Quarantine, &to, &cc, &m.HasInline); err != nil {
			return nil, err
		}
		m.HeaderTo, m.HeaderCc = splitLines(to), splitLines(cc)
		m.InjectedAt = time.Unix(0, injected).UTC()
		m.MailPolicy, m.Flags, m.ContentFilters = splitLines(policy), splitLines(flags), splitLines(cfs)
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// loadChildren fills the recipients, attachments and URLs of ms.
func loadChildren(ctx context.Context, tx queryer, ms []*tracking.Message) error {
	if len(ms) == 0 {
		return nil
	}
	byMID := make(map[int64]*tracking.Message, len(ms))
	args := make([]any, len(ms))
	for i, m := range ms {
		byMID[m.MID], args[i] = m, m.MID
	}
	in := `(?` + strings.Repeat(`, ?`, len(ms)-1) + `)`
	load := func(query string, scan func(*sql.Rows) error) error {
		return eachRow(tx.QueryContext(ctx, query+` WHERE mid IN `+in+` ORDER BY mid, 2`, args...))(scan)
	}
	var mid int64
	if err := load(`SELECT mid, rid, address, status, reply FROM recipients`, func(rows *sql.Rows) error {
		var r tracking.Recipient
		if err := rows.Scan(&mid, &r.RID, &r.Address, &r.Status, &r.Reply); err != nil {
			return err
		}
		byMID[mid].Recipients = append(byMID[mid].Recipients, r)
		return nil
	}); err != nil {
		return err
	}
	if err := load(`SELECT mid, idx, name, type, size, sha256, sha1, md5 FROM attachments`, func(rows *sql.Rows) error {
		var a tracking.Attachment
		var idx int
		if err := rows.Scan(&mid, &idx, &a.Name, &a.Type, &a.Size, &a.SHA256, &a.SHA1, &a.MD5); err != nil {
			return err
		}
		byMID[mid].Attachments = append(byMID[mid].Attachments, a)
		return nil
	}); err != nil {
		return err
	}
	return load(`SELECT mid, idx, url FROM urls`, func(rows *sql.Rows) error {
		var idx int
		var u string
		if err := rows.Scan(&mid, &idx, &u); err != nil {
			return err
		}
		byMID[mid].URLs = append(byMID[mid].URLs, u)
		return nil
	})
}

// where is the WHERE clause of a search over messages m.
type where struct {
	clauses []string
	args    []any
	subs    substrings // the candidates of its substring filters
	// driven says that driver holds every message that may match: the
	// candidates of a substring filter (or those of several, intersected).
	// Each is then read to be checked.
	driven bool
	driver midSet
	// byDay says that days listed the window's day numbers: the matches
	// come from an index by day, in another order than time.
	byDay bool
}

// queryNeeds returns the lookups of the "contains" filters of q.
func queryNeeds(q tracking.Query) []substringKey {
	var needs []substringKey
	for _, ff := range []struct {
		f     tracking.TextFilter
		field textField
	}{{q.Sender, senderField}, {q.Subject, subjectField}, {q.ReplyTo, replyToField},
		{q.Recipient, recipientField}, {q.AttachmentName, attachmentField}, {q.Domain, domainField}} {
		if ff.f.Op != tracking.OpContains {
			continue
		}
		for _, v := range ff.f.Values {
			if v = ff.field.fold(v); indexable(v) {
				needs = append(needs, keyOf([]gramField{ff.field.gram}, v))
			}
		}
	}
	return needs
}

// midRange returns the lowest and highest MID of the messages injected in
// [start, end) (a zero bound is open), from mid_ranges: a superset of the
// window's MIDs; empty (1, 0) when no hour of the window has messages.
func midRange(ctx context.Context, tx cachedTx, start, end time.Time) ([]int64, error) {
	first, last := int64(math.MinInt64), int64(math.MaxInt64)
	if !start.IsZero() {
		first = hourOf(start.UnixNano())
	}
	if !end.IsZero() {
		last = hourOf(end.UnixNano() - 1)
	}
	var lo, hi int64
	err := tx.QueryRowContext(ctx, `SELECT coalesce(min(min_mid), 1), coalesce(max(max_mid), 0) FROM mid_ranges
		WHERE hour BETWEEN ? AND ?`, first, last).Scan(&lo, &hi)
	return []int64{lo, hi}, err
}

func (w *where) add(clause string, args ...any) {
	w.clauses = append(w.clauses[:len(w.clauses):len(w.clauses)], clause)
	w.args = append(w.args[:len(w.args):len(w.args)], args...)
}

// drive narrows w's driver to the candidates cands of one of its filters.
func (w *where) drive(cands midSet) {
	if w.driven {
		cands = w.driver.intersect(cands)
	}
	w.driven, w.driver = true, cands
}

func (w *where) sql() string {
	if len(w.clauses) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.clauses, " AND ")
}

// textField says where a tracking.TextFilter looks: gram is its field in
// the substring index, pred its exact condition on messages m for one
// folded value.
type textField struct {
	gram gramField
	pred func(op tracking.Op, v string) (string, []any)
}

// fold returns the filter value v as pred compares it.
func (f textField) fold(v string) string {
	if f.gram == gramDomains {
		return domainValue(v)
	}
	return tracking.Fold(v)
}

// textPred is the condition of op on the folded column col.
func textPred(op tracking.Op, col, v string) (string, []any) {
	switch op {
	case tracking.OpIs:
		return col + " = ?", []any{v}
	case tracking.OpBeginsWith:
		// 0xFF never occurs in UTF-8 and SQLite compares text bytewise, so
		// this range holds exactly the strings beginning with v.
		return col + " >= ? AND " + col + " < ?", []any{v, v + "\xff"}
	}
	return "instr(" + col + ", ?) > 0", []any{v}
}

// scalar is a column of messages.
func scalar(col string) func(tracking.Op, string) (string, []any) {
	return func(op tracking.Op, v string) (string, []any) { return textPred(op, "m."+col, v) }
}

// list is a column of a child table: any row matches. Exact and prefix
// matches look the index up; "contains" checks the rows of each candidate.
func list(table, col string) func(tracking.Op, string) (string, []any) {
	return func(op tracking.Op, v string) (string, []any) {
		if op == tracking.OpContains {
			p, a := textPred(op, "x."+col, v)
			return "EXISTS (SELECT 1 FROM " + table + " x WHERE x.mid = m.mid AND " + p + ")", a
		}
		p, a := textPred(op, col, v)
		return "m.mid IN (SELECT mid FROM " + table + " WHERE " + p + ")", a
	}
}

// either matches when a or b does.
func either(a, b func(tracking.Op, string) (string, []any)) func(tracking.Op, string) (string, []any) {
	return func(op tracking.Op, v string) (string, []any) {
		pa, aa := a(op, v)
		pb, ab := b(op, v)
		return "(" + pa + " OR " + pb + ")", append(aa, ab...)
	}
}

var (
	senderField     = textField{gramSender, scalar("sender_lc")}
	subjectField    = textField{gramSubject, scalar("subject_lc")}
	replyToField    = textField{gramReplyTo, scalar("reply_to_lc")}
	recipientField  = textField{gramRecipients, list("recipients", "address_lc")}
	attachmentField = textField{gramAttachments, list("attachments", "name_lc")}
	domainField     = textField{gramDomains, either(scalar("sender_domain_lc"), list("recipients", "domain"))}
)

// build fills w from q and reports false when q can match nothing.
func (w *where) build(q tracking.Query) bool {
	// With a filter that looks up few rows by its own index, keep SQLite
	// from scanning the time index instead (it cannot tell a prefix range
	// from a time range): the unary + makes the time bounds a plain check.
	t := "m.injected_at"
	if selective(q) {
		t = "+m.injected_at"
	}
	if !q.Start.IsZero() {
		w.add(t+" >= ?", q.Start.UnixNano())
	}
	if !q.End.IsZero() {
		w.add(t+" < ?", q.End.UnixNano())
	}
	w.text(q.Sender, senderField)
	w.text(q.Subject, subjectField)
	if q.Subject.Op == tracking.OpBeginsWith {
		w.days(q.Start, q.End)
	}
	w.text(q.ReplyTo, replyToField)
	w.text(q.Recipient, recipientField)
	w.text(q.AttachmentName, attachmentField)
	if q.Domain.Op == tracking.OpIs {
		w.tags(domainTags(q.Domain.Values), q.Start, q.End)
	} else {
		w.text(q.Domain, domainField)
	}
	if len(q.SenderIPs) > 0 {
		ips := make([]string, len(q.SenderIPs))
		for i, s := range q.SenderIPs {
			if ips[i], _ = tracking.CanonicalIP(s); ips[i] == "" {
				ips[i] = s
			}
		}
		w.in("m.sender_ip IN ", ips)
	}
	if len(q.MessageIDs) > 0 {
		keys := make([]string, len(q.MessageIDs))
		for i, s := range q.MessageIDs {
			keys[i] = tracking.MessageIDKey(s)
		}
		w.in("m.message_id_key IN ", keys)
	}
	if len(q.MIDs) > 0 {
		w.in("m.mid IN ", q.MIDs)
	}
	if len(q.SHA256s) > 0 {
		hs := make([]string, len(q.SHA256s))
		for i, h := range q.SHA256s {
			hs[i] = strings.ToLower(strings.TrimSpace(h))
		}
		w.in("m.mid IN (SELECT mid FROM attachments WHERE sha256 IN ", hs, ")")
	}
	if q.Direction != "" {
		w.add("m.direction = ?", q.Direction)
	}
	for _, c := range q.Conditions() {
		if c.Never {
			return false
		}
		for _, t := range c.Tags {
			w.tags([]string{t}, q.Start, q.End)
		}
		if len(c.Statuses) > 0 {
			// Row by row rather than as a set: a common status would make
			// a set of most of the store, whatever the window.
			w.in("EXISTS (SELECT 1 FROM flags f WHERE f.flag IN ", statusTags(c.Statuses),
				" AND f.injected_at = m.injected_at AND f.mid = m.mid)")
		}
		if c.Direction != "" {
			w.add("m.direction = ?", c.Direction)
		}
	}
	return true
}

// selective reports whether q has a filter answered by an exact or prefix
// index lookup.
func selective(q tracking.Query) bool {
	for _, f := range []tracking.TextFilter{q.Sender, q.Recipient, q.Subject, q.AttachmentName, q.Domain, q.ReplyTo} {
		if f.Op == tracking.OpIs || f.Op == tracking.OpBeginsWith {
			return true
		}
	}
	return len(q.SenderIPs)+len(q.MessageIDs)+len(q.MIDs)+len(q.SHA256s) > 0
}

// maxProbeDays bounds the days where.days lists.
const maxProbeDays = 400

// days adds the condition that the message's day number is one of those of
// the window [start, end). Every message of the window meets it; it lets
// SQLite read a subject prefix from messages_subject_day one day at a time
// (and Search its page: pageByDay),
// the window's entries only. A window without both bounds, starting before
// 1970, or longer than maxProbeDays, adds nothing.
func (w *where) days(start, end time.Time) {
	// Before 1970, the division would round towards the next day.
	if start.IsZero() || end.IsZero() || !start.Before(end) || start.UnixNano() < 0 {
		return
	}
	day := func(t time.Time) int64 { return t.UnixNano() / dayNanos }
	first, last := day(start), day(end.Add(-time.Nanosecond))
	if last-first >= maxProbeDays {
		return
	}
	args := make([]any, 0, last-first+1)
	for d := first; d <= last; d++ {
		args = append(args, d)
	}
	w.add("m."+dayExpr+" IN "+placeholders(len(args)), args...)
	w.byDay = true
}

// tags adds the condition that the message has one of tags, looked up
// within the window [start, end) when it has bounds.
func (w *where) tags(tags []string, start, end time.Time) {
	cond, args := tagRange(tags, start, end)
	w.add("m.mid IN (SELECT mid FROM flags WHERE "+cond+")", args...)
}

// tagRange is the condition on flags of having one of tags within the
// window [start, end).
func tagRange(tags []string, start, end time.Time) (string, []any) {
	cond, args := "flag IN "+placeholders(len(tags)), make([]any, 0, len(tags)+2)
	for _, t := range tags {
		args = append(args, t)
	}
	if !start.IsZero() {
		cond, args = cond+" AND injected_at >= ?", append(args, start.UnixNano())
	}
	if !end.IsZero() {
		cond, args = cond+" AND injected_at < ?", append(args, end.UnixNano())
	}
	return cond, args
}

func (w *where) in(prefix string, vals any, suffix ...string) {
	var args []any
	switch vs := vals.(type) {
	case []string:
		for _, v := range vs {
			args = append(args, v)
		}
	case []int64:
		for _, v := range vs {
			args = append(args, v)
		}
	}
	w.add(prefix+placeholders(len(args))+strings.Join(suffix, ""), args...)
}

func placeholders(n int) string { return "(?" + strings.Repeat(", ?", n-1) + ")" }

// text adds the condition of f on field: its values are alternatives.
func (w *where) text(f tracking.TextFilter, field textField) {
	if !f.Active() {
		return
	}
	if f.Op == tracking.OpIsEmpty {
		w.add("m.subject_lc = ''")
		return
	}
	ors := make([]string, 0, len(f.Values))
	var args []any
	// The substring index finds the candidates of each value (not of one
	// shorter than 3 characters); pred keeps the match exact.
	var cands midSet
	found := f.Op == tracking.OpContains
	for _, v := range f.Values {
		v = field.fold(v)
		clause, a := field.pred(f.Op, v)
		c, ok := w.subs.candidates([]gramField{field.gram}, v)
		cands, found = cands.union(c), found && ok
		ors = append(ors, "("+clause+")")
		args = append(args, a...)
	}
	w.add("("+strings.Join(ors, " OR ")+")", args...)
	if found {
		w.drive(cands)
	}
}
