package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// queryer runs reads: a *sql.DB, or a stmtCache over one.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// maxCachedStmts bounds a stmtCache; queries beyond it run unprepared.
const maxCachedStmts = 128

// stmtCache runs each query through a statement prepared once on its pool
// (and by database/sql once per connection), so that SQLite parses the SQL
// text once rather than on every call. It is meant for the constant queries
// of a store; safe for concurrent use.
type stmtCache struct {
	db *sql.DB

	mu        sync.Mutex
	stmts     map[string]*sql.Stmt
	preparing map[string]bool // queries being prepared in the background
	closed    bool
	// background counts the preparations in the background, which Close
	// waits for: each holds a connection of the pool until it is done.
	background sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt), preparing: make(map[string]bool)}
}

// stmt returns the prepared statement of query, preparing it on first use;
// nil when it cannot be prepared or the cache is full. Preparing takes a
// connection of the pool: a caller holding one (in a transaction) uses
// cached instead.
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, full := c.lookup(query); st != nil || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		// Running the query unprepared reports the same error.
		return nil
	}
	return c.keep(query, st)
}

// cached returns the prepared statement of query, or nil after starting to
// prepare it in the background, so that a transaction never waits for a
// second connection of its pool (the writer has only one).
func (c *stmtCache) cached(query string) *sql.Stmt {
	st, full := c.lookup(query)
	if st != nil || full {
		return st
	}
	c.mu.Lock()
	start := !c.preparing[query] && !c.closed
	c.preparing[query] = true
	if start {
		c.background.Add(1)
	}
	c.mu.Unlock()
	if start {
		go func() {
			defer c.background.Done()
			st, err := c.db.PrepareContext(context.Background(), query)
			c.mu.Lock()
			delete(c.preparing, query)
			c.mu.Unlock()
			if err == nil {
				c.keep(query, st)
			}
		}()
	}
	return nil
}

// lookup returns the cached statement of query, and whether the cache is
// full.
func (c *stmtCache) lookup(query string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query], len(c.stmts) >= maxCachedStmts
}

// keep caches st as query's statement and returns the one cached: st, or
// another prepared meanwhile (st is then closed), or nil once the cache is
// closed or full.
func (c *stmtCache) keep(query string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if have := c.stmts[query]; have != nil {
		st.Close()
		return have
	}
	if c.closed || len(c.stmts) >= maxCachedStmts {
		st.Close()
		return nil
	}
	c.stmts[query] = st
	return st
}

// QueryContext runs query with its prepared statement.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query with its prepared statement.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// Close closes the prepared statements, waiting for those being prepared
// in the background, so that the pool can then be closed with no
// connection still in use; the pool stays open.
func (c *stmtCache) Close() error {
	c.mu.Lock()
	c.closed = true
	var first error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	c.background.Wait()
	return first
}

// cachedTx is a transaction whose statements run through a stmtCache of
// the pool it began on, once they are prepared.
type cachedTx struct {
	*sql.Tx
	stmts *stmtCache
	end   func() // ends the reader's turn (DB.readTurn); nil without one
}

// Rollback ends the transaction, and the reader's turn if it has one.
func (t cachedTx) Rollback() error {
	err := t.Tx.Rollback()
	if t.end != nil {
		t.end()
	}
	return err
}

// ExecContext runs query in the transaction with its prepared statement.
func (t cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext runs query in the transaction with its prepared statement.
func (t cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmts.cached(query); st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs query in the transaction with its prepared statement.
func (t cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmts.cached(query); st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
