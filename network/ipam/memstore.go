package ipam

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/virtplane/virtplane"
)

// MemoryStore is the in-memory Store: the store of tests, of examples and of
// an embedding program that keeps IPAM state itself. It doubles as the fake:
// WithFaults injects errors per operation and WithCallLog records calls.
// It keeps records only for units that have one, so its size follows the
// number of allocations, not the size of the blocks.
type MemoryStore struct {
	mu     sync.RWMutex // guards pools, owners and calls
	pools  map[string]*memPool
	owners map[Owner][]poolPrefix // Allocated records by owner; owners hold few
	fault  func(op string) error
	log    bool
	calls  []string
}

type poolPrefix struct {
	pool   string
	prefix netip.Prefix
}

type memPool struct {
	update  sync.Mutex // serialises Update transactions
	pool    Pool
	cursors map[string]Cursor
	records map[netip.Prefix]Record
}

// MemoryStoreOption configures a MemoryStore.
type MemoryStoreOption func(*MemoryStore)

// WithFaults makes every operation call fault with its name first
// ("CreatePool", "GetPool", "ListPools", "DeletePool", "Update", "Commit",
// "Get", "ByOwner", "List") and fail with the error it returns, if any.
// "Commit" fails an Update after fn succeeded, as a lost database
// connection would.
func WithFaults(fault func(op string) error) MemoryStoreOption {
	return func(s *MemoryStore) { s.fault = fault }
}

// WithCallLog makes the store record the name of every operation; see Calls.
func WithCallLog() MemoryStoreOption { return func(s *MemoryStore) { s.log = true } }

// NewMemoryStore returns an empty store.
func NewMemoryStore(opts ...MemoryStoreOption) *MemoryStore {
	s := &MemoryStore{pools: map[string]*memPool{}, owners: map[Owner][]poolPrefix{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ Store = (*MemoryStore)(nil)

// Calls returns the operations recorded since WithCallLog, in order.
func (s *MemoryStore) Calls() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.calls)
}

func (s *MemoryStore) enter(ctx context.Context, op string) error {
	if s.log {
		s.mu.Lock()
		s.calls = append(s.calls, op)
		s.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ipam store %s: %w: %w", op, virtplane.ErrCanceled, err)
	}
	if s.fault != nil {
		return s.fault(op)
	}
	return nil
}

// CreatePool implements Store.
func (s *MemoryStore) CreatePool(ctx context.Context, p Pool) error {
	if err := s.enter(ctx, "CreatePool"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pools[p.ID]; ok {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "pool %q", p.ID)
	}
	p = p.clone()
	p.Version = 0
	s.pools[p.ID] = &memPool{pool: p, cursors: map[string]Cursor{}, records: map[netip.Prefix]Record{}}
	return nil
}

// GetPool implements Store.
func (s *MemoryStore) GetPool(ctx context.Context, id string) (Pool, error) {
	if err := s.enter(ctx, "GetPool"); err != nil {
		return Pool{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mp, ok := s.pools[id]
	if !ok {
		return Pool{}, virtplane.Errorf(virtplane.ErrNotFound, "pool %q", id)
	}
	return mp.pool.clone(), nil
}

// ListPools implements Store.
func (s *MemoryStore) ListPools(ctx context.Context, after string, limit int) ([]Pool, string, error) {
	if err := s.enter(ctx, "ListPools"); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.pools))
	for id := range s.pools {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]Pool, len(ids))
	for i, id := range ids {
		out[i] = s.pools[id].pool.clone()
	}
	return out, next, nil
}

// DeletePool implements Store; it waits for a running Update of the pool.
func (s *MemoryStore) DeletePool(ctx context.Context, id string) error {
	if err := s.enter(ctx, "DeletePool"); err != nil {
		return err
	}
	s.mu.RLock()
	mp, ok := s.pools[id]
	s.mu.RUnlock()
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "pool %q", id)
	}
	mp.update.Lock()
	defer mp.update.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range mp.records {
		if r.State == StateAllocated {
			return virtplane.Errorf(virtplane.ErrConflict, "pool %q still has allocations (%s)", id, r.Prefix)
		}
	}
	delete(s.pools, id)
	return nil
}

// Update implements Store: a mutex per pool serialises transactions, and
// the writes, buffered in the Txn, are applied at once on commit.
func (s *MemoryStore) Update(ctx context.Context, poolID string, fn func(Txn) error) error {
	if err := s.enter(ctx, "Update"); err != nil {
		return err
	}
	s.mu.RLock()
	mp, ok := s.pools[poolID]
	s.mu.RUnlock()
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "pool %q", poolID)
	}
	mp.update.Lock()
	defer mp.update.Unlock()
	s.mu.RLock()
	_, still := s.pools[poolID]
	t := &memTxn{mp: mp}
	s.mu.RUnlock()
	if !still {
		return virtplane.Errorf(virtplane.ErrNotFound, "pool %q", poolID)
	}
	if err := fn(t); err != nil {
		return err
	}
	if err := s.enter(ctx, "Commit"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.setPool != nil {
		mp.pool.Clusters, mp.pool.Blocks = t.setPool.Clusters, t.setPool.Blocks
	}
	if t.dropBlocks != nil {
		for p, r := range mp.records {
			if _, ok := t.dropBlocks[r.Block]; ok {
				s.unindex(r)
				delete(mp.records, p)
			}
		}
		for b := range t.dropBlocks {
			delete(mp.cursors, b)
		}
	}
	for p, r := range t.puts {
		if old, ok := mp.records[p]; ok {
			s.unindex(old)
			delete(mp.records, p)
		}
		if r != nil {
			mp.records[p] = *r
			s.index(*r)
		}
	}
	for b, c := range t.cursors {
		mp.cursors[b] = c
	}
	mp.pool.Version++
	return nil
}

func (s *MemoryStore) index(r Record) {
	if r.State != StateAllocated {
		return
	}
	s.owners[r.Owner] = append(s.owners[r.Owner], poolPrefix{r.Pool, r.Prefix})
}

func (s *MemoryStore) unindex(r Record) {
	if r.State != StateAllocated {
		return
	}
	set := slices.DeleteFunc(s.owners[r.Owner], func(k poolPrefix) bool { return k == poolPrefix{r.Pool, r.Prefix} })
	if len(set) == 0 {
		delete(s.owners, r.Owner)
	} else {
		s.owners[r.Owner] = set
	}
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, poolID string, p netip.Prefix) (Record, error) {
	if err := s.enter(ctx, "Get"); err != nil {
		return Record{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mp, ok := s.pools[poolID]
	if !ok {
		return Record{}, virtplane.Errorf(virtplane.ErrNotFound, "pool %q", poolID)
	}
	r, ok := mp.records[p]
	if !ok {
		return Record{}, virtplane.Errorf(virtplane.ErrNotFound, "pool %q has no record of %s", poolID, p)
	}
	return r.clone(), nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// ByOwner implements Store.
func (s *MemoryStore) ByOwner(ctx context.Context, o Owner) ([]Record, error) {
	if err := s.enter(ctx, "ByOwner"); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Record
	add := func(set []poolPrefix) {
		for _, k := range set {
			if mp, ok := s.pools[k.pool]; ok {
				if r, ok := mp.records[k.prefix]; ok {
					out = append(out, r.clone())
				}
			}
		}
	}
	if o.Interface != "" {
		add(s.owners[o])
	} else {
		for k, set := range s.owners {
			if k.VM == o.VM {
				add(set)
			}
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		if c := cmp.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return comparePrefix(a.Prefix, b.Prefix)
	})
	return out, nil
}

// List implements Store. It sorts the pool's records on every call, which
// is fine for the sizes an in-memory store holds.
func (s *MemoryStore) List(ctx context.Context, poolID string, opts ListOptions) ([]Record, netip.Prefix, error) {
	if err := s.enter(ctx, "List"); err != nil {
		return nil, netip.Prefix{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mp, ok := s.pools[poolID]
	if !ok {
		return nil, netip.Prefix{}, virtplane.Errorf(virtplane.ErrNotFound, "pool %q", poolID)
	}
	var out []Record
	for p, r := range mp.records {
		if opts.State != StateFree && r.State != opts.State {
			continue
		}
		if opts.After.IsValid() && comparePrefix(p, opts.After) <= 0 {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return comparePrefix(a.Prefix, b.Prefix) })
	var next netip.Prefix
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Prefix
	}
	for i := range out {
		out[i] = out[i].clone()
	}
	return out, next, nil
}

// memTxn buffers an Update's writes until commit.
type memTxn struct {
	mp         *memPool // mp.pool does not change while the txn holds mp.update
	setPool    *Pool
	puts       map[netip.Prefix]*Record // nil value: delete; nil map until the first write
	cursors    map[string]Cursor
	dropBlocks map[string]struct{}
}

func (t *memTxn) Pool() Pool { return t.mp.pool.clone() }

func (t *memTxn) Version() (string, uint64) { return t.mp.pool.UID, t.mp.pool.Version }

func (t *memTxn) SetPool(p Pool) error {
	p = p.clone()
	t.setPool = &p
	return nil
}

func (t *memTxn) Cursor(blockID string) (Cursor, error) {
	if c, ok := t.cursors[blockID]; ok {
		return c, nil
	}
	if _, ok := t.dropBlocks[blockID]; ok {
		return Cursor{}, nil
	}
	return t.mp.cursors[blockID], nil
}

func (t *memTxn) SetCursor(blockID string, c Cursor) error {
	if t.cursors == nil {
		t.cursors = map[string]Cursor{}
	}
	t.cursors[blockID] = c
	return nil
}

func (t *memTxn) Get(p netip.Prefix) (Record, bool, error) {
	if r, ok := t.puts[p]; ok {
		if r == nil {
			return Record{}, false, nil
		}
		return r.clone(), true, nil
	}
	r, ok := t.mp.records[p]
	if ok {
		if _, dropped := t.dropBlocks[r.Block]; dropped {
			return Record{}, false, nil
		}
	}
	return r.clone(), ok, nil
}

func (t *memTxn) Put(r Record) error {
	if !r.Prefix.IsValid() {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "record prefix %s is not valid", r.Prefix)
	}
	if r.State == StateAllocated {
		if old, ok, _ := t.Get(r.Prefix); ok && old.State == StateAllocated {
			return virtplane.Errorf(virtplane.ErrAlreadyExists, "%s is allocated to %s", r.Prefix, old.Owner.VM)
		}
	}
	r = r.clone()
	r.Pool = t.mp.pool.ID
	if t.puts == nil {
		t.puts = map[netip.Prefix]*Record{}
	}
	t.puts[r.Prefix] = &r
	return nil
}

func (t *memTxn) Delete(p netip.Prefix) error {
	if t.puts == nil {
		t.puts = map[netip.Prefix]*Record{}
	}
	t.puts[p] = nil
	return nil
}

func (t *memTxn) Records(blockID string, fn func(Record) error) error {
	if _, dropped := t.dropBlocks[blockID]; !dropped {
		for p, r := range t.mp.records {
			if r.Block != blockID {
				continue
			}
			if _, changed := t.puts[p]; changed {
				continue
			}
			if err := fn(r.clone()); err != nil {
				return err
			}
		}
	}
	for _, r := range t.puts {
		if r != nil && r.Block == blockID {
			if err := fn(r.clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *memTxn) DeleteBlockRecords(blockID string) error {
	if t.dropBlocks == nil {
		t.dropBlocks = map[string]struct{}{}
	}
	t.dropBlocks[blockID] = struct{}{}
	for p, r := range t.puts {
		if r != nil && r.Block == blockID {
			delete(t.puts, p)
		}
	}
	delete(t.cursors, blockID)
	return nil
}
