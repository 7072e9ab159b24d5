package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sightline/sightline/internal/tracking"
)

// The substring index (grams, tracking_grams.go) is written behind ingest.
// Apply queues every saved MID in search_queue; the indexer writes the
// queued messages' trigrams in large batches once ingest pauses, or once a
// message has waited IndexMaxLag. A batch rewrites each chunk bitmap it
// touches once, and a burst of mail is not slowed by indexing at all.
//
// Searches never lag: a substring condition takes the queued messages as
// candidates too and checks them by scanning (see contains and where.text).
// Between batches, the indexer seals complete eras (tracking_eras.go).

// Indexer timing: it starts after IndexIdle without an Apply, or when the
// oldest queued message has waited IndexMaxLag, and writes up to IndexBatch
// messages per transaction, letting Apply in between.
const (
	IndexIdle   = 100 * time.Millisecond
	IndexMaxLag = 2 * time.Second
	IndexBatch  = 2000
)

// indexer is the background writer of the substring index.
type indexer struct {
	kick      chan struct{} // buffered 1: work may be queued
	lastApply atomic.Int64  // Unix nanoseconds of the last Apply
	stop      context.CancelFunc
	done      chan struct{}
}

// StartIndexer starts writing queued messages' trigrams in the
// background until Close, logging failures to logger (which may be nil for
// slog.Default). Only one store on a file should run it; a store without it
// stays correct, and searches scan what is queued.
func (s *TrackingStore) StartIndexer(logger *slog.Logger) {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ix := &indexer{kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	ix.kick <- struct{}{} // whatever an earlier run left queued
	s.ix = ix
	go s.indexLoop(ctx, logger.With("component", "tracking_index"))
}

func (s *TrackingStore) stopIndexer() {
	if s.ix != nil {
		s.ix.stop()
		<-s.ix.done
	}
}

// applied tells the indexer that Apply queued messages.
func (s *TrackingStore) applied() {
	if s.ix == nil {
		return
	}
	s.ix.lastApply.Store(time.Now().UnixNano())
	s.ix.wake()
}

// wake makes the indexer look at the queue again.
func (ix *indexer) wake() {
	select {
	case ix.kick <- struct{}{}:
	default:
	}
}

func (s *TrackingStore) indexLoop(ctx context.Context, logger *slog.Logger) {
	ix := s.ix
	defer close(ix.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ix.kick:
		}
		// Wait for a pause in ingest, at most IndexMaxLag.
		first := time.Now()
		for {
			idle := time.Since(time.Unix(0, ix.lastApply.Load()))
			wait := min(IndexIdle-idle, IndexMaxLag-time.Since(first))
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		for {
			n, err := s.IndexPending(ctx, IndexBatch)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				logger.Error("indexing tracking search failed; retrying", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				s.applied()
				break
			}
			if n < IndexBatch {
				break
			}
		}
		// Then seal one step of what is complete, and look at the queue
		// again before the next.
		switch sealed, err := s.sealStep(ctx); {
		case err != nil && ctx.Err() == nil:
			logger.Error("sealing the tracking search index failed; retrying after the next message", "err", err)
		case sealed:
			ix.wake()
		}
	}
}

// indexStmts are the statements of IndexPending.
type indexStmts struct {
	pending, message, recipients, attachments, urls, upsert, dequeue *sql.Stmt
}

func (p *indexStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&p.pending, &p.message, &p.recipients, &p.attachments, &p.urls, &p.upsert, &p.dequeue}
}

func prepareIndex(ctx context.Context, w *sql.DB) (*indexStmts, error) {
	p := &indexStmts{}
	return p, prepareAll(ctx, w, p.all(), []string{
		`SELECT mid FROM search_queue ORDER BY mid LIMIT ?`,
		`SELECT subject_lc, sender_lc, reply_to_lc, sender_domain_lc,
			header_from || char(10) || friendly_from, body_snippet, reverse_dns || char(10) || helo,
			header_to, header_cc
			FROM messages WHERE mid = ?`,
		`SELECT address_lc, domain FROM recipients WHERE mid = ? ORDER BY rid`,
		`SELECT name_lc FROM attachments WHERE mid = ? ORDER BY idx`,
		`SELECT url FROM urls WHERE mid = ? ORDER BY idx`,
		upsertGramSQL,
		`DELETE FROM search_queue WHERE mid = ?`,
	})
}

// IndexPending writes the trigrams of up to max queued messages, oldest
// first, in one transaction, and returns how many it indexed.
func (s *TrackingStore) IndexPending(ctx context.Context, max int) (int, error) {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return 0, wrapDB("index tracking search", err)
	}
	defer tx.Rollback()
	st := bindAll(ctx, tx, s.index.all(), &indexStmts{})
	defer closeAll(st.all())
	mids, err := int64s(st.pending.QueryContext(ctx, max))
	if err != nil {
		return 0, wrapDB("index tracking search", err)
	}
	batch := gramBatch{}
	for _, mid := range mids {
		if err := st.indexMessage(ctx, batch, mid); err != nil {
			return 0, wrapDB(fmt.Sprintf("index tracking search of MID %d", mid), err)
		}
	}
	if err := batch.write(ctx, st.upsert); err != nil {
		return 0, wrapDB("index tracking search", err)
	}
	if err := batch.markDirty(ctx, tx); err != nil {
		return 0, wrapDB("index tracking search", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, wrapDB("index tracking search", err)
	}
	return len(mids), nil
}

// indexMessage adds the trigrams of one message to batch and dequeues it.
// Every text is folded as the exact conditions of a search fold it
// (textCol): the index holds each trigram they can find.
func (st *indexStmts) indexMessage(ctx context.Context, batch gramBatch, mid int64) error {
	var subject, sender, replyTo, senderDomain, from, body, host, to, cc string
	err := st.message.QueryRowContext(ctx, mid).Scan(&subject, &sender, &replyTo, &senderDomain, &from, &body, &host, &to, &cc)
	if err == sql.ErrNoRows { // gone since it was queued
		_, err = st.dequeue.ExecContext(ctx, mid)
		return err
	}
	if err != nil {
		return err
	}
	for _, t := range []struct {
		field gramField
		text  string
	}{
		{gramSubject, subject}, {gramSender, sender}, {gramReplyTo, replyTo}, {gramDomains, senderDomain},
		{gramHeaderFrom, tracking.Fold(from)}, {gramBody, tracking.Fold(body)}, {gramHost, tracking.Fold(host)},
		{gramHeaderTo, tracking.Fold(to)}, {gramHeaderCc, tracking.Fold(cc)},
	} {
		batch.add(t.field, mid, t.text)
	}
	if err := scanRows(ctx, st.recipients, mid, func(rows *sql.Rows) error {
		var addr, domain string
		err := rows.Scan(&addr, &domain)
		batch.add(gramRecipients, mid, addr)
		batch.add(gramDomains, mid, domain)
		return err
	}); err != nil {
		return err
	}
	if err := scanRows(ctx, st.attachments, mid, func(rows *sql.Rows) error {
		var name string
		err := rows.Scan(&name)
		batch.add(gramAttachments, mid, name)
		return err
	}); err != nil {
		return err
	}
	if err := scanRows(ctx, st.urls, mid, func(rows *sql.Rows) error {
		var u string
		err := rows.Scan(&u)
		batch.add(gramURL, mid, tracking.Fold(u))
		return err
	}); err != nil {
		return err
	}
	_, err = st.dequeue.ExecContext(ctx, mid)
	return err
}

// bindAll binds the prepared statements src to tx into the fields of dst
// (the same struct type, as dst.all() lists them).
func bindAll[T interface{ all() []**sql.Stmt }](ctx context.Context, tx *sql.Tx, src []**sql.Stmt, dst T) T {
	for i, d := range dst.all() {
		*d = tx.StmtContext(ctx, *src[i])
	}
	return dst
}

// scanRows runs st with arg and calls scan for each row.
func scanRows(ctx context.Context, st *sql.Stmt, arg any, scan func(*sql.Rows) error) error {
	return eachRow(st.QueryContext(ctx, arg))(scan)
}

// eachRow takes the result of a query and returns a function that calls scan
// for each of its rows, then closes them.
func eachRow(rows *sql.Rows, err error) func(scan func(*sql.Rows) error) error {
	return func(scan func(*sql.Rows) error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
}

// int64s takes the result of a query and returns its single integer
// column.
func int64s(rows *sql.Rows, err error) ([]int64, error) {
	var out []int64
	err = eachRow(rows, err)(func(rows *sql.Rows) error {
		var v int64
		err := rows.Scan(&v)
		out = append(out, v)
		return err
	})
	return out, err
}

// Unindexed returns how many saved messages wait for the substring indexer.
func (s *TrackingStore) Unindexed(ctx context.Context) (int, error) {
	var n int
	end, err := s.db.readTurn(ctx)
	if err != nil {
		return 0, wrapDB("count unindexed tracking records", err)
	}
	defer end()
	if err := s.db.R.QueryRowContext(ctx, `SELECT count(*) FROM search_queue`).Scan(&n); err != nil {
		return 0, wrapDB("count unindexed tracking records", err)
	}
	return n, nil
}
