package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
)

// Dialect is what differs between the SQL databases.
type Dialect struct {
	Name string
	// Numbered placeholders ($1, $2) instead of question marks.
	Numbered bool
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
	// IsBusy reports whether err means the transaction should be retried
	// (a serialization failure); may be nil.
	IsBusy func(error) bool
	// GroupCommit runs concurrent Updates in one database transaction, each
	// under a savepoint of its own, and commits them together. For a
	// database with one writer (SQLite) it turns many small commits into
	// few; each Update still commits or rolls back alone.
	GroupCommit bool
	// CacheStatements keeps prepared statements per query text (for drivers
	// without a statement cache of their own; pgx has one): on the read
	// pool, and on the group committer's connection.
	CacheStatements bool
	// WriterSetup are statements run on the group committer's connection
	// when it opens (pragmas for the connection that writes).
	WriterSetup []string
	// Maintain, when set, runs in the background from New until Close
	// (SQLite: the WAL checkpointer, kept off the writer's path).
	Maintain func(ctx context.Context)
	// AfterBatch, when set, runs after each group commit on the writer's
	// connection, outside a transaction (SQLite: the checkpoint that lets
	// the WAL start over, which needs a moment without writes). It is best
	// effort: what it maintains it retries after a later batch.
	AfterBatch func(ctx context.Context, conn *sql.Conn)
}

// Store is store.Store over database/sql.
type Store struct {
	read, write *sql.DB
	d           Dialect
	reader
	// Prepared statements of the read pool (Dialect.CacheStatements).
	readStmts *stmtCache
	updates   chan *update  // group commit queue (GroupCommit)
	stopped   chan struct{} // closed when the group committer ended
	closeOnce sync.Once
	// The background maintenance (Dialect.Maintain).
	stopMaintain  context.CancelFunc
	closeMaintain sync.Once
	maintained    chan struct{}
}

type update struct {
	ctx  context.Context
	f    func(store.Tx) error
	done chan error
}

var _ store.Store = (*Store)(nil)

// New returns a Store that reads through read and writes through write (they
// may be the same pool). Reads and writes on different pools let SQLite
// readers proceed while the single writer holds its transaction.
func New(read, write *sql.DB, d Dialect) *Store {
	s := &Store{read: read, write: write, d: d}
	s.reader = reader{q: read, d: &s.d}
	if d.CacheStatements {
		s.readStmts = newStmtCache(read)
		s.reader.q = cachedQuerier{c: s.readStmts, base: read}
	}
	if d.Maintain != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopMaintain, s.maintained = cancel, make(chan struct{})
		go func() { defer close(s.maintained); d.Maintain(ctx) }()
	}
	if d.GroupCommit {
		s.updates = make(chan *update)
		s.stopped = make(chan struct{})
		go s.groupCommitter()
	}
	return s
}

// groupBatch bounds how many Updates share one commit.
const groupBatch = 128

// groupCommitter takes the queued Updates, runs each under a savepoint in
// one transaction and commits them together. It holds one connection of
// the write pool for its whole life, with the statements prepared on it:
// transactions are BEGIN and COMMIT statements on that connection, which
// spares database/sql's per-transaction and per-statement wrappers.
func (s *Store) groupCommitter() {
	defer close(s.stopped)
	ctx := context.Background()
	var w *connQuerier
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	// No lingering for more Updates: a create is a chain of Updates, each
	// waiting for the last, and a pause to fill batches only slowed the
	// chains (measured: 2 ms cost a third of the throughput).
	for first := range s.updates {
		batch := []*update{first}
	collect:
		for len(batch) < groupBatch {
			select {
			case u, ok := <-s.updates:
				if !ok {
					break collect
				}
				batch = append(batch, u)
			default:
				break collect
			}
		}
		if w == nil {
			conn, err := s.write.Conn(ctx)
			if err != nil {
				for _, u := range batch {
					u.done <- virtplane.Errorf(virtplane.ErrUnavailable, "database connection: %v", err)
				}
				continue
			}
			w = &connQuerier{conn: conn, stmts: map[string]*sql.Stmt{}, cache: s.d.CacheStatements}
			for _, q := range s.d.WriterSetup {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					for _, u := range batch {
						u.done <- virtplane.Errorf(virtplane.ErrUnavailable, "writer setup %q: %v", q, err)
					}
					w.close()
					w = nil
					break
				}
			}
			if w == nil {
				continue
			}
		}
		if broken := s.runBatch(ctx, w, batch); broken {
			w.close() // the next batch takes a fresh connection
			w = nil
			continue
		}
		if s.d.AfterBatch != nil {
			s.d.AfterBatch(ctx, w.conn)
		}
	}
}

// runBatch runs one batch on w and reports whether w's connection is in an
// unknown state (a failed COMMIT or ROLLBACK).
func (s *Store) runBatch(ctx context.Context, w *connQuerier, batch []*update) (broken bool) {
	errs := make([]error, len(batch))
	fail := func(what string, err error) bool {
		for _, u := range batch {
			u.done <- virtplane.Errorf(virtplane.ErrUnavailable, "%s: %v", what, err)
		}
		_, rerr := w.ExecContext(ctx, "ROLLBACK")
		return rerr != nil
	}
	// IMMEDIATE: take the write lock now, as _txlock=immediate does for
	// BeginTx (GroupCommit is for SQLite).
	if _, err := w.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail("begin transaction", err)
	}
	r := reader{q: w, d: &s.d}
	// Savepoints only where they are needed: an Update before which nothing
	// succeeded in this transaction fails with a plain ROLLBACK (and a new
	// BEGIN for the rest); the others get a savepoint, released after. Each
	// statement here is a round trip through the driver: a savepoint around
	// every Update cost a seventh of the daemon's CPU. (Leaving them
	// unreleased until COMMIT was measured slower: every open savepoint
	// journals the pages written after it.)
	clean := true // nothing succeeded in the transaction yet
	for i, u := range batch {
		if err := u.ctx.Err(); err != nil {
			errs[i] = r.wrap(err)
			continue
		}
		t := &tx{reader: r} // per Update: what it read dies with its savepoint
		if clean {
			if errs[i] = runGuarded(u.f, t); errs[i] == nil {
				clean = false
				continue
			}
			if _, err := w.ExecContext(ctx, "ROLLBACK"); err != nil {
				return fail("rollback", err)
			}
			if _, err := w.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				return fail("begin transaction", err)
			}
			continue
		}
		if _, err := w.ExecContext(ctx, "SAVEPOINT u"); err != nil {
			return fail("savepoint", err)
		}
		if errs[i] = runGuarded(u.f, t); errs[i] != nil {
			if _, err := w.ExecContext(ctx, "ROLLBACK TO u"); err != nil {
				return fail("rollback to savepoint", err)
			}
		}
		if _, err := w.ExecContext(ctx, "RELEASE u"); err != nil {
			return fail("release savepoint", err)
		}
	}
	if _, err := w.ExecContext(ctx, "COMMIT"); err != nil {
		return fail("commit", err)
	}
	for i, u := range batch {
		u.done <- errs[i]
	}
	return false
}

// connQuerier runs statements on one connection, prepared once each. Only
// the group committer's goroutine uses it (the Updates it runs included).
type connQuerier struct {
	conn  *sql.Conn
	cache bool
	stmts map[string]*sql.Stmt
}

func (q *connQuerier) stmt(ctx context.Context, text string) *sql.Stmt {
	if !q.cache {
		return nil
	}
	if st, ok := q.stmts[text]; ok {
		return st
	}
	if len(q.stmts) >= maxCachedStmts {
		return nil
	}
	st, err := q.conn.PrepareContext(ctx, text)
	if err != nil {
		return nil // run unprepared; the error comes from there
	}
	q.stmts[text] = st
	return st
}

func (q *connQuerier) ExecContext(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, text); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.conn.ExecContext(ctx, text, args...)
}

func (q *connQuerier) QueryContext(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, text); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.conn.QueryContext(ctx, text, args...)
}

func (q *connQuerier) QueryRowContext(ctx context.Context, text string, args ...any) *sql.Row {
	if st := q.stmt(ctx, text); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.conn.QueryRowContext(ctx, text, args...)
}

func (q *connQuerier) close() {
	for _, st := range q.stmts {
		_ = st.Close()
	}
	_ = q.conn.Close()
}

func runGuarded(f func(store.Tx) error, t store.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store update panicked: %v", p)
		}
	}()
	return f(t)
}

// Close closes both pools.
func (s *Store) Close() error {
	if s.updates != nil {
		s.closeOnce.Do(func() { close(s.updates) })
		<-s.stopped
	}
	if s.stopMaintain != nil {
		s.closeMaintain.Do(func() { s.stopMaintain() })
		<-s.maintained
	}
	if s.readStmts != nil {
		s.readStmts.close()
	}
	err := s.read.Close()
	if s.write != s.read {
		err = errors.Join(err, s.write.Close())
	}
	return err
}

// Update runs f in one write transaction.
func (s *Store) Update(ctx context.Context, f func(store.Tx) error) error {
	if s.updates != nil {
		u := &update{ctx: ctx, f: f, done: make(chan error, 1)}
		select {
		case s.updates <- u:
		case <-ctx.Done():
			return virtplane.Errorf(virtplane.ErrCanceled, "update: %v", ctx.Err())
		}
		return <-u.done
	}
	for attempt := 0; ; attempt++ {
		err := s.update(ctx, f)
		if err != nil && s.d.IsBusy != nil && s.d.IsBusy(err) && attempt < 10 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
			}
			continue
		}
		return err
	}
}

func (s *Store) update(ctx context.Context, f func(store.Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "begin transaction: %v", err)
	}
	t := &tx{reader: reader{q: sqlTx, d: &s.d}}
	if err := f(t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "commit: %v", err)
	}
	return nil
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type reader struct {
	q querier
	d *Dialect
}

// rebind turns ? placeholders into $n for dialects that number them.
func (r reader) rebind(q string) string {
	if !r.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r reader) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := r.q.ExecContext(ctx, r.rebind(q), args...)
	return res, r.wrap(err)
}

func (r reader) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rows, err := r.q.QueryContext(ctx, r.rebind(q), args...)
	return rows, r.wrap(err)
}

func (r reader) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return r.q.QueryRowContext(ctx, r.rebind(q), args...)
}

// wrap classifies a database error.
func (r reader) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return virtplane.Errorf(virtplane.ErrNotFound, "no such row")
	case errors.Is(err, context.Canceled):
		return virtplane.Errorf(virtplane.ErrCanceled, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return virtplane.Errorf(virtplane.ErrTimeout, "%v", err)
	case r.d.IsUnique != nil && r.d.IsUnique(err):
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "%v", err)
	case virtplane.Class(err) != nil:
		return err
	}
	return &dbError{err: err}
}

// dbError is an unclassified database failure: the database is reachable
// but said no, or it is not reachable; both are reported as unavailable.
type dbError struct{ err error }

func (e *dbError) Error() string {
	return "database: " + e.err.Error() + ": " + virtplane.ErrUnavailable.Error()
}
func (e *dbError) Unwrap() []error { return []error{e.err, virtplane.ErrUnavailable} }

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

const objectCols = "kind, id, name, owner, parent, version, data, created, updated"

type scanner interface{ Scan(dest ...any) error }

func scanObject(s scanner) (store.Object, error) {
	var o store.Object
	var kind, data string
	var created, updated int64
	err := s.Scan(&kind, &o.ID, &o.Name, &o.Owner, &o.Parent, &o.Version, &data, &created, &updated)
	o.Kind = store.Kind(kind)
	o.Data = []byte(data)
	o.Created, o.Updated = fromNanos(created), fromNanos(updated)
	return o, err
}

func (r reader) GetObject(ctx context.Context, kind store.Kind, id string) (store.Object, error) {
	o, err := scanObject(r.queryRow(ctx, "SELECT "+objectCols+" FROM objects WHERE kind = ? AND id = ?", string(kind), id))
	if errors.Is(err, sql.ErrNoRows) {
		return o, virtplane.Errorf(virtplane.ErrNotFound, "%s %q", kind, id)
	}
	return o, r.wrap(err)
}

func (r reader) GetObjectByName(ctx context.Context, kind store.Kind, parent, name string) (store.Object, error) {
	o, err := scanObject(r.queryRow(ctx, "SELECT "+objectCols+" FROM objects WHERE kind = ? AND parent = ? AND name = ?", string(kind), parent, name))
	if errors.Is(err, sql.ErrNoRows) {
		return o, virtplane.Errorf(virtplane.ErrNotFound, "%s named %q", kind, name)
	}
	return o, r.wrap(err)
}

func objectWhere(kind store.Kind, opts store.ListOptions) (string, []any) {
	w := " WHERE kind = ?"
	args := []any{string(kind)}
	if opts.Owner != "" {
		w += " AND owner = ?"
		args = append(args, opts.Owner)
	}
	if opts.Parent != "" {
		w += " AND parent = ?"
		args = append(args, opts.Parent)
	}
	if opts.After != "" {
		w += " AND id > ?"
		args = append(args, opts.After)
	}
	return w, args
}

func (r reader) ListObjects(ctx context.Context, kind store.Kind, opts store.ListOptions) ([]store.Object, error) {
	w, args := objectWhere(kind, opts)
	q := "SELECT " + objectCols + " FROM objects" + w + " ORDER BY id"
	if opts.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(opts.Limit)
	}
	rows, err := r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, r.wrap(err)
		}
		out = append(out, o)
	}
	return out, r.wrap(rows.Err())
}

func (r reader) CountObjects(ctx context.Context, kind store.Kind, opts store.ListOptions) (int, error) {
	w, args := objectWhere(kind, opts)
	var n int
	err := r.queryRow(ctx, "SELECT COUNT(*) FROM objects"+w, args...).Scan(&n)
	return n, r.wrap(err)
}

const taskCols = "id, kind, owner, target, resources, state, progress, message, error, error_class, input, result, cancel_requested, lease_owner, lease_until, idem_key, created, started, finished, attempt, max_attempts"

func scanTask(s scanner) (store.Task, error) {
	var t store.Task
	var resources, state, input, result string
	var idem sql.NullString
	var cancel int
	var leaseUntil, created, started, finished int64
	err := s.Scan(&t.ID, &t.Kind, &t.Owner, &t.Target, &resources, &state, &t.Progress, &t.Message, &t.Error, &t.ErrorClass,
		&input, &result, &cancel, &t.LeaseOwner, &leaseUntil, &idem, &created, &started, &finished, &t.Attempt, &t.MaxAttempts)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(resources), &t.Resources); err != nil {
		return t, fmt.Errorf("task %s resources: %w", t.ID, err)
	}
	t.State = store.TaskState(state)
	if input != "" {
		t.Input = []byte(input)
	}
	if result != "" {
		t.Result = []byte(result)
	}
	t.CancelRequested = cancel != 0
	t.IdempotencyKey = idem.String
	t.LeaseUntil, t.Created, t.Started, t.Finished = fromNanos(leaseUntil), fromNanos(created), fromNanos(started), fromNanos(finished)
	return t, nil
}

func (r reader) GetTask(ctx context.Context, id string) (store.Task, error) {
	t, err := scanTask(r.queryRow(ctx, "SELECT "+taskCols+" FROM tasks WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, virtplane.Errorf(virtplane.ErrNotFound, "task %q", id)
	}
	return t, r.wrap(err)
}

func (r reader) TaskByIdempotencyKey(ctx context.Context, owner, key string) (store.Task, error) {
	t, err := scanTask(r.queryRow(ctx, "SELECT "+taskCols+" FROM tasks WHERE owner = ? AND idem_key = ?", owner, key))
	if errors.Is(err, sql.ErrNoRows) {
		return t, virtplane.Errorf(virtplane.ErrNotFound, "task with idempotency key %q", key)
	}
	return t, r.wrap(err)
}

func (r reader) ListTasks(ctx context.Context, f store.TaskFilter) ([]store.Task, error) {
	q := "SELECT " + taskCols + " FROM tasks WHERE 1 = 1"
	var args []any
	if f.Owner != "" {
		q += " AND owner = ?"
		args = append(args, f.Owner)
	}
	if f.Target != "" {
		q += " AND target = ?"
		args = append(args, f.Target)
	}
	if len(f.States) > 0 {
		q += " AND state IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ") + ")"
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.After != "" {
		q += " AND id > ?"
		args = append(args, f.After)
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, r.wrap(err)
		}
		out = append(out, t)
	}
	return out, r.wrap(rows.Err())
}

func (r reader) TaskLog(ctx context.Context, id string) ([]store.LogLine, error) {
	rows, err := r.query(ctx, "SELECT seq, at, line FROM task_log WHERE task_id = ? ORDER BY seq", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.LogLine
	for rows.Next() {
		var l store.LogLine
		var at int64
		if err := rows.Scan(&l.Seq, &at, &l.Line); err != nil {
			return nil, r.wrap(err)
		}
		l.At = fromNanos(at)
		out = append(out, l)
	}
	return out, r.wrap(rows.Err())
}

func (r reader) TaskUndos(ctx context.Context, id string) ([]store.Undo, error) {
	rows, err := r.query(ctx, "SELECT seq, action, args, done FROM task_undo WHERE task_id = ? ORDER BY seq", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Undo
	for rows.Next() {
		var u store.Undo
		var args string
		var done int
		if err := rows.Scan(&u.Seq, &u.Action, &args, &done); err != nil {
			return nil, r.wrap(err)
		}
		u.Args = []byte(args)
		u.Done = done != 0
		out = append(out, u)
	}
	return out, r.wrap(rows.Err())
}

func (r reader) LockHolder(ctx context.Context, resource string) (string, error) {
	var id string
	err := r.queryRow(ctx, "SELECT task_id FROM locks WHERE resource = ?", resource).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, r.wrap(err)
}

type tx struct {
	reader
	// read holds the keys of the objects read in this transaction, as read,
	// so that an update that changes only an object's data sets only that.
	read map[objectKey]objectKeys
}

type objectKey struct {
	kind store.Kind
	id   string
}

// objectKeys are the indexed columns of an object.
type objectKeys struct{ name, owner, parent string }

func (t *tx) GetObject(ctx context.Context, kind store.Kind, id string) (store.Object, error) {
	o, err := t.reader.GetObject(ctx, kind, id)
	if err == nil {
		t.remember(o)
	}
	return o, err
}

func (t *tx) remember(o store.Object) {
	if t.read == nil {
		t.read = map[objectKey]objectKeys{}
	}
	t.read[objectKey{o.Kind, o.ID}] = objectKeys{o.Name, o.Owner, o.Parent}
}

func validKey(kind store.Kind, id string) error {
	if kind == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "object kind is empty")
	}
	if id == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s id is empty", kind)
	}
	return nil
}

func (t *tx) CreateObject(ctx context.Context, o *store.Object) error {
	if err := validKey(o.Kind, o.ID); err != nil {
		return err
	}
	if o.Name == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s name is empty", o.Kind)
	}
	now := time.Now().UTC()
	o.Version, o.Created, o.Updated = 1, now, now
	if o.Data == nil {
		o.Data = []byte("{}")
	}
	_, err := t.exec(ctx, "INSERT INTO objects ("+objectCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		string(o.Kind), o.ID, o.Name, o.Owner, o.Parent, o.Version, string(o.Data), nanos(o.Created), nanos(o.Updated))
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "%s %q (id %s) exists", o.Kind, o.Name, o.ID)
	}
	return err
}

func (t *tx) UpdateObject(ctx context.Context, o *store.Object) error {
	if err := validKey(o.Kind, o.ID); err != nil {
		return err
	}
	now := time.Now().UTC()
	var res sql.Result
	var err error
	if k, ok := t.read[objectKey{o.Kind, o.ID}]; ok && k == (objectKeys{o.Name, o.Owner, o.Parent}) {
		// The indexed columns are as read: leave them (and their indexes) be.
		res, err = t.exec(ctx, "UPDATE objects SET version = version + 1, data = ?, updated = ? WHERE kind = ? AND id = ? AND version = ?",
			string(o.Data), nanos(now), string(o.Kind), o.ID, o.Version)
	} else {
		res, err = t.exec(ctx, "UPDATE objects SET name = ?, owner = ?, parent = ?, version = version + 1, data = ?, updated = ? WHERE kind = ? AND id = ? AND version = ?",
			o.Name, o.Owner, o.Parent, string(o.Data), nanos(now), string(o.Kind), o.ID, o.Version)
	}
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "%s named %q exists", o.Kind, o.Name)
	}
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if _, gerr := t.GetObject(ctx, o.Kind, o.ID); gerr != nil {
			return gerr
		}
		return virtplane.Errorf(virtplane.ErrConflict, "%s %q changed since version %d", o.Kind, o.ID, o.Version)
	}
	o.Version++
	o.Updated = now
	t.remember(*o)
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind store.Kind, id string, version int64) error {
	q := "DELETE FROM objects WHERE kind = ? AND id = ?"
	args := []any{string(kind), id}
	if version != 0 {
		q += " AND version = ?"
		args = append(args, version)
	}
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if _, gerr := t.GetObject(ctx, kind, id); gerr != nil {
			return gerr
		}
		return virtplane.Errorf(virtplane.ErrConflict, "%s %q changed since version %d", kind, id, version)
	}
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (t *tx) CreateTask(ctx context.Context, tk *store.Task) error {
	if tk.ID == "" || tk.Kind == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "task id and kind are required")
	}
	if tk.State == "" {
		tk.State = store.TaskQueued
	}
	if tk.Created.IsZero() {
		tk.Created = time.Now().UTC()
	}
	tk.Attempt = max(tk.Attempt, 1)
	res, err := json.Marshal(nonNil(tk.Resources))
	if err != nil {
		return err
	}
	r, err := t.exec(ctx, "INSERT INTO tasks ("+taskCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, idem_key) DO NOTHING",
		tk.ID, tk.Kind, tk.Owner, tk.Target, string(res), string(tk.State), tk.Progress, tk.Message, tk.Error, tk.ErrorClass,
		string(tk.Input), string(tk.Result), boolInt(tk.CancelRequested), tk.LeaseOwner, nanos(tk.LeaseUntil),
		nullIfEmpty(tk.IdempotencyKey), nanos(tk.Created), nanos(tk.Started), nanos(tk.Finished), max(tk.Attempt, 1), tk.MaxAttempts)
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "task %s exists", tk.ID)
	}
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("task with key %q of %s: %w", tk.IdempotencyKey, tk.Owner, store.ErrIdempotencyKeyTaken)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t *tx) UpdateTask(ctx context.Context, tk *store.Task) error {
	// Only what changes: SQLite rewrites the index entries of every column
	// an UPDATE sets, changed or not.
	r, err := t.exec(ctx, "UPDATE tasks SET state = ?, progress = ?, message = ?, error = ?, error_class = ?, result = ?, cancel_requested = ?, lease_owner = ?, lease_until = ?, started = ?, finished = ?, attempt = ? WHERE id = ?",
		string(tk.State), tk.Progress, tk.Message, tk.Error, tk.ErrorClass, string(tk.Result),
		boolInt(tk.CancelRequested), tk.LeaseOwner, nanos(tk.LeaseUntil), nanos(tk.Started), nanos(tk.Finished), max(tk.Attempt, 1), tk.ID)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return virtplane.Errorf(virtplane.ErrNotFound, "task %q", tk.ID)
	}
	return nil
}

func (t *tx) ClaimTask(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	now := time.Now().UTC()
	r, err := t.exec(ctx, "UPDATE tasks SET state = ?, message = ?, lease_owner = ?, lease_until = ?, started = ? WHERE id = ? AND state = ?",
		string(store.TaskRunning), "running", owner, nanos(until), nanos(now), id, string(store.TaskQueued))
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

func (t *tx) RenewLeases(ctx context.Context, owner string, until time.Time) error {
	_, err := t.exec(ctx, "UPDATE tasks SET lease_until = ? WHERE lease_owner = ? AND state IN (?, ?)",
		nanos(until), owner, string(store.TaskRunning), string(store.TaskUndoing))
	return err
}

func (t *tx) AppendTaskLog(ctx context.Context, id string, lines ...store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	// One statement for all the lines: the next free seq, then one row each.
	var q strings.Builder
	q.WriteString("WITH last AS (SELECT COALESCE(MAX(seq), 0) AS seq FROM task_log WHERE task_id = ?) INSERT INTO task_log (task_id, seq, at, line) ")
	args := make([]any, 0, 1+4*len(lines))
	args = append(args, id)
	for i, l := range lines {
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		// Typed: PostgreSQL infers no type for parameters under UNION ALL.
		q.WriteString("SELECT CAST(? AS TEXT), seq + " + strconv.Itoa(i+1) + ", CAST(? AS BIGINT), CAST(? AS TEXT) FROM last")
		args = append(args, id, nanos(l.At), l.Line)
	}
	_, err := t.exec(ctx, q.String(), args...)
	return err
}

func (t *tx) PushUndo(ctx context.Context, id string, undos ...store.Undo) (int, error) {
	if len(undos) == 0 {
		return 0, virtplane.Errorf(virtplane.ErrInvalidArgument, "no undo steps to push for task %q", id)
	}
	// One statement for all the steps, as for log lines.
	var q strings.Builder
	q.WriteString("WITH last AS (SELECT COALESCE(MAX(seq), 0) AS seq FROM task_undo WHERE task_id = ?) INSERT INTO task_undo (task_id, seq, action, args, done) ")
	args := make([]any, 0, 1+3*len(undos))
	args = append(args, id)
	for i, u := range undos {
		if u.Action == "" {
			return 0, virtplane.Errorf(virtplane.ErrInvalidArgument, "undo step %d of task %q has no action", i, id)
		}
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		a := u.Args
		if a == nil {
			a = []byte("null")
		}
		q.WriteString("SELECT CAST(? AS TEXT), seq + " + strconv.Itoa(i+1) + ", CAST(? AS TEXT), CAST(? AS TEXT), 0 FROM last")
		args = append(args, id, u.Action, string(a))
	}
	q.WriteString(" RETURNING seq")
	rows, err := t.query(ctx, q.String(), args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	last := 0
	for rows.Next() {
		var seq int
		if err := rows.Scan(&seq); err != nil {
			return 0, t.wrap(err)
		}
		last = max(last, seq)
	}
	return last, t.wrap(rows.Err())
}

func (t *tx) MarkUndoDone(ctx context.Context, id string, seq int) error {
	r, err := t.exec(ctx, "UPDATE task_undo SET done = 1 WHERE task_id = ? AND seq = ?", id, seq)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return virtplane.Errorf(virtplane.ErrNotFound, "undo step %d of task %q", seq, id)
	}
	return nil
}

func (t *tx) Lock(ctx context.Context, id string, resources []string) (bool, error) {
	if len(resources) == 0 {
		return true, nil
	}
	// Take what is free in one statement; when every resource was free, that
	// is all. Otherwise some are held (by another task, or already by this
	// one): look closer.
	q := "INSERT INTO locks (resource, task_id) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?), ", len(resources)), ", ") + " ON CONFLICT (resource) DO NOTHING"
	args := make([]any, 0, 2*len(resources))
	for _, r := range resources {
		args = append(args, r, id)
	}
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); int(n) == len(resources) {
		return true, nil
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(resources)), ", ")
	args = []any{id}
	for _, r := range resources {
		args = append(args, r)
	}
	var others int
	if err := t.queryRow(ctx, "SELECT COUNT(*) FROM locks WHERE task_id <> ? AND resource IN ("+in+")", args...).Scan(&others); err != nil {
		return false, t.wrap(err)
	}
	if others > 0 {
		// Give back what this call took.
		return false, t.Unlock(ctx, id)
	}
	return true, nil
}

func (t *tx) Unlock(ctx context.Context, id string) error {
	_, err := t.exec(ctx, "DELETE FROM locks WHERE task_id = ?", id)
	return err
}
