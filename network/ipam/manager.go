package ipam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/virtplane/virtplane"
)

// Manager allocates addresses and prefixes from the pools of a Store. It
// keeps a bitmap cache per pool and checks it against the pool's version in
// every transaction, so several managers (daemons) may share one store.
// A Manager is safe for concurrent use.
type Manager struct {
	store    Store
	cooldown time.Duration
	now      func() time.Time

	mu    sync.Mutex // guards pools
	pools map[string]*poolCache
}

// Config holds the required inputs of a Manager.
type Config struct {
	Store Store
}

// Option configures a Manager.
type Option func(*Manager)

// WithCooldown sets how long a released address rests before it can be
// handed out again (default DefaultCooldown; 0 disables the cooldown).
func WithCooldown(d time.Duration) Option { return func(m *Manager) { m.cooldown = d } }

// WithClock replaces time.Now, for tests and simulations.
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// DefaultCooldown keeps a customer's released address away from the next
// customer for a day.
const DefaultCooldown = 24 * time.Hour

// New returns a Manager over cfg.Store.
func New(cfg Config, opts ...Option) (*Manager, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ipam config: Store is nil")
	}
	m := &Manager{store: cfg.Store, cooldown: DefaultCooldown, now: time.Now, pools: map[string]*poolCache{}}
	for _, o := range opts {
		o(m)
	}
	if m.cooldown < 0 {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "ipam cooldown %s is negative", m.cooldown)
	}
	return m, nil
}

// Allocation is an address or delegated prefix that belongs to an owner.
type Allocation struct {
	Pool  string
	Block string
	// Prefix is the allocated address as a /32 or /128, or the delegated prefix.
	Prefix      netip.Prefix
	Owner       Owner
	Tags        map[string]string
	AllocatedAt time.Time
	// Network is the block's CIDR (the on-link prefix of the address), zero
	// for blocks defined as explicit ranges.
	Network netip.Prefix
	// Gateway is the block's gateway, if it has one.
	Gateway netip.Addr
}

// Addr returns the allocated address (the first address of a delegated prefix).
func (a Allocation) Addr() netip.Addr { return a.Prefix.Addr() }

// Family selects IPv4 or IPv6.
type Family uint8

const (
	// AnyFamily takes from the first block that has room.
	AnyFamily Family = 0
	IPv4      Family = 4
	IPv6      Family = 6
)

// Request asks for an address or a delegated prefix.
type Request struct {
	Owner Owner
	Tags  map[string]string
	// Addr asks for this address (or the delegated prefix holding it); zero
	// asks for the next free one. Asking again for an address the same
	// owner holds returns the existing allocation, so retries are safe.
	Addr netip.Addr
	// Family limits next-free allocation to IPv4 or IPv6 blocks.
	Family Family
	// Prefix asks for a delegated prefix (blocks with a PrefixLen) instead
	// of a single address.
	Prefix bool
}

func (r Request) validate() error {
	if strings.TrimSpace(r.Owner.VM) == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "allocation owner VM is empty")
	}
	switch r.Family {
	case AnyFamily, IPv4, IPv6:
	default:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "allocation family %d is not 0, 4 or 6", r.Family)
	}
	if r.Addr.IsValid() && r.Addr.Zone() != "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "allocation address %s has a zone", r.Addr)
	}
	return nil
}

func (r Request) wants(b Block) bool {
	if (b.PrefixLen != 0) != r.Prefix {
		return false
	}
	switch r.Family {
	case IPv4:
		return b.Range.From().Is4()
	case IPv6:
		return b.Range.From().Is6()
	}
	return true
}

// poolCache is a manager's in-memory allocator state for one pool.
type poolCache struct {
	// qmu guards queue and leading: the operations waiting for the pool's
	// next transaction, and whether a goroutine runs them.
	qmu     sync.Mutex
	queue   []*poolOp
	leading bool

	mu      sync.Mutex // serialises this manager's transactions on the pool
	valid   bool
	version uint64
	uid     string        // the pool incarnation the cache belongs to
	blocks  []*blockState // in pool order
	saved   map[string]Cursor
	opErr   error // the running operation's refusal, committed with its expiries
}

// blockFor returns the block holding address a that serves req.
func (c *poolCache) blockFor(a netip.Addr, prefix bool) *blockState {
	for _, b := range c.blocks {
		if b.blk.Range.Contains(a) && (b.blk.PrefixLen != 0) == prefix {
			return b
		}
	}
	return nil
}

func (m *Manager) cache(poolID string) *poolCache {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.pools[poolID]
	if !ok {
		c = &poolCache{}
		m.pools[poolID] = c
	}
	return c
}

// poolOp is one operation waiting for its pool's next transaction.
type poolOp struct {
	ctx  context.Context
	fn   func(t Txn, c *poolCache, now time.Time) error
	err  error
	done chan struct{}
}

// update runs fn in a store transaction with the pool's allocators loaded
// and current. fn reports a refusal (no room, address taken) with
// c.refuse, so that the expiries done on the way are still committed.
//
// The operations that arrive on a pool while its transaction runs wait and
// then share the next one: a store that commits in groups then commits
// many allocations of one pool together, where one transaction at a time
// per pool would allow one allocation per commit.
func (m *Manager) update(ctx context.Context, poolID string, fn func(t Txn, c *poolCache, now time.Time) error) error {
	c := m.cache(poolID)
	op := &poolOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	c.qmu.Lock()
	c.queue = append(c.queue, op)
	lead := !c.leading
	c.leading = true
	c.qmu.Unlock()
	if lead {
		m.lead(poolID, c, true)
	}
	<-op.done
	return op.err
}

// lead runs the queued operations of a pool, a transaction at a time. The
// caller's own operation is in the first round; when more wait after it,
// a new goroutine leads on, so that the caller returns.
func (m *Manager) lead(poolID string, c *poolCache, caller bool) {
	for {
		c.qmu.Lock()
		ops := c.queue
		c.queue = nil
		if len(ops) == 0 {
			c.leading = false
			c.qmu.Unlock()
			return
		}
		c.qmu.Unlock()
		m.runOps(poolID, c, ops)
		if caller {
			c.qmu.Lock()
			more := len(c.queue) > 0
			if !more {
				c.leading = false
			}
			c.qmu.Unlock()
			if more {
				go m.lead(poolID, c, false)
			}
			return
		}
	}
}

// runOps runs ops in one store transaction. An operation that fails (not a
// refusal: the store failed) rolls the transaction back; it gets its error
// and the others run again without it.
func (m *Manager) runOps(poolID string, c *poolCache, ops []*poolOp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	finish := func(op *poolOp, err error) {
		op.err = err
		close(op.done)
	}
	for len(ops) > 0 {
		live := ops[:0]
		for _, op := range ops {
			if err := op.ctx.Err(); err != nil {
				finish(op, virtplane.Errorf(virtplane.ErrCanceled, "ipam: %v", err))
				continue
			}
			live = append(live, op)
		}
		ops = live
		if len(ops) == 0 {
			return
		}
		var readVersion uint64
		refusals := make([]error, len(ops))
		failed := -1
		attempts := 0
		// One caller's cancel must not fail the others' transaction.
		err := m.store.Update(context.WithoutCancel(ops[0].ctx), poolID, func(t Txn) error {
			attempts++
			if attempts > 1 {
				c.valid = false // the allocators hold the rolled-back attempt
			}
			failed = -1
			uid, version := t.Version()
			readVersion = version
			if !c.valid || c.version != version || c.uid != uid {
				if err := c.load(t, t.Pool(), m.cooldown); err != nil {
					c.valid = false
					return err
				}
			}
			now := m.now()
			for _, b := range c.blocks {
				b.journal, b.record = b.journal[:0], true
				if len(b.cooling) > b.coolHead {
					b.expire(now.UnixNano())
				}
			}
			// Write the expiries first, so that the operations read
			// records that agree with the allocators.
			if err := c.flush(t); err != nil {
				return err
			}
			for i, op := range ops {
				c.opErr = nil
				if err := op.fn(t, c, now); err != nil {
					failed = i
					return err
				}
				if err := c.flush(t); err != nil {
					failed = i
					return err
				}
				refusals[i] = c.opErr
			}
			return nil
		})
		if err == nil {
			c.valid, c.version = true, readVersion+1
			for i, op := range ops {
				finish(op, refusals[i])
			}
			return
		}
		// The allocators may hold changes that were rolled back.
		c.valid = false
		if failed < 0 {
			for _, op := range ops {
				finish(op, err)
			}
			return
		}
		finish(ops[failed], err)
		ops = append(ops[:failed:failed], ops[failed+1:]...)
	}
}

// refuse records the operation's refusal; the transaction still commits.
func (c *poolCache) refuse(err error) error {
	c.opErr = err
	return nil
}

// load rebuilds the allocators from the store.
func (c *poolCache) load(t Txn, p Pool, cooldown time.Duration) error {
	c.blocks = c.blocks[:0]
	c.saved = map[string]Cursor{}
	for _, b := range p.Blocks {
		st := newBlockState(b, int64(cooldown))
		cur, err := t.Cursor(b.ID)
		if err != nil {
			return err
		}
		if cur.Next <= st.last {
			st.cursor = cur.Next
		}
		st.atEnd, st.lap1 = cur.AtEnd, !cur.Wrapped
		c.saved[b.ID] = cur
		err = t.Records(b.ID, func(r Record) error {
			if !b.Contains(r.Prefix) {
				return virtplane.Errorf(virtplane.ErrConflict, "stored record %s is outside block %q", r.Prefix, b.ID)
			}
			off := b.offsetOf(r.Prefix.Addr())
			res, isRes := st.reserved[off]
			switch r.State {
			case StateAllocated, StateCooling:
				if isRes {
					st.reserved[off] = reservation{used: true, busy: true}
				}
				st.bits.set(off)
				if r.State == StateCooling {
					st.cooling = append(st.cooling, cooling{off, r.ReleasedAt.UnixNano()})
				}
			case StateRetired:
				if isRes {
					res.used = true
					st.reserved[off] = res
				} else {
					if st.deferred == nil {
						st.deferred = map[uint64]struct{}{}
					}
					st.deferred[off] = struct{}{}
					st.bits.set(off)
				}
			case StateFresh:
				if !isRes {
					if st.fresh == nil {
						st.fresh = map[uint64]struct{}{}
					}
					st.fresh[off] = struct{}{}
					st.bits.clear(off)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sort.Slice(st.cooling, func(i, j int) bool { return st.cooling[i].at < st.cooling[j].at })
		c.blocks = append(c.blocks, st)
	}
	c.valid, c.version, c.uid = true, p.Version, p.UID
	return nil
}

// flush writes the allocators' journals and moved cursors to the store.
func (c *poolCache) flush(t Txn) error {
	for _, b := range c.blocks {
		for _, tr := range b.journal {
			p := b.blk.unitPrefix(tr.off)
			var err error
			if tr.state == StateFree {
				err = t.Delete(p)
			} else {
				err = t.Put(Record{Block: b.blk.ID, Prefix: p, State: tr.state})
			}
			if err != nil {
				return err
			}
		}
		b.journal = b.journal[:0]
		cur := Cursor{Next: b.cursor, AtEnd: b.atEnd, Wrapped: !b.lap1}
		if cur != c.saved[b.blk.ID] {
			if err := t.SetCursor(b.blk.ID, cur); err != nil {
				return err
			}
			c.saved[b.blk.ID] = cur
		}
	}
	return nil
}

func toAllocation(r Record, b Block) Allocation {
	return Allocation{
		Pool: r.Pool, Block: r.Block, Prefix: r.Prefix, Owner: r.Owner, Tags: r.Tags,
		AllocatedAt: r.AllocatedAt, Network: b.CIDR, Gateway: b.Gateway,
	}
}

// Allocate hands out the next free unit of the pool, or the one req.Addr
// names. Next-free allocation prefers units never handed out before, in
// every block, over released ones. Errors: ErrResourceExhausted when the
// pool has no free unit of the kind asked, ErrConflict when the asked
// address is in use or cooling down, ErrInvalidArgument when it is excluded
// or outside the pool.
func (m *Manager) Allocate(ctx context.Context, poolID string, req Request) (Allocation, error) {
	if err := req.validate(); err != nil {
		return Allocation{}, err
	}
	var out Allocation
	err := m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		var st *blockState
		var off uint64
		if req.Addr.IsValid() {
			a := req.Addr.Unmap()
			st = c.blockFor(a, req.Prefix)
			if st == nil {
				return c.refuse(virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is in no %s block of pool %q", a, kindName(req.Prefix), poolID))
			}
			unit := st.blk.unitPrefixOfAddr(a)
			old, ok, err := t.Get(unit)
			if err != nil {
				return err
			}
			if ok && old.State == StateAllocated {
				if old.Owner == req.Owner {
					out = toAllocation(old, st.blk)
					return nil
				}
				return c.refuse(virtplane.Errorf(virtplane.ErrConflict, "address %s of pool %q is allocated to VM %q", unit, poolID, old.Owner.VM))
			}
			if ok && old.State == StateCooling {
				return c.refuse(virtplane.Errorf(virtplane.ErrConflict, "address %s of pool %q is cooling down until %s", unit, poolID, old.ReleasedAt.Add(m.cooldown).Format(time.RFC3339)))
			}
			off = st.blk.offsetOf(unit.Addr())
			if err := st.take(off); err != nil {
				return c.refuse(err)
			}
		} else {
			var found bool
			for _, b := range c.blocks {
				if req.wants(b.blk) {
					if off, found = b.nextNever(); found {
						st = b
						break
					}
				}
			}
			if !found {
				for _, b := range c.blocks {
					if req.wants(b.blk) {
						if off, found = b.nextAny(); found {
							st = b
							break
						}
					}
				}
			}
			if !found {
				return c.refuse(virtplane.Errorf(virtplane.ErrResourceExhausted, "pool %q has no free %s%s", poolID, familyName(req.Family), kindName(req.Prefix)))
			}
		}
		r := Record{Pool: poolID, Block: st.blk.ID, Prefix: st.blk.unitPrefix(off), State: StateAllocated,
			Owner: req.Owner, Tags: req.Tags, AllocatedAt: now.UTC()}
		// The journal may delete the record of the very unit just picked
		// (it cooled down or was held back until the wrap): write it first.
		if err := c.flush(t); err != nil {
			return err
		}
		if err := t.Put(r); err != nil {
			return err
		}
		out = toAllocation(r.clone(), st.blk)
		return nil
	})
	if err != nil {
		return Allocation{}, err
	}
	return out, nil
}

func kindName(prefix bool) string {
	if prefix {
		return "prefix"
	}
	return "address"
}

func familyName(f Family) string {
	switch f {
	case IPv4:
		return "IPv4 "
	case IPv6:
		return "IPv6 "
	}
	return ""
}

// unitOf finds the block and unit prefix of p (an address as /32 or /128,
// or a delegated prefix, or any address inside one).
func (c *poolCache) unitOf(poolID string, p netip.Prefix) (*blockState, netip.Prefix, error) {
	if !p.IsValid() {
		return nil, netip.Prefix{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "prefix %s is not valid", p)
	}
	a := p.Addr().Unmap()
	for _, b := range c.blocks {
		if b.blk.Range.Contains(a) {
			u := b.blk.unitPrefixOfAddr(a)
			if p.Bits() == a.BitLen() || p.Bits() == u.Bits() {
				return b, u, nil
			}
		}
	}
	return nil, netip.Prefix{}, virtplane.Errorf(virtplane.ErrNotFound, "%s is in no block of pool %q", p, poolID)
}

// Release gives back an allocation; p is the allocated prefix or address.
// The unit cools down before it is handed out again. ErrNotFound when it is
// not allocated.
func (m *Manager) Release(ctx context.Context, poolID string, p netip.Prefix) error {
	return m.release(ctx, poolID, p, nil)
}

// release releases p; when owner is set, only if p still belongs to it, so
// that ReleaseOwner never frees an address that changed hands meanwhile.
func (m *Manager) release(ctx context.Context, poolID string, p netip.Prefix, owner *Owner) error {
	return m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		st, unit, err := c.unitOf(poolID, p)
		if err != nil {
			return c.refuse(err)
		}
		old, ok, err := t.Get(unit)
		if err != nil {
			return err
		}
		if !ok || old.State != StateAllocated || (owner != nil && !owns(*owner, old.Owner)) {
			return c.refuse(virtplane.Errorf(virtplane.ErrNotFound, "%s is not allocated in pool %q", unit, poolID))
		}
		if st.release(st.blk.offsetOf(unit.Addr()), now.UnixNano()) {
			old.State, old.ReleasedAt = StateCooling, now.UTC()
			if err := c.flush(t); err != nil {
				return err
			}
			return t.Put(old)
		}
		return nil
	})
}

// owns reports whether owner pattern o (an empty Interface matches all of
// the VM's interfaces) covers holder h.
func owns(o, h Owner) bool { return o.VM == h.VM && (o.Interface == "" || o.Interface == h.Interface) }

// ReleaseOwner releases every allocation of an owner in every pool (all
// interfaces of the VM when Interface is empty), as a VM delete does, and
// returns what it released. Each release is its own transaction; after a
// failure, calling ReleaseOwner again releases the rest.
func (m *Manager) ReleaseOwner(ctx context.Context, o Owner) ([]Allocation, error) {
	held, err := m.LookupOwner(ctx, o)
	if err != nil {
		return nil, err
	}
	var out []Allocation
	for _, a := range held {
		err := m.release(ctx, a.Pool, a.Prefix, &a.Owner)
		if errors.Is(err, virtplane.ErrNotFound) {
			continue // released or gone meanwhile
		}
		if err != nil {
			return out, fmt.Errorf("release %s of pool %q: %w", a.Prefix, a.Pool, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ReleaseAddr is Release for a single address.
func (m *Manager) ReleaseAddr(ctx context.Context, poolID string, a netip.Addr) error {
	if !a.IsValid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "address is not valid")
	}
	return m.Release(ctx, poolID, netip.PrefixFrom(a, a.BitLen()))
}

// Reserve keeps an address (or the delegated prefix holding it) out of
// next-free allocation; it stays allocatable by explicit request. The
// reservation is part of the block definition.
func (m *Manager) Reserve(ctx context.Context, poolID string, a netip.Addr) error {
	return m.setReserved(ctx, poolID, a, true)
}

// Unreserve returns a reserved address to next-free allocation.
func (m *Manager) Unreserve(ctx context.Context, poolID string, a netip.Addr) error {
	return m.setReserved(ctx, poolID, a, false)
}

func (m *Manager) setReserved(ctx context.Context, poolID string, a netip.Addr, on bool) error {
	if !a.IsValid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "reserved address is not valid")
	}
	a = a.Unmap()
	return m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		st, unit, err := c.unitOf(poolID, netip.PrefixFrom(a, a.BitLen()))
		if err != nil {
			return c.refuse(err)
		}
		p := t.Pool()
		i := slices.IndexFunc(p.Blocks, func(b Block) bool { return b.ID == st.blk.ID })
		if i < 0 {
			return virtplane.Errorf(virtplane.ErrConflict, "block %q vanished from pool %q", st.blk.ID, poolID)
		}
		blk := &p.Blocks[i]
		has := slices.ContainsFunc(blk.Reserved, func(r netip.Addr) bool { return blk.unitPrefixOfAddr(r) == unit })
		off := st.blk.offsetOf(unit.Addr())
		switch {
		case on && !has:
			if st.excluded(off) {
				return c.refuse(virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is excluded from block %q", a, st.blk.ID))
			}
			if err := st.reserve(off); err != nil {
				return err
			}
			blk.Reserved = append(blk.Reserved, unit.Addr())
		case !on && has:
			st.unreserve(off)
			blk.Reserved = slices.DeleteFunc(blk.Reserved, func(r netip.Addr) bool { return blk.unitPrefixOfAddr(r) == unit })
		default:
			return nil
		}
		st.blk.Reserved = slices.Clone(blk.Reserved)
		return t.SetPool(p)
	})
}

// CreatePool validates and stores a new pool. Blocks without ID get their
// range as ID ("10.0.0.0/24"); blocks of one pool must not overlap.
func (m *Manager) CreatePool(ctx context.Context, p Pool) (Pool, error) {
	if err := validatePoolID(p.ID); err != nil {
		return Pool{}, err
	}
	p = p.clone()
	p.Version = 0
	uid, err := newUID()
	if err != nil {
		return Pool{}, err
	}
	p.UID = uid
	var seen []Block
	for i := range p.Blocks {
		b, err := checkNewBlock(p.Blocks[i], seen)
		if err != nil {
			return Pool{}, fmt.Errorf("pool %q: %w", p.ID, err)
		}
		p.Blocks[i] = b
		seen = append(seen, b)
	}
	if err := m.store.CreatePool(ctx, p); err != nil {
		return Pool{}, err
	}
	return m.store.GetPool(ctx, p.ID)
}

// newUID returns a random identifier for a pool incarnation.
func newUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "pool UID: %v", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func validatePoolID(id string) error {
	if strings.TrimSpace(id) == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "pool ID %q must be 1 to 128 printable characters", id)
	}
	return nil
}

func checkNewBlock(b Block, others []Block) (Block, error) {
	if b.ID == "" {
		if b.CIDR.IsValid() {
			b.ID = b.CIDR.String()
		} else {
			b.ID = b.Range.String()
		}
	}
	if err := b.Validate(); err != nil {
		return Block{}, err
	}
	for _, o := range others {
		if o.ID == b.ID {
			return Block{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "block %q", b.ID)
		}
		if o.Range.From().Is4() == b.Range.From().Is4() && o.Range.Overlaps(b.Range) {
			return Block{}, virtplane.Errorf(virtplane.ErrConflict, "block %s overlaps block %q (%s)", b.Range, o.ID, o.Range)
		}
	}
	return b.clone(), nil
}

// GetPool returns a pool.
func (m *Manager) GetPool(ctx context.Context, id string) (Pool, error) {
	return m.store.GetPool(ctx, id)
}

// ListPools pages through the pools in ID order; pass the returned ID as
// after for the next page ("" when there is none). cluster, when not
// empty, keeps the pools attached to that cluster.
func (m *Manager) ListPools(ctx context.Context, cluster, after string, limit int) ([]Pool, string, error) {
	if cluster == "" {
		return m.store.ListPools(ctx, after, limit)
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	var out []Pool
	for {
		page, next, err := m.store.ListPools(ctx, after, limit)
		if err != nil {
			return nil, "", err
		}
		for _, p := range page {
			if slices.Contains(p.Clusters, cluster) {
				out = append(out, p)
				if len(out) == limit {
					return out, p.ID, nil
				}
			}
		}
		if next == "" {
			return out, "", nil
		}
		after = next
	}
}

// DeletePool removes a pool; ErrConflict while it has allocations.
func (m *Manager) DeletePool(ctx context.Context, id string) error {
	if err := m.store.DeletePool(ctx, id); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.pools, id)
	m.mu.Unlock()
	return nil
}

// SetClusters attaches the pool to exactly these clusters.
func (m *Manager) SetClusters(ctx context.Context, poolID string, clusters []string) error {
	for _, c := range clusters {
		if strings.TrimSpace(c) == "" {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %q: cluster name is empty", poolID)
		}
	}
	return m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		p := t.Pool()
		p.Clusters = slices.Clone(clusters)
		return t.SetPool(p)
	})
}

// AddBlock adds a block to a pool and returns it with its ID.
func (m *Manager) AddBlock(ctx context.Context, poolID string, b Block) (Block, error) {
	var out Block
	err := m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		p := t.Pool()
		nb, err := checkNewBlock(b, p.Blocks)
		if err != nil {
			return c.refuse(fmt.Errorf("pool %q: %w", poolID, err))
		}
		// A block of the same ID removed earlier left no records (RemoveBlock
		// deletes them); the cursor starts over.
		if err := t.SetCursor(nb.ID, Cursor{}); err != nil {
			return err
		}
		p.Blocks = append(p.Blocks, nb)
		if err := t.SetPool(p); err != nil {
			return err
		}
		c.blocks = append(c.blocks, newBlockState(nb, int64(m.cooldown)))
		c.saved[nb.ID] = Cursor{}
		out = nb.clone()
		return nil
	})
	return out, err
}

// RemoveBlock removes a block and the records of its released units.
// ErrConflict while one of its units is allocated.
func (m *Manager) RemoveBlock(ctx context.Context, poolID, blockID string) error {
	return m.update(ctx, poolID, func(t Txn, c *poolCache, now time.Time) error {
		p := t.Pool()
		i := slices.IndexFunc(p.Blocks, func(b Block) bool { return b.ID == blockID })
		if i < 0 {
			return c.refuse(virtplane.Errorf(virtplane.ErrNotFound, "pool %q has no block %q", poolID, blockID))
		}
		errInUse := errors.New("in use")
		var used netip.Prefix
		err := t.Records(blockID, func(r Record) error {
			if r.State == StateAllocated {
				used = r.Prefix
				return errInUse
			}
			return nil
		})
		if errors.Is(err, errInUse) {
			return c.refuse(virtplane.Errorf(virtplane.ErrConflict, "block %q of pool %q is in use (%s is allocated)", blockID, poolID, used))
		}
		if err != nil {
			return err
		}
		if err := t.DeleteBlockRecords(blockID); err != nil {
			return err
		}
		p.Blocks = slices.Delete(p.Blocks, i, i+1)
		if err := t.SetPool(p); err != nil {
			return err
		}
		c.blocks = slices.DeleteFunc(c.blocks, func(b *blockState) bool { return b.blk.ID == blockID })
		delete(c.saved, blockID)
		return nil
	})
}

// Lookup returns the allocation holding address a (or the delegated
// prefix holding it); ErrNotFound when it is not allocated.
func (m *Manager) Lookup(ctx context.Context, poolID string, a netip.Addr) (Allocation, error) {
	if !a.IsValid() {
		return Allocation{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "lookup address is not valid")
	}
	a = a.Unmap()
	p, err := m.store.GetPool(ctx, poolID)
	if err != nil {
		return Allocation{}, err
	}
	for _, b := range p.Blocks {
		if !b.Range.Contains(a) {
			continue
		}
		r, err := m.store.Get(ctx, poolID, b.unitPrefixOfAddr(a))
		if err != nil {
			return Allocation{}, err
		}
		if r.State != StateAllocated {
			return Allocation{}, virtplane.Errorf(virtplane.ErrNotFound, "%s is not allocated in pool %q (%s)", a, poolID, r.State)
		}
		return toAllocation(r, b), nil
	}
	return Allocation{}, virtplane.Errorf(virtplane.ErrNotFound, "%s is in no block of pool %q", a, poolID)
}

// LookupOwner returns the allocations of an owner in every pool; an empty
// Interface matches all interfaces of the VM.
func (m *Manager) LookupOwner(ctx context.Context, o Owner) ([]Allocation, error) {
	if strings.TrimSpace(o.VM) == "" {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "lookup owner VM is empty")
	}
	recs, err := m.store.ByOwner(ctx, o)
	if err != nil {
		return nil, err
	}
	pools := map[string]Pool{}
	out := make([]Allocation, 0, len(recs))
	for _, r := range recs {
		p, ok := pools[r.Pool]
		if !ok {
			if p, err = m.store.GetPool(ctx, r.Pool); err != nil {
				return nil, err
			}
			pools[r.Pool] = p
		}
		b, _ := p.Block(r.Block)
		out = append(out, toAllocation(r, b))
	}
	return out, nil
}

// List pages through a pool's allocations in address order. Pass the
// returned prefix as opts.After for the next page; it is zero at the end.
func (m *Manager) List(ctx context.Context, poolID string, after netip.Prefix, limit int) ([]Allocation, netip.Prefix, error) {
	p, err := m.store.GetPool(ctx, poolID)
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	recs, next, err := m.store.List(ctx, poolID, ListOptions{After: after, Limit: limit, State: StateAllocated})
	if err != nil {
		return nil, netip.Prefix{}, err
	}
	out := make([]Allocation, len(recs))
	for i, r := range recs {
		b, _ := p.Block(r.Block)
		out[i] = toAllocation(r, b)
	}
	return out, next, nil
}
