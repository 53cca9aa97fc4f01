package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps one prepared statement per query text for a pool. The
// pure-Go SQLite driver does not cache statements itself, and parsing the
// SQL of every statement cost about a sixth of the daemon's CPU under load.
// database/sql prepares a cached statement once per connection on first use
// there, and Tx.StmtContext reuses the connection's prepared copy.
//
// The write pool has a single connection, held by the open transaction, so
// a statement cannot be prepared on the pool from inside it: there the
// cache only looks up, notes what it missed, and the group committer
// prepares the missed statements between transactions (prepareMissed).
type stmtCache struct {
	db *sql.DB

	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	missed map[string]bool
}

// maxCachedStmts bounds the cache: queries with a caller-chosen LIMIT or IN
// list differ in text, and past the bound they run unprepared-and-cached.
const maxCachedStmts = 512

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, missed: map[string]bool{}}
}

// lookup returns the prepared statement of q, or nil after noting q for
// prepareMissed.
func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.m[q]
	c.mu.RUnlock()
	if ok {
		return st
	}
	c.mu.Lock()
	if len(c.m)+len(c.missed) < maxCachedStmts {
		c.missed[q] = true
	}
	c.mu.Unlock()
	return nil
}

// prepareMissed prepares the statements lookup missed; call it while no
// transaction holds the pool's connection.
func (c *stmtCache) prepareMissed(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.missed {
		delete(c.missed, q)
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
	}
}

// get returns the prepared statement of q, or nil when the cache is full or
// preparing failed (the caller then runs q directly and reports the error).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.m[q]
	c.mu.RUnlock()
	if ok {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}

// cachedQuerier runs queries through prepared statements of a cache; with
// tx set, inside that transaction.
type cachedQuerier struct {
	c    *stmtCache
	tx   *sql.Tx
	base querier // the pool or transaction itself, for what is not cached
}

func (q cachedQuerier) stmt(ctx context.Context, text string) *sql.Stmt {
	if q.tx == nil {
		return q.c.get(ctx, text)
	}
	st := q.c.lookup(text)
	if st == nil {
		return nil
	}
	// The transaction's copy; database/sql closes it when the transaction ends.
	return q.tx.StmtContext(ctx, st)
}

func (q cachedQuerier) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, text); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.base.ExecContext(ctx, text, args...)
}

func (q cachedQuerier) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, text); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.base.QueryContext(ctx, text, args...)
}

func (q cachedQuerier) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if st := q.stmt(ctx, text); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.base.QueryRowContext(ctx, text, args...)
}
