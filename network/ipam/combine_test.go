package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
)

// slowStore holds every Update for a while before it runs, as a store
// that commits in groups keeps a transaction waiting for its group, and
// can fail the Put of one unit inside a transaction.
type slowStore struct {
	ipam.Store
	delay   time.Duration
	updates atomic.Int64
	// failPut fails the Put of this unit once.
	mu      sync.Mutex
	failPut netip.Prefix
}

func (s *slowStore) Update(ctx context.Context, poolID string, fn func(ipam.Txn) error) error {
	s.updates.Add(1)
	time.Sleep(s.delay)
	return s.Store.Update(ctx, poolID, func(t ipam.Txn) error { return fn(&failingTxn{Txn: t, s: s}) })
}

type failingTxn struct {
	ipam.Txn
	s *slowStore
}

func (t *failingTxn) Put(r ipam.Record) error {
	t.s.mu.Lock()
	fail := r.Prefix == t.s.failPut
	if fail {
		t.s.failPut = netip.Prefix{}
	}
	t.s.mu.Unlock()
	if fail {
		return virtplane.Errorf(virtplane.ErrUnavailable, "injected: put %s", r.Prefix)
	}
	return t.Txn.Put(r)
}

func newCombineManager(t testing.TB, s ipam.Store) *ipam.Manager {
	t.Helper()
	m, err := ipam.New(ipam.Config{Store: s}, ipam.WithCooldown(0))
	require.NoError(t, err)
	b, err := ipam.ParseBlock(ipam.BlockSpec{Range: "10.0.0.0/16", KeepNetworkBroadcast: true})
	require.NoError(t, err)
	_, err = m.CreatePool(context.Background(), ipam.Pool{ID: "p", Blocks: []ipam.Block{b}})
	require.NoError(t, err)
	return m
}

// allocateConcurrently allocates n addresses from n goroutines and returns
// the allocations and errors by goroutine.
func allocateConcurrently(ctx context.Context, m *ipam.Manager, n int) ([]ipam.Allocation, []error) {
	allocs, errs := make([]ipam.Allocation, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			allocs[i], errs[i] = m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: fmt.Sprintf("vm%d", i), Interface: "eth0"}})
		})
	}
	wg.Wait()
	return allocs, errs
}

// Operations that arrive while a pool's transaction runs share the next
// one, and each still gets its own distinct, stored address.
func TestConcurrentAllocationsShareTransactions(t *testing.T) {
	ctx := t.Context()
	mem := ipam.NewMemoryStore()
	s := &slowStore{Store: mem, delay: 2 * time.Millisecond}
	m := newCombineManager(t, s)
	const n = 64
	allocs, errs := allocateConcurrently(ctx, m, n)
	seen := map[netip.Prefix]string{}
	for i, a := range allocs {
		require.NoError(t, errs[i])
		vm := fmt.Sprintf("vm%d", i)
		require.Equal(t, vm, a.Owner.VM)
		require.NotContains(t, seen, a.Prefix, "address handed out twice")
		seen[a.Prefix] = vm
		rec, err := mem.Get(ctx, "p", a.Prefix)
		require.NoError(t, err)
		assert.Equal(t, ipam.StateAllocated, rec.State)
		assert.Equal(t, vm, rec.Owner.VM)
	}
	assert.Less(t, s.updates.Load(), int64(n/2), "the allocations should have shared transactions")
	// A second manager (another daemon) reads the same state.
	m2, err := ipam.New(ipam.Config{Store: mem}, ipam.WithCooldown(0))
	require.NoError(t, err)
	a, err := m2.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "other", Interface: "eth0"}})
	require.NoError(t, err)
	require.NotContains(t, seen, a.Prefix)
}

// A store failure inside one operation fails that operation only: the
// others of its transaction run again without it, and nothing of it stays.
func TestFailedOperationLeavesTheOthers(t *testing.T) {
	ctx := t.Context()
	mem := ipam.NewMemoryStore()
	s := &slowStore{Store: mem, delay: 2 * time.Millisecond}
	m := newCombineManager(t, s)
	// The first addresses of the block go out in order: fail one of them.
	s.failPut = netip.MustParsePrefix("10.0.0.5/32")
	const n = 32
	allocs, errs := allocateConcurrently(ctx, m, n)
	failed := 0
	seen := map[netip.Prefix]bool{}
	for i, err := range errs {
		if err != nil {
			failed++
			require.ErrorIs(t, err, virtplane.ErrUnavailable)
			continue
		}
		require.False(t, seen[allocs[i].Prefix], "address handed out twice")
		seen[allocs[i].Prefix] = true
	}
	require.Equal(t, 1, failed, "exactly the operation whose write failed fails")
	recs, _, err := mem.List(ctx, "p", ipam.ListOptions{State: ipam.StateAllocated, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, recs, n-1, "the failed operation left no record")
	for _, r := range recs {
		require.True(t, seen[r.Prefix], "stored %s belongs to no successful allocation", r.Prefix)
	}
	// The manager's allocators agree with the store afterwards.
	a, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "after", Interface: "eth0"}})
	require.NoError(t, err)
	require.False(t, seen[a.Prefix])
}

// A failed commit fails every operation of the transaction and leaves no
// record; the next operations start from the store's state.
func TestFailedCommitFailsTheGroup(t *testing.T) {
	ctx := t.Context()
	var failCommit atomic.Bool
	mem := ipam.NewMemoryStore(ipam.WithFaults(func(op string) error {
		if op == "Commit" && failCommit.Load() {
			return virtplane.Errorf(virtplane.ErrUnavailable, "injected: commit")
		}
		return nil
	}))
	m := newCombineManager(t, &slowStore{Store: mem, delay: time.Millisecond})
	failCommit.Store(true)
	_, errs := allocateConcurrently(ctx, m, 16)
	for _, err := range errs {
		require.ErrorIs(t, err, virtplane.ErrUnavailable)
	}
	failCommit.Store(false)
	recs, _, err := mem.List(ctx, "p", ipam.ListOptions{State: ipam.StateAllocated})
	require.NoError(t, err)
	require.Empty(t, recs)
	allocs, errs := allocateConcurrently(ctx, m, 16)
	seen := map[netip.Prefix]bool{}
	for i, err := range errs {
		require.NoError(t, err)
		require.False(t, seen[allocs[i].Prefix])
		seen[allocs[i].Prefix] = true
	}
}

// An operation whose caller gave up before its turn does nothing.
func TestCanceledOperationDoesNothing(t *testing.T) {
	mem := ipam.NewMemoryStore()
	s := &slowStore{Store: mem, delay: 20 * time.Millisecond}
	m := newCombineManager(t, s)
	// The first allocation holds the pool; the second waits and is canceled.
	done := make(chan error, 1)
	go func() {
		_, err := m.Allocate(context.Background(), "p", ipam.Request{Owner: ipam.Owner{VM: "first", Interface: "eth0"}})
		done <- err
	}()
	time.Sleep(5 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "canceled", Interface: "eth0"}})
	require.True(t, errors.Is(err, virtplane.ErrCanceled), "got %v", err)
	require.NoError(t, <-done)
	recs, err := mem.ByOwner(context.Background(), ipam.Owner{VM: "canceled"})
	require.NoError(t, err)
	require.Empty(t, recs)
}

// BenchmarkConcurrentAllocate measures 64 concurrent allocators on a store
// whose transactions wait 200 µs for their commit group: the Manager, which
// lets waiting operations share a transaction, and in the same run the
// reference of one transaction per allocation (the callers take turns).
func BenchmarkConcurrentAllocate(b *testing.B) {
	const workers = 64
	run := func(n int, turns *sync.Mutex) float64 {
		m := newCombineManager(b, &slowStore{Store: ipam.NewMemoryStore(), delay: 200 * time.Microsecond})
		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					if turns != nil {
						turns.Lock()
					}
					_, err := m.Allocate(context.Background(), "p", ipam.Request{Owner: ipam.Owner{VM: fmt.Sprintf("vm%d", i), Interface: "eth0"}})
					if turns != nil {
						turns.Unlock()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	shared := run(b.N, nil)
	b.StopTimer()
	alone := run(min(b.N, 500), &sync.Mutex{})
	b.ReportMetric(shared, "allocs/s")
	b.ReportMetric(alone, "ref-allocs/s")
	b.ReportMetric(shared/alone, "x-one-per-txn")
}
