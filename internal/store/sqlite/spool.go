package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline"
	"github.com/sightline/sightline/internal/gateway/mailflow"
	"github.com/sightline/sightline/internal/gateway/queue"
)

//go:embed spool.sql
var spoolSchema string

// SpoolMigrations is the schema of a spool database.
var SpoolMigrations = []Migration{{Version: 1, SQL: spoolSchema}}

// spoolMaxBatch bounds how many operations share one transaction, so that a
// flood of writers still sees commits at a steady pace.
const spoolMaxBatch = 512

// When the operations waiting for a commit are at least spoolGatherMin,
// several writers are committing at once, and the committer holds the batch
// open up to spoolGatherDelay longer for the next ones: on a disk whose fsync
// is fast, batches stay small otherwise, and a commit's fixed cost (the
// fsync, WAL frame headers, SQLite's page cache bookkeeping) is most of the
// spool's CPU. A lone writer, such as one SMTP session at a time, is never
// held.
//
// A step of the mail pipeline (screened, delivery update) has no client
// waiting on a socket: a batch of nothing else is held up to spoolStepDelay
// for an operation that has (an SMTP acceptance, an administrator's action),
// and then commits with it. One message at a time thus costs one commit, not
// three.
const (
	spoolGatherMin   = 4
	spoolGatherDelay = 2 * time.Millisecond
	spoolStepDelay   = 5 * time.Millisecond
)

// spoolConnLifetime renews the writer's connection, and with it its page
// cache. SQLite's B-tree balance briefly gives a page the number of the lock
// page at 1 GiB, after which the commit scans the connection's whole page
// cache (unless the database is larger than 1 GiB). In this driver all
// connections share one page pool, so the spool's cache grows well past its
// cache_size, and the scan with it: a quarter of a millisecond per commit
// after a minute of load. A cache that lives a second stays small; renewing
// costs well under a millisecond.
const spoolConnLifetime = time.Second

// Spool implements queue.Spool on a durable (synchronous=FULL) SQLite file.
//
// All writes go through one committer goroutine: the operations that
// concurrent callers submit while a commit is in progress are applied
// together in the next transaction, which costs one fsync for all of them
// (group commit). Each caller returns once its own operation is durable.
type Spool struct {
	db      *DB
	ops     chan *spoolOp
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the committer has exited
	once    sync.Once
	commits atomic.Int64
	applied atomic.Int64
	writes  *stmtCache // the operations' statements, prepared once on the writer

	gatherMin   int           // spoolGatherMin; tests change it
	gatherDelay time.Duration // spoolGatherDelay; tests change it
	stepDelay   time.Duration // spoolStepDelay; tests change it
}

type spoolOp struct {
	ctx  context.Context // the caller's; checked before the op runs, not passed to SQL
	step bool            // a pipeline step: it may wait for company (spoolStepDelay)
	fn   func(ctx context.Context, tx cachedTx) error
	errc chan error // buffered: the committer never blocks on a caller
}

var errSpoolClosed = sightline.Errorf(sightline.Unavailable, "spool is closed")

var _ queue.Spool = (*Spool)(nil)

// OpenSpool opens (creating it if needed) the spool database at path and
// starts its committer. Close it to stop the committer.
func OpenSpool(ctx context.Context, path string) (*Spool, error) {
	db, err := Open(ctx, path, Options{Durable: true}, SpoolMigrations)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	db.W.SetConnMaxLifetime(spoolConnLifetime)
	s := &Spool{
		db:      db,
		ops:     make(chan *spoolOp, spoolMaxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		writes:  newStmtCache(db.W),

		gatherMin:   spoolGatherMin,
		gatherDelay: spoolGatherDelay,
		stepDelay:   spoolStepDelay,
	}
	go s.commitLoop()
	return s, nil
}

// Close stops the committer, failing the operations not yet started, and
// closes the database.
func (s *Spool) Close() error {
	s.once.Do(func() { close(s.closing) })
	<-s.done
	s.writes.Close()
	return s.db.Close()
}

// SpoolStats counts the spool's work since it was opened.
type SpoolStats struct {
	Commits    int64 // transactions committed, one fsync each
	Operations int64 // write operations applied in them
}

// Stats reports how many commits carried how many operations.
func (s *Spool) Stats() SpoolStats {
	return SpoolStats{Commits: s.commits.Load(), Operations: s.applied.Load()}
}

// write submits fn to the committer and waits until it is durable. When ctx
// ends first, write returns ctx.Err() and fn may still be committed later.
func (s *Spool) write(ctx context.Context, fn func(ctx context.Context, tx cachedTx) error) error {
	return s.submit(ctx, &spoolOp{ctx: ctx, fn: fn, errc: make(chan error, 1)})
}

// writeStep is write for a step of the mail pipeline (spoolStepDelay).
func (s *Spool) writeStep(ctx context.Context, fn func(ctx context.Context, tx cachedTx) error) error {
	return s.submit(ctx, &spoolOp{ctx: ctx, step: true, fn: fn, errc: make(chan error, 1)})
}

func (s *Spool) submit(ctx context.Context, op *spoolOp) error {
	select {
	case s.ops <- op:
	case <-s.closing:
		return errSpoolClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case err := <-op.errc:
			return err
		default:
			return errSpoolClosed
		}
	}
}

func (s *Spool) commitLoop() {
	defer close(s.done)
	batch := make([]*spoolOp, 0, spoolMaxBatch)
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	for {
		batch = batch[:0]
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		case <-s.closing:
			return
		}
		var held <-chan time.Time // while the batch is held open
		waiting := !batch[0].step // operations with a client waiting
	gather:
		for len(batch) < spoolMaxBatch {
			// The batch grows one operation at a time: it reaches
			// gatherMin once, and is held for the writers behind it from
			// then on; before, a batch of steps only is held for company.
			gathering := len(batch) >= s.gatherMin
			switch {
			case len(batch) == s.gatherMin:
				hold.Reset(s.gatherDelay)
				held = hold.C
			case !gathering && !waiting && held == nil:
				hold.Reset(s.stepDelay)
				held = hold.C
			case !gathering && waiting && held != nil:
				hold.Stop()
				held = nil
			}
			if held == nil { // take what is waiting, without waiting
				select {
				case op := <-s.ops:
					batch = append(batch, op)
					waiting = waiting || !op.step
					continue
				default:
					break gather
				}
			}
			select {
			case op := <-s.ops:
				batch = append(batch, op)
				waiting = waiting || !op.step
			case <-held:
				held = nil
				break gather
			case <-s.closing:
				break gather
			}
		}
		if held != nil {
			hold.Stop()
		}
		s.commit(batch)
	}
}

// commit applies batch in one transaction. An operation that fails is left
// out and the others are applied again in a fresh transaction, so that one
// bad operation never takes its neighbours down with it.
func (s *Spool) commit(batch []*spoolOp) {
	ctx := context.Background()
	live := make([]*spoolOp, 0, len(batch))
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.errc <- err
			continue
		}
		live = append(live, op)
	}
	for len(live) > 0 {
		failed, err := s.apply(ctx, live)
		if failed >= 0 {
			live[failed].errc <- err
			live = append(live[:failed], live[failed+1:]...)
			continue
		}
		if err == nil {
			s.commits.Add(1)
			s.applied.Add(int64(len(live)))
		}
		for _, op := range live {
			op.errc <- err
		}
		return
	}
}

// apply runs ops in one transaction and commits it. It returns the index of
// the first operation that failed with its error (the transaction then rolled
// back), or -1 and the commit's error.
func (s *Spool) apply(ctx context.Context, ops []*spoolOp) (int, error) {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return -1, fmt.Errorf("spool: begin: %w", err)
	}
	for i, op := range ops {
		if err := op.fn(ctx, cachedTx{Tx: tx, stmts: s.writes}); err != nil {
			tx.Rollback()
			return i, err
		}
	}
	if err := tx.Commit(); err != nil {
		return -1, fmt.Errorf("spool: commit: %w", err)
	}
	return -1, nil
}

// Add implements queue.Spool.
func (s *Spool) Add(ctx context.Context, env *mailflow.Envelope, data []byte, state string) error {
	if state != queue.StateNew && state != queue.StateQueued {
		return sightline.Errorf(sightline.Invalid, "spool: add message %d in state %q", env.MID, state)
	}
	envJSON, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("spool: encode envelope of message %d: %w", env.MID, err)
	}
	return s.write(ctx, func(ctx context.Context, tx cachedTx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO spool_message (mid, state, envelope) VALUES (?, ?, ?)
			ON CONFLICT (mid) DO NOTHING`, env.MID, state, envJSON)
		if err != nil {
			return fmt.Errorf("spool: add message %d: %w", env.MID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sightline.Errorf(sightline.Conflict, "message %d is already spooled", env.MID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO spool_body (mid, data) VALUES (?, ?)`, env.MID, data); err != nil {
			return fmt.Errorf("spool: add body of message %d: %w", env.MID, err)
		}
		for rid, addr := range env.Recipients {
			_, err := tx.ExecContext(ctx, `INSERT INTO spool_recipient (mid, rid, address, state) VALUES (?, ?, ?, ?)`,
				env.MID, rid, addr, queue.RcptPending)
			if err != nil {
				return fmt.Errorf("spool: add recipient %d of message %d: %w", rid, env.MID, err)
			}
		}
		return nil
	})
}

// Screened implements queue.Spool.
func (s *Spool) Screened(ctx context.Context, mid int64, d queue.Disposition) error {
	var quarantinedAt int64
	switch d.State {
	case queue.StateQueued:
	case queue.StateQuarantined:
		quarantinedAt = time.Now().UnixNano()
	default:
		return sightline.Errorf(sightline.Invalid, "spool: message %d screened into state %q", mid, d.State)
	}
	return s.writeStep(ctx, func(ctx context.Context, tx cachedTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE spool_message SET state = ?, quarantine = ?, status = ?, reason = ?, subject = ?, quarantined_at = ?
			WHERE mid = ? AND state = ?`, d.State, d.Quarantine, d.Status, d.Reason, d.Subject, quarantinedAt, mid, queue.StateNew)
		if err != nil {
			return fmt.Errorf("spool: screened message %d: %w", mid, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sightline.Errorf(sightline.NotFound, "message %d is not waiting for screening", mid)
		}
		if d.Data != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE spool_body SET data = ? WHERE mid = ?`, d.Data, mid); err != nil {
				return fmt.Errorf("spool: rewrite message %d: %w", mid, err)
			}
		}
		return nil
	})
}

// Update implements queue.Spool.
func (s *Spool) Update(ctx context.Context, mid int64, rcpts []queue.RecipientState) (bool, error) {
	var done bool
	err := s.writeStep(ctx, func(ctx context.Context, tx cachedTx) error {
		done = false
		for _, r := range rcpts {
			res, err := tx.ExecContext(ctx, `UPDATE spool_recipient SET state = ?, attempts = ?, next_attempt = ?, last_reply = ?
				WHERE mid = ? AND rid = ?`, r.State, r.Attempts, spoolNanos(r.NextAttempt), r.LastReply, mid, r.RID)
			if err != nil {
				return fmt.Errorf("spool: update recipient %d of message %d: %w", r.RID, mid, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return sightline.Errorf(sightline.NotFound, "message %d has no recipient %d in the spool", mid, r.RID)
			}
		}
		var open int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM spool_recipient WHERE mid = ? AND state IN (?, ?)`,
			mid, queue.RcptPending, queue.RcptDeferred).Scan(&open)
		if err != nil {
			return fmt.Errorf("spool: count open recipients of message %d: %w", mid, err)
		}
		if open > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM spool_message WHERE mid = ?`, mid); err != nil {
			return fmt.Errorf("spool: remove finished message %d: %w", mid, err)
		}
		done = true
		return nil
	})
	if err != nil { // done may still be written by the committer
		return false, err
	}
	return done, nil
}

// Remove implements queue.Spool.
func (s *Spool) Remove(ctx context.Context, mid int64, state string) error {
	return s.write(ctx, func(ctx context.Context, tx cachedTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM spool_message WHERE mid = ? AND (? = '' OR state = ?)`, mid, state, state)
		if err != nil {
			return fmt.Errorf("spool: remove message %d: %w", mid, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if state != "" {
				return sightline.Errorf(sightline.NotFound, "message %d is not %s", mid, state)
			}
			return sightline.Errorf(sightline.NotFound, "message %d is not in the spool", mid)
		}
		return nil
	})
}

// Release implements queue.Spool.
func (s *Spool) Release(ctx context.Context, mid int64) (*queue.SpooledMessage, error) {
	var m *queue.SpooledMessage
	err := s.write(ctx, func(ctx context.Context, tx cachedTx) error {
		var err error
		m, err = spoolMessage(ctx, tx, mid)
		if err != nil {
			return err
		}
		if m.State != queue.StateQuarantined {
			return sightline.Errorf(sightline.NotFound, "message %d is not quarantined", mid)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE spool_message SET state = ? WHERE mid = ?`, queue.StateQueued, mid); err != nil {
			return fmt.Errorf("spool: release message %d: %w", mid, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE spool_recipient SET state = ?, next_attempt = 0 WHERE mid = ? AND state = ?`,
			queue.RcptPending, mid, queue.RcptDeferred)
		if err != nil {
			return fmt.Errorf("spool: release message %d: %w", mid, err)
		}
		m.State = queue.StateQueued
		m.Recipients, err = spoolRecipients(ctx, tx, mid)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Unfinished implements queue.Spool.
func (s *Spool) Unfinished(ctx context.Context, fn func(*queue.SpooledMessage) error) error {
	// Read in pages by MID so that fn may write to the spool meanwhile
	// without holding a read transaction open for the whole scan.
	const page = 256
	var after int64 = -1 << 63
	for {
		ms, err := s.messages(ctx, `WHERE state IN (?, ?) AND mid > ? ORDER BY mid LIMIT ?`,
			queue.StateNew, queue.StateQueued, after, page)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Recipients, err = spoolRecipients(ctx, s.db.R, m.Envelope.MID); err != nil {
				return err
			}
			if err := fn(m); err != nil {
				return err
			}
			after = m.Envelope.MID
		}
		if len(ms) < page {
			return nil
		}
	}
}

// Message implements queue.Spool.
func (s *Spool) Message(ctx context.Context, mid int64) (*queue.SpooledMessage, error) {
	m, err := spoolMessage(ctx, s.db.R, mid)
	if err != nil {
		return nil, err
	}
	if m.Recipients, err = spoolRecipients(ctx, s.db.R, mid); err != nil {
		return nil, err
	}
	return m, nil
}

// Body implements queue.Spool.
func (s *Spool) Body(ctx context.Context, mid int64) ([]byte, error) {
	var data []byte
	err := s.db.R.QueryRowContext(ctx, `SELECT data FROM spool_body WHERE mid = ?`, mid).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sightline.Errorf(sightline.NotFound, "message %d is not in the spool", mid)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: read message %d: %w", mid, err)
	}
	return data, nil
}

// Quarantined implements queue.Spool.
func (s *Spool) Quarantined(ctx context.Context, name string, offset, limit int) ([]*queue.SpooledMessage, error) {
	if limit <= 0 {
		limit = -1
	}
	where, args := `WHERE state = ?`, []any{queue.StateQuarantined}
	if name != "" {
		where += ` AND quarantine = ?`
		args = append(args, name)
	}
	args = append(args, limit, max(offset, 0))
	ms, err := s.messages(ctx, where+` ORDER BY quarantined_at DESC, mid DESC LIMIT ? OFFSET ?`, args...)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Recipients, err = spoolRecipients(ctx, s.db.R, m.Envelope.MID); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// Counts implements queue.Spool.
func (s *Spool) Counts(ctx context.Context) (queue.SpoolCounts, error) {
	var c queue.SpoolCounts
	rows, err := s.db.R.QueryContext(ctx, `SELECT state, count(*) FROM spool_message GROUP BY state`)
	if err != nil {
		return c, fmt.Errorf("spool: count messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return c, fmt.Errorf("spool: count messages: %w", err)
		}
		switch state {
		case queue.StateNew:
			c.New = n
		case queue.StateQueued:
			c.Queued = n
		case queue.StateQuarantined:
			c.Quarantined = n
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("spool: count messages: %w", err)
	}
	err = s.db.R.QueryRowContext(ctx, `SELECT count(DISTINCT mid) FROM spool_recipient WHERE state = ?`, queue.RcptDeferred).Scan(&c.Deferred)
	if err != nil {
		return c, fmt.Errorf("spool: count deferred messages: %w", err)
	}
	return c, nil
}

// spoolQuerier is what both a transaction and the read pool offer.
type spoolQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const spoolMessageColumns = `SELECT mid, state, envelope, quarantine, status, reason, subject, quarantined_at FROM spool_message `

func (s *Spool) messages(ctx context.Context, where string, args ...any) ([]*queue.SpooledMessage, error) {
	rows, err := s.db.R.QueryContext(ctx, spoolMessageColumns+where, args...)
	if err != nil {
		return nil, fmt.Errorf("spool: list messages: %w", err)
	}
	defer rows.Close()
	var ms []*queue.SpooledMessage
	for rows.Next() {
		m, err := spoolScanMessage(rows)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spool: list messages: %w", err)
	}
	return ms, nil
}

func spoolMessage(ctx context.Context, q spoolQuerier, mid int64) (*queue.SpooledMessage, error) {
	m, err := spoolScanMessage(q.QueryRowContext(ctx, spoolMessageColumns+`WHERE mid = ?`, mid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sightline.Errorf(sightline.NotFound, "message %d is not in the spool", mid)
	}
	return m, err
}

func spoolScanMessage(row interface{ Scan(...any) error }) (*queue.SpooledMessage, error) {
	var (
		m             queue.SpooledMessage
		mid           int64
		envJSON       []byte
		quarantinedAt int64
	)
	if err := row.Scan(&mid, &m.State, &envJSON, &m.Quarantine, &m.Status, &m.Reason, &m.Subject, &quarantinedAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("spool: read message: %w", err)
	}
	if err := json.Unmarshal(envJSON, &m.Envelope); err != nil {
		return nil, fmt.Errorf("spool: decode envelope of message %d: %w", mid, err)
	}
	if quarantinedAt != 0 {
		m.QuarantinedAt = time.Unix(0, quarantinedAt)
	}
	return &m, nil
}

func spoolRecipients(ctx context.Context, q spoolQuerier, mid int64) ([]queue.RecipientState, error) {
	rows, err := q.QueryContext(ctx, `SELECT rid, address, state, attempts, next_attempt, last_reply
		FROM spool_recipient WHERE mid = ? ORDER BY rid`, mid)
	if err != nil {
		return nil, fmt.Errorf("spool: read recipients of message %d: %w", mid, err)
	}
	defer rows.Close()
	var rs []queue.RecipientState
	for rows.Next() {
		var r queue.RecipientState
		var next int64
		if err := rows.Scan(&r.RID, &r.Address, &r.State, &r.Attempts, &next, &r.LastReply); err != nil {
			return nil, fmt.Errorf("spool: read recipients of message %d: %w", mid, err)
		}
		if next != 0 {
			r.NextAttempt = time.Unix(0, next)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spool: read recipients of message %d: %w", mid, err)
	}
	return rs, nil
}

func spoolNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
