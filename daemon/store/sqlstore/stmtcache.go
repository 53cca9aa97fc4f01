package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps one prepared statement per query text for the read pool.
// The pure-Go SQLite driver does not cache statements itself, and parsing
// the SQL of every statement cost about a sixth of the daemon's CPU under
// load. database/sql prepares a cached statement once per connection, on
// first use there. (The writer, a single connection, keeps its own:
// connQuerier.)
type stmtCache struct {
	db *sql.DB

	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

// maxCachedStmts bounds a cache: queries with a caller-chosen LIMIT or IN
// list differ in text, and past the bound they run unprepared.
const maxCachedStmts = 512

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
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

// cachedQuerier runs queries through the prepared statements of a cache.
type cachedQuerier struct {
	c    *stmtCache
	base querier // the pool itself, for what is not cached
}

func (q cachedQuerier) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := q.c.get(ctx, text); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.base.ExecContext(ctx, text, args...)
}

func (q cachedQuerier) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := q.c.get(ctx, text); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.base.QueryContext(ctx, text, args...)
}

func (q cachedQuerier) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if st := q.c.get(ctx, text); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.base.QueryRowContext(ctx, text, args...)
}
