package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/network/ipam"
)

// IPAM returns the ipam.Store kept in the same database. Its Update runs
// in a write transaction that holds the pool row (FOR UPDATE on PostgreSQL;
// SQLite has one writer at a time), so allocations of several daemons
// sharing the database never collide.
func (s *Store) IPAM() ipam.Store { return &ipamStore{s: s} }

type ipamStore struct{ s *Store }

var _ ipam.Store = (*ipamStore)(nil)

func (i *ipamStore) r() reader { return i.s.reader }

// sortKey orders prefixes by address (IPv4 before IPv6) then length.
func sortKey(p netip.Prefix) string {
	a := p.Addr()
	fam := "4"
	var b []byte
	if a.Is4() {
		v := a.As4()
		b = v[:]
	} else {
		fam = "6"
		v := a.As16()
		b = v[:]
	}
	return fmt.Sprintf("%s%s%03d", fam, hex.EncodeToString(b), p.Bits())
}

func (i *ipamStore) CreatePool(ctx context.Context, p ipam.Pool) error {
	clusters, blocks, err := poolJSON(p)
	if err != nil {
		return err
	}
	err = i.s.rawTx(ctx, func(r reader) error {
		_, err := r.exec(ctx, "INSERT INTO ipam_pools (id, uid, clusters, blocks, version) VALUES (?, ?, ?, ?, 0)", p.ID, p.UID, clusters, blocks)
		return err
	})
	if err != nil {
		if errors.Is(err, virtplane.ErrAlreadyExists) {
			return virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q", p.ID)
		}
		return err
	}
	return nil
}

func poolJSON(p ipam.Pool) (string, string, error) {
	c, err := json.Marshal(p.Clusters)
	if err != nil {
		return "", "", err
	}
	b, err := json.Marshal(p.Blocks)
	if err != nil {
		return "", "", virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %s blocks: %v", p.ID, err)
	}
	return string(c), string(b), nil
}

func scanPool(s scanner) (ipam.Pool, error) {
	var p ipam.Pool
	var clusters, blocks string
	var version int64
	if err := s.Scan(&p.ID, &p.UID, &clusters, &blocks, &version); err != nil {
		return p, err
	}
	p.Version = uint64(version)
	if err := json.Unmarshal([]byte(clusters), &p.Clusters); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(blocks), &p.Blocks); err != nil {
		return p, err
	}
	return p, nil
}

func getPool(ctx context.Context, r reader, id string, forUpdate string) (ipam.Pool, error) {
	p, err := scanPool(r.queryRow(ctx, "SELECT id, uid, clusters, blocks, version FROM ipam_pools WHERE id = ?"+forUpdate, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, virtplane.Errorf(virtplane.ErrNotFound, "pool %q", id)
	}
	return p, r.wrap(err)
}

func (i *ipamStore) GetPool(ctx context.Context, id string) (ipam.Pool, error) {
	return getPool(ctx, i.r(), id, "")
}

func (i *ipamStore) ListPools(ctx context.Context, after string, limit int) ([]ipam.Pool, string, error) {
	if limit <= 0 {
		limit = ipam.DefaultPageSize
	}
	rows, err := i.r().query(ctx, "SELECT id, uid, clusters, blocks, version FROM ipam_pools WHERE id > ? ORDER BY id LIMIT "+strconv.Itoa(limit+1), after)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []ipam.Pool
	for rows.Next() {
		p, err := scanPool(rows)
		if err != nil {
			return nil, "", i.r().wrap(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", i.r().wrap(err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// rawTx runs f in a write transaction with a reader bound to it; with group
// commit, as one Update of a shared transaction.
func (s *Store) rawTx(ctx context.Context, f func(r reader) error) error {
	if s.updates != nil {
		return s.Update(ctx, func(t store.Tx) error { return f(t.(*tx).reader) })
	}
	for attempt := 0; ; attempt++ {
		err := s.rawTxOnce(ctx, f)
		if err != nil && s.d.IsBusy != nil && s.d.IsBusy(err) && attempt < 10 {
			continue
		}
		return err
	}
}

func (s *Store) rawTxOnce(ctx context.Context, f func(r reader) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "begin transaction: %v", err)
	}
	if err := f(reader{q: tx, d: &s.d}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "commit: %v", err)
	}
	return nil
}

func (i *ipamStore) forUpdate() string {
	if i.s.d.Numbered { // PostgreSQL
		return " FOR UPDATE"
	}
	return ""
}

func (i *ipamStore) DeletePool(ctx context.Context, id string) error {
	return i.s.rawTx(ctx, func(r reader) error {
		if _, err := getPool(ctx, r, id, i.forUpdate()); err != nil {
			return err
		}
		var n int
		if err := r.queryRow(ctx, "SELECT COUNT(*) FROM ipam_records WHERE pool = ? AND state = ?", id, int(ipam.StateAllocated)).Scan(&n); err != nil {
			return r.wrap(err)
		}
		if n > 0 {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q still has %d allocations", id, n)
		}
		for _, q := range []string{"DELETE FROM ipam_records WHERE pool = ?", "DELETE FROM ipam_cursors WHERE pool = ?", "DELETE FROM ipam_pools WHERE id = ?"} {
			if _, err := r.exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func (i *ipamStore) Update(ctx context.Context, poolID string, fn func(ipam.Txn) error) error {
	return i.s.rawTx(ctx, func(r reader) error {
		p, err := getPool(ctx, r, poolID, i.forUpdate())
		if err != nil {
			return err
		}
		t := &ipamTxn{ctx: ctx, r: r, pool: p}
		if err := fn(t); err != nil {
			return err
		}
		_, err = r.exec(ctx, "UPDATE ipam_pools SET version = version + 1 WHERE id = ?", poolID)
		return err
	})
}

const recordCols = "pool, prefix, block, state, vm, iface, tags, allocated_at, released_at"

func scanRecord(s scanner) (ipam.Record, error) {
	var r ipam.Record
	var prefix, tags string
	var state int
	var alloc, rel int64
	if err := s.Scan(&r.Pool, &prefix, &r.Block, &state, &r.Owner.VM, &r.Owner.Interface, &tags, &alloc, &rel); err != nil {
		return r, err
	}
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return r, fmt.Errorf("stored prefix %q: %w", prefix, err)
	}
	r.Prefix, r.State = p, ipam.RecordState(state)
	if tags != "" && tags != "null" {
		if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
			return r, err
		}
	}
	r.AllocatedAt, r.ReleasedAt = fromNanos(alloc), fromNanos(rel)
	return r, nil
}

func queryRecords(ctx context.Context, r reader, q string, args ...any) ([]ipam.Record, error) {
	rows, err := r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ipam.Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, r.wrap(err)
		}
		out = append(out, rec)
	}
	return out, r.wrap(rows.Err())
}

func (i *ipamStore) Get(ctx context.Context, poolID string, p netip.Prefix) (ipam.Record, error) {
	rec, err := scanRecord(i.r().queryRow(ctx, "SELECT "+recordCols+" FROM ipam_records WHERE pool = ? AND prefix = ?", poolID, p.String()))
	if errors.Is(err, sql.ErrNoRows) {
		if _, perr := i.GetPool(ctx, poolID); perr != nil {
			return rec, perr
		}
		return rec, virtplane.Errorf(virtplane.ErrNotFound, "pool %q has no record of %s", poolID, p)
	}
	return rec, i.r().wrap(err)
}

func (i *ipamStore) ByOwner(ctx context.Context, o ipam.Owner) ([]ipam.Record, error) {
	q := "SELECT " + recordCols + " FROM ipam_records WHERE vm = ? AND state = ?"
	args := []any{o.VM, int(ipam.StateAllocated)}
	if o.Interface != "" {
		q += " AND iface = ?"
		args = append(args, o.Interface)
	}
	return queryRecords(ctx, i.r(), q+" ORDER BY pool, sort_key", args...)
}

func (i *ipamStore) List(ctx context.Context, poolID string, opts ipam.ListOptions) ([]ipam.Record, netip.Prefix, error) {
	if _, err := i.GetPool(ctx, poolID); err != nil {
		return nil, netip.Prefix{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = ipam.DefaultPageSize
	}
	q := "SELECT " + recordCols + " FROM ipam_records WHERE pool = ?"
	args := []any{poolID}
	if opts.State != ipam.StateFree {
		q += " AND state = ?"
		args = append(args, int(opts.State))
	}
	if opts.After.IsValid() {
		q += " AND sort_key > ?"
		args = append(args, sortKey(opts.After))
	}
	out, err := queryRecords(ctx, i.r(), q+" ORDER BY sort_key LIMIT "+strconv.Itoa(limit+1), args...)
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	var next netip.Prefix
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Prefix
	}
	return out, next, nil
}

// ipamTxn is one Update; it writes straight into the SQL transaction, which
// makes its writes visible to its own later reads.
type ipamTxn struct {
	ctx  context.Context
	r    reader
	pool ipam.Pool
}

func (t *ipamTxn) Pool() ipam.Pool {
	p := t.pool
	p.Clusters = append([]string(nil), p.Clusters...)
	p.Blocks = append([]ipam.Block(nil), p.Blocks...)
	return p
}

func (t *ipamTxn) Version() (string, uint64) { return t.pool.UID, t.pool.Version }

func (t *ipamTxn) SetPool(p ipam.Pool) error {
	p.ID = t.pool.ID
	clusters, blocks, err := poolJSON(p)
	if err != nil {
		return err
	}
	_, err = t.r.exec(t.ctx, "UPDATE ipam_pools SET clusters = ?, blocks = ? WHERE id = ?", clusters, blocks, t.pool.ID)
	return err
}

func (t *ipamTxn) Cursor(blockID string) (ipam.Cursor, error) {
	var c ipam.Cursor
	var next int64
	var atEnd, wrapped int
	err := t.r.queryRow(t.ctx, "SELECT next, at_end, wrapped FROM ipam_cursors WHERE pool = ? AND block = ?", t.pool.ID, blockID).Scan(&next, &atEnd, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, t.r.wrap(err)
	}
	// Offsets are uint64; they are stored bit for bit in a signed column.
	c.Next, c.AtEnd, c.Wrapped = uint64(next), atEnd != 0, wrapped != 0
	return c, nil
}

func (t *ipamTxn) SetCursor(blockID string, c ipam.Cursor) error {
	_, err := t.r.exec(t.ctx, "INSERT INTO ipam_cursors (pool, block, next, at_end, wrapped) VALUES (?, ?, ?, ?, ?) ON CONFLICT (pool, block) DO UPDATE SET next = excluded.next, at_end = excluded.at_end, wrapped = excluded.wrapped",
		t.pool.ID, blockID, int64(c.Next), boolInt(c.AtEnd), boolInt(c.Wrapped))
	return err
}

func (t *ipamTxn) Get(p netip.Prefix) (ipam.Record, bool, error) {
	rec, err := scanRecord(t.r.queryRow(t.ctx, "SELECT "+recordCols+" FROM ipam_records WHERE pool = ? AND prefix = ?", t.pool.ID, p.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return ipam.Record{}, false, nil
	}
	if err != nil {
		return ipam.Record{}, false, t.r.wrap(err)
	}
	return rec, true, nil
}

func (t *ipamTxn) Put(rec ipam.Record) error {
	if !rec.Prefix.IsValid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "record prefix %s is not valid", rec.Prefix)
	}
	if rec.State == ipam.StateAllocated {
		if old, ok, err := t.Get(rec.Prefix); err != nil {
			return err
		} else if ok && old.State == ipam.StateAllocated {
			return virtplane.Errorf(virtplane.ErrAlreadyExists, "%s is allocated to %s", rec.Prefix, old.Owner.VM)
		}
	}
	tags := ""
	if rec.Tags != nil {
		b, err := json.Marshal(rec.Tags)
		if err != nil {
			return err
		}
		tags = string(b)
	}
	_, err := t.r.exec(t.ctx, "INSERT INTO ipam_records (pool, prefix, sort_key, block, state, vm, iface, tags, allocated_at, released_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "+
		"ON CONFLICT (pool, prefix) DO UPDATE SET block = excluded.block, state = excluded.state, vm = excluded.vm, iface = excluded.iface, tags = excluded.tags, allocated_at = excluded.allocated_at, released_at = excluded.released_at",
		t.pool.ID, rec.Prefix.String(), sortKey(rec.Prefix), rec.Block, int(rec.State), rec.Owner.VM, rec.Owner.Interface, tags, nanos(rec.AllocatedAt), nanos(rec.ReleasedAt))
	return err
}

func (t *ipamTxn) Delete(p netip.Prefix) error {
	_, err := t.r.exec(t.ctx, "DELETE FROM ipam_records WHERE pool = ? AND prefix = ?", t.pool.ID, p.String())
	return err
}

func (t *ipamTxn) Records(blockID string, fn func(ipam.Record) error) error {
	// Read everything first: fn may write in the same transaction, and a
	// PostgreSQL connection cannot run a statement while rows are open.
	recs, err := queryRecords(t.ctx, t.r, "SELECT "+recordCols+" FROM ipam_records WHERE pool = ? AND block = ?", t.pool.ID, blockID)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (t *ipamTxn) DeleteBlockRecords(blockID string) error {
	if _, err := t.r.exec(t.ctx, "DELETE FROM ipam_records WHERE pool = ? AND block = ?", t.pool.ID, blockID); err != nil {
		return err
	}
	_, err := t.r.exec(t.ctx, "DELETE FROM ipam_cursors WHERE pool = ? AND block = ?", t.pool.ID, blockID)
	return err
}
