package ipam

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// RecordState is what a stored record says about its unit.
type RecordState uint8

const (
	// StateFree is never stored: a unit without record is free (or never
	// used). It appears in the allocator's journal.
	StateFree RecordState = iota
	// StateAllocated: the unit belongs to an owner.
	StateAllocated
	// StateCooling: the unit was released at ReleasedAt and rests for the
	// cooldown; the record keeps the last owner for audits.
	StateCooling
	// StateRetired: the unit was used before and is held back (reserved, or
	// ahead of the allocator's first-lap cursor).
	StateRetired
	// StateFresh: the unit was never used and the allocator's cursor has
	// passed it; it is handed out before any used unit.
	StateFresh
)

// String returns the state's name.
func (s RecordState) String() string {
	switch s {
	case StateFree:
		return "free"
	case StateAllocated:
		return "allocated"
	case StateCooling:
		return "cooling"
	case StateRetired:
		return "retired"
	case StateFresh:
		return "fresh"
	}
	return "unknown"
}

// Owner is who holds an allocation: a VM and one of its interfaces.
type Owner struct {
	VM        string
	Interface string
}

// Record is the stored state of one unit (an address, or a delegated
// prefix) of a pool. Only units that are not plain free have a record, so a
// store holds as many records as there are allocations plus a few.
type Record struct {
	Pool        string
	Block       string
	Prefix      netip.Prefix // the address as a /32 or /128, or the delegated prefix
	State       RecordState
	Owner       Owner
	Tags        map[string]string
	AllocatedAt time.Time
	ReleasedAt  time.Time // set in StateCooling
}

func (r Record) clone() Record {
	if r.Tags != nil {
		t := make(map[string]string, len(r.Tags))
		for k, v := range r.Tags {
			t[k] = v
		}
		r.Tags = t
	}
	return r
}

// Cursor is the position of a block's allocation walk, persisted so that a
// restarted or second allocator continues where the first stopped.
type Cursor struct {
	Next    uint64 // unit offset the walk looks at next
	AtEnd   bool   // the walk passed the last unit
	Wrapped bool   // the walk finished its first lap
}

// Pool is a named set of blocks, attached to clusters.
type Pool struct {
	ID       string
	Clusters []string
	Blocks   []Block
	// UID tells incarnations of a pool ID apart (a pool deleted and created
	// again starts at Version 0 with a new UID); the Manager sets it.
	UID string
	// Version counts the committed Update transactions of the pool. An
	// allocator caches a pool's state with the version it read it at and
	// reloads when the version moved (another allocator wrote).
	Version uint64
}

func (p Pool) clone() Pool {
	p.Clusters = slices.Clone(p.Clusters)
	p.Blocks = slices.Clone(p.Blocks)
	for i := range p.Blocks {
		p.Blocks[i] = p.Blocks[i].clone()
	}
	return p
}

// Block returns the block with the given ID.
func (p Pool) Block(id string) (Block, bool) {
	for _, b := range p.Blocks {
		if b.ID == id {
			return b, true
		}
	}
	return Block{}, false
}

// ListOptions pages through records in address order.
type ListOptions struct {
	// After is the last prefix of the previous page; zero starts at the beginning.
	After netip.Prefix
	// Limit caps the page; 0 means DefaultPageSize.
	Limit int
	// State keeps only records in that state; StateFree keeps all.
	State RecordState
}

// DefaultPageSize is the page size when ListOptions.Limit is 0.
const DefaultPageSize = 100

// Store persists pools and their records.
//
// Atomicity contract. Every change to a pool goes through Update, which runs
// fn in a transaction that is serialised with every other Update of the
// same pool — in every process sharing the store — and commits all of fn's
// writes or none. Update bumps Pool.Version by exactly one when fn returns
// nil and the commit succeeds.
//
// Why this shape: the allocation algorithm (bitmaps, cursor, cooldown,
// never-used preference) stays in Go, written once, and a store only has to
// serialise and persist. In each transaction the Manager compares
// Txn.Version with the (UID, Version) its bitmap cache was built at; if
// another process wrote in between it rebuilds the cache from Records, then
// picks a unit and Puts its record in the same transaction. Serialising per
// pool costs little: an allocation holds the lock for microseconds, and
// pools are independent. (Optimistic compare-and-swap on the version would
// work too, but under contention every loser reloads a pool's state, which
// for a /8 is costly; a row lock makes the losers wait instead.)
//
// A SQL store implements Update as
//
//	BEGIN;                                  -- SQLite: BEGIN IMMEDIATE (one writer)
//	SELECT uid, version, ... FROM ipam_pools WHERE id = $1 FOR UPDATE;  -- PostgreSQL row lock
//	... fn: Get/Put/Delete on ipam_records, Cursor/SetCursor on ipam_cursors ...
//	UPDATE ipam_pools SET version = version + 1 WHERE id = $1;
//	COMMIT;
//
// with ipam_records keyed by (pool, prefix), so a unit has one record, and
// Put of an Allocated record written as an INSERT ... ON CONFLICT DO UPDATE
// ... WHERE ipam_records.state <> 'allocated' that fails when no row was
// written: even a buggy caller cannot hand an address out twice. READ
// COMMITTED isolation suffices because the pool row lock orders the writers.
//
// Reads outside Update (GetPool, Get, ByOwner, List) see committed state
// and never wait for a transaction.
type Store interface {
	// CreatePool stores a new pool (its Version is ignored and starts at 0);
	// ErrAlreadyExists if the ID is taken.
	CreatePool(ctx context.Context, p Pool) error
	// GetPool returns a pool; ErrNotFound if there is none.
	GetPool(ctx context.Context, id string) (Pool, error)
	// ListPools returns pools in ID order after the ID after, at most limit
	// (0: DefaultPageSize), and the ID to pass for the next page ("" at the end).
	ListPools(ctx context.Context, after string, limit int) ([]Pool, string, error)
	// DeletePool removes a pool and its records; ErrConflict while it holds
	// an Allocated record, ErrNotFound if there is none.
	DeletePool(ctx context.Context, id string) error
	// Update runs fn in a transaction on the pool (see the type comment).
	// An error from fn rolls back and is returned as is. ErrNotFound if the
	// pool does not exist.
	Update(ctx context.Context, poolID string, fn func(Txn) error) error
	// Get returns the record of a unit; ErrNotFound if it has none.
	Get(ctx context.Context, poolID string, p netip.Prefix) (Record, error)
	// ByOwner returns the Allocated records of an owner in all pools, in
	// (pool, address) order. An Owner with an empty Interface matches every
	// interface of the VM.
	ByOwner(ctx context.Context, o Owner) ([]Record, error)
	// List pages through a pool's records in address order and returns the
	// After value of the next page (zero at the end).
	List(ctx context.Context, poolID string, opts ListOptions) ([]Record, netip.Prefix, error)
}

// Txn is one Update transaction on one pool. Writes are visible to later
// reads in the same transaction and to nobody else before commit.
type Txn interface {
	// Pool returns the pool as of the transaction start, with its Version.
	Pool() Pool
	// Version returns the pool's UID and Version as of the transaction
	// start, without copying the pool (the Manager's cache check).
	Version() (uid string, version uint64)
	// SetPool replaces the pool's clusters and blocks (ID, UID and Version are kept).
	SetPool(p Pool) error
	// Cursor returns a block's cursor (zero value if never set).
	Cursor(blockID string) (Cursor, error)
	// SetCursor stores a block's cursor.
	SetCursor(blockID string, c Cursor) error
	// Get returns a unit's record and whether it has one.
	Get(p netip.Prefix) (Record, bool, error)
	// Put creates or replaces a unit's record. Putting an Allocated record
	// where an Allocated record exists fails with ErrAlreadyExists.
	Put(r Record) error
	// Delete removes a unit's record; deleting a missing record is no error.
	Delete(p netip.Prefix) error
	// Records calls fn for each record of a block, in no particular order,
	// and stops at fn's first error, which it returns.
	Records(blockID string, fn func(Record) error) error
	// DeleteBlockRecords removes every record of a block.
	DeleteBlockRecords(blockID string) error
}
