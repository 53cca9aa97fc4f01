package ipamtest

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
)

// Factory returns an empty store; it registers its cleanup with t.
type Factory func(t *testing.T) ipam.Store

// Run runs the suite against the stores newStore returns.
func Run(t *testing.T, newStore Factory) {
	t.Run("PoolLifecycle", func(t *testing.T) { testPoolLifecycle(t, newStore(t)) })
	t.Run("UpdateCommitsOrRollsBack", func(t *testing.T) { testUpdate(t, newStore(t)) })
	t.Run("AllocatedIsNeverOverwritten", func(t *testing.T) { testPutAllocated(t, newStore(t)) })
	t.Run("TxnSeesOwnWrites", func(t *testing.T) { testTxnReads(t, newStore(t)) })
	t.Run("OwnerIndex", func(t *testing.T) { testByOwner(t, newStore(t)) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, newStore(t)) })
	t.Run("DeletePoolRefusedWhileAllocated", func(t *testing.T) { testDeletePool(t, newStore(t)) })
	t.Run("ManagerAllocateRelease", func(t *testing.T) { testManagerAllocate(t, newStore(t)) })
	t.Run("ManagerCooldown", func(t *testing.T) { testManagerCooldown(t, newStore(t)) })
	t.Run("ManagerPrefixDelegation", func(t *testing.T) { testManagerDelegation(t, newStore(t)) })
	t.Run("ManagerBlocks", func(t *testing.T) { testManagerBlocks(t, newStore(t)) })
	t.Run("ManagerExclude", func(t *testing.T) { testManagerExclude(t, newStore(t)) })
	t.Run("TwoManagersShareStore", func(t *testing.T) { testTwoManagers(t, newStore(t)) })
	t.Run("Concurrent10000", func(t *testing.T) { testConcurrent(t, newStore(t), 10000) })
}

func mustBlock(t *testing.T, spec ipam.BlockSpec) ipam.Block {
	t.Helper()
	b, err := ipam.ParseBlock(spec)
	require.NoError(t, err)
	return b
}

func addr(t *testing.T, s string) netip.Addr {
	t.Helper()
	return netip.MustParseAddr(s)
}

func host(s string) netip.Prefix {
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func newPool(t *testing.T, s ipam.Store, id string, blocks ...string) ipam.Pool {
	t.Helper()
	p := ipam.Pool{ID: id, Clusters: []string{"c1"}, UID: "uid-" + id}
	for _, r := range blocks {
		p.Blocks = append(p.Blocks, mustBlock(t, ipam.BlockSpec{ID: r, Range: r}))
	}
	require.NoError(t, s.CreatePool(t.Context(), p))
	return p
}

func testPoolLifecycle(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	p := newPool(t, s, "p1", "10.0.0.0/24")
	got, err := s.GetPool(ctx, "p1")
	require.NoError(t, err)
	assert.Equal(t, p.Blocks, got.Blocks)
	assert.Equal(t, []string{"c1"}, got.Clusters)
	assert.Equal(t, "uid-p1", got.UID)
	assert.Zero(t, got.Version)

	assert.ErrorIs(t, s.CreatePool(ctx, p), virtplane.ErrAlreadyExists)
	_, err = s.GetPool(ctx, "nope")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.ErrorIs(t, s.Update(ctx, "nope", func(ipam.Txn) error { return nil }), virtplane.ErrNotFound)

	for i := range 5 {
		newPool(t, s, fmt.Sprintf("q%d", i))
	}
	var ids []string
	after := ""
	for {
		page, next, err := s.ListPools(ctx, after, 2)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page), 2)
		for _, p := range page {
			ids = append(ids, p.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	assert.Equal(t, []string{"p1", "q0", "q1", "q2", "q3", "q4"}, ids)

	require.NoError(t, s.DeletePool(ctx, "q0"))
	_, err = s.GetPool(ctx, "q0")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.ErrorIs(t, s.DeletePool(ctx, "q0"), virtplane.ErrNotFound)
}

func testUpdate(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "p", "10.0.0.0/24")
	r := ipam.Record{Block: "10.0.0.0/24", Prefix: host("10.0.0.5"), State: ipam.StateAllocated, Owner: ipam.Owner{VM: "vm1", Interface: "eth0"},
		Tags: map[string]string{"k": "v"}, AllocatedAt: time.Unix(1700000000, 0).UTC()}
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		assert.Equal(t, uint64(0), tx.Pool().Version)
		uid, v := tx.Version()
		assert.Equal(t, "uid-p", uid)
		assert.Equal(t, uint64(0), v)
		require.NoError(t, tx.SetCursor("10.0.0.0/24", ipam.Cursor{Next: 6}))
		return tx.Put(r)
	}))
	got, err := s.Get(ctx, "p", r.Prefix)
	require.NoError(t, err)
	assert.Equal(t, "p", got.Pool)
	assert.Equal(t, r.Owner, got.Owner)
	assert.Equal(t, r.Tags, got.Tags)
	assert.True(t, r.AllocatedAt.Equal(got.AllocatedAt))
	assert.Equal(t, ipam.StateAllocated, got.State)
	p, err := s.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), p.Version)

	boom := errors.New("boom")
	err = s.Update(ctx, "p", func(tx ipam.Txn) error {
		require.NoError(t, tx.Delete(r.Prefix))
		require.NoError(t, tx.Put(ipam.Record{Block: "10.0.0.0/24", Prefix: host("10.0.0.9"), State: ipam.StateAllocated, Owner: ipam.Owner{VM: "vm2"}}))
		require.NoError(t, tx.SetCursor("10.0.0.0/24", ipam.Cursor{Next: 99}))
		p := tx.Pool()
		p.Clusters = []string{"other"}
		require.NoError(t, tx.SetPool(p))
		return boom
	})
	assert.ErrorIs(t, err, boom)
	_, err = s.Get(ctx, "p", r.Prefix)
	assert.NoError(t, err, "rolled back delete must leave the record")
	_, err = s.Get(ctx, "p", host("10.0.0.9"))
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	p, err = s.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), p.Version)
	assert.Equal(t, []string{"c1"}, p.Clusters)
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		c, err := tx.Cursor("10.0.0.0/24")
		require.NoError(t, err)
		assert.Equal(t, ipam.Cursor{Next: 6}, c)
		assert.Equal(t, uint64(1), tx.Pool().Version)
		_, v := tx.Version()
		assert.Equal(t, uint64(1), v)
		return nil
	}))
	p, err = s.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), p.Version, "a committed Update bumps the version even without writes")
}

func testPutAllocated(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "p", "10.0.0.0/24")
	a := ipam.Record{Block: "10.0.0.0/24", Prefix: host("10.0.0.7"), State: ipam.StateAllocated, Owner: ipam.Owner{VM: "a"}}
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error { return tx.Put(a) }))
	b := a
	b.Owner.VM = "b"
	err := s.Update(ctx, "p", func(tx ipam.Txn) error { return tx.Put(b) })
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	got, err := s.Get(ctx, "p", a.Prefix)
	require.NoError(t, err)
	assert.Equal(t, "a", got.Owner.VM)

	// Allocated -> Cooling -> Allocated is a legal sequence of replacements.
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		c := a
		c.State, c.ReleasedAt = ipam.StateCooling, time.Unix(1, 0)
		return tx.Put(c)
	}))
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error { return tx.Put(b) }))
	got, err = s.Get(ctx, "p", a.Prefix)
	require.NoError(t, err)
	assert.Equal(t, "b", got.Owner.VM)
}

func testTxnReads(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "p", "10.0.0.0/24", "10.0.1.0/24")
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		for i := 1; i <= 3; i++ {
			require.NoError(t, tx.Put(ipam.Record{Block: "10.0.0.0/24", Prefix: host(fmt.Sprintf("10.0.0.%d", i)), State: ipam.StateAllocated, Owner: ipam.Owner{VM: "v"}}))
		}
		return tx.Put(ipam.Record{Block: "10.0.1.0/24", Prefix: host("10.0.1.1"), State: ipam.StateRetired})
	}))
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		require.NoError(t, tx.Delete(host("10.0.0.1")))
		require.NoError(t, tx.Put(ipam.Record{Block: "10.0.0.0/24", Prefix: host("10.0.0.4"), State: ipam.StateFresh}))
		_, ok, err := tx.Get(host("10.0.0.1"))
		require.NoError(t, err)
		assert.False(t, ok)
		r, ok, err := tx.Get(host("10.0.0.4"))
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, ipam.StateFresh, r.State)
		seen := map[netip.Prefix]ipam.RecordState{}
		require.NoError(t, tx.Records("10.0.0.0/24", func(r ipam.Record) error { seen[r.Prefix] = r.State; return nil }))
		assert.Equal(t, map[netip.Prefix]ipam.RecordState{
			host("10.0.0.2"): ipam.StateAllocated, host("10.0.0.3"): ipam.StateAllocated, host("10.0.0.4"): ipam.StateFresh,
		}, seen)
		require.NoError(t, tx.DeleteBlockRecords("10.0.1.0/24"))
		n := 0
		require.NoError(t, tx.Records("10.0.1.0/24", func(ipam.Record) error { n++; return nil }))
		assert.Zero(t, n)
		return nil
	}))
	_, err := s.Get(ctx, "p", host("10.0.1.1"))
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, err = s.Get(ctx, "p", host("10.0.0.4"))
	assert.NoError(t, err)
}

func testByOwner(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "a", "10.0.0.0/24")
	newPool(t, s, "b", "10.1.0.0/24")
	put := func(pool, block, ip string, o ipam.Owner, st ipam.RecordState) {
		require.NoError(t, s.Update(ctx, pool, func(tx ipam.Txn) error {
			return tx.Put(ipam.Record{Block: block, Prefix: host(ip), State: st, Owner: o})
		}))
	}
	eth0, eth1 := ipam.Owner{VM: "vm1", Interface: "eth0"}, ipam.Owner{VM: "vm1", Interface: "eth1"}
	put("b", "10.1.0.0/24", "10.1.0.9", eth1, ipam.StateAllocated)
	put("a", "10.0.0.0/24", "10.0.0.9", eth0, ipam.StateAllocated)
	put("a", "10.0.0.0/24", "10.0.0.3", eth0, ipam.StateAllocated)
	put("a", "10.0.0.0/24", "10.0.0.4", eth0, ipam.StateCooling)
	put("a", "10.0.0.0/24", "10.0.0.5", ipam.Owner{VM: "vm2"}, ipam.StateAllocated)

	recs, err := s.ByOwner(ctx, eth0)
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		got = append(got, r.Pool+" "+r.Prefix.Addr().String())
	}
	assert.Equal(t, []string{"a 10.0.0.3", "a 10.0.0.9"}, got)

	recs, err = s.ByOwner(ctx, ipam.Owner{VM: "vm1"})
	require.NoError(t, err)
	got = nil
	for _, r := range recs {
		got = append(got, r.Pool+" "+r.Prefix.Addr().String())
	}
	assert.Equal(t, []string{"a 10.0.0.3", "a 10.0.0.9", "b 10.1.0.9"}, got)

	// Releasing removes the record from the index.
	put("a", "10.0.0.0/24", "10.0.0.3", eth0, ipam.StateCooling)
	recs, err = s.ByOwner(ctx, eth0)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, host("10.0.0.9"), recs[0].Prefix)
}

func testListPaging(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "p", "10.0.0.0/23", "2001:db8::/120")
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		for i := 0; i < 250; i++ {
			st := ipam.StateAllocated
			if i%10 == 0 {
				st = ipam.StateCooling
			}
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			require.NoError(t, tx.Put(ipam.Record{Block: "10.0.0.0/23", Prefix: netip.PrefixFrom(a, 32), State: st, Owner: ipam.Owner{VM: "v"}}))
		}
		return tx.Put(ipam.Record{Block: "2001:db8::/120", Prefix: host("2001:db8::5"), State: ipam.StateAllocated, Owner: ipam.Owner{VM: "v"}})
	}))
	var all []netip.Prefix
	var after netip.Prefix
	pages := 0
	for {
		recs, next, err := s.List(ctx, "p", ipam.ListOptions{After: after, Limit: 100, State: ipam.StateAllocated})
		require.NoError(t, err)
		pages++
		for _, r := range recs {
			assert.Equal(t, ipam.StateAllocated, r.State)
			all = append(all, r.Prefix)
		}
		if !next.IsValid() {
			break
		}
		after = next
	}
	assert.Equal(t, 3, pages)
	require.Len(t, all, 226)
	for i := 1; i < len(all); i++ {
		assert.Negative(t, all[i-1].Addr().Compare(all[i].Addr()), "order at %d", i)
	}
	assert.Equal(t, host("2001:db8::5"), all[len(all)-1])
	recs, _, err := s.List(ctx, "p", ipam.ListOptions{Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, recs, 251)
	_, _, err = s.List(ctx, "nope", ipam.ListOptions{})
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
}

func testDeletePool(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	newPool(t, s, "p", "10.0.0.0/24")
	pfx := host("10.0.0.1")
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error {
		return tx.Put(ipam.Record{Block: "10.0.0.0/24", Prefix: pfx, State: ipam.StateAllocated, Owner: ipam.Owner{VM: "v"}})
	}))
	assert.ErrorIs(t, s.DeletePool(ctx, "p"), virtplane.ErrConflict)
	require.NoError(t, s.Update(ctx, "p", func(tx ipam.Txn) error { return tx.Delete(pfx) }))
	require.NoError(t, s.DeletePool(ctx, "p"))
	recs, err := s.ByOwner(ctx, ipam.Owner{VM: "v"})
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// clock is a settable clock for cooldown tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newManager(t *testing.T, s ipam.Store, opts ...ipam.Option) *ipam.Manager {
	t.Helper()
	m, err := ipam.New(ipam.Config{Store: s}, opts...)
	require.NoError(t, err)
	return m
}

func testManagerAllocate(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	m := newManager(t, s, ipam.WithCooldown(0))
	_, err := m.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{
		mustBlock(t, ipam.BlockSpec{Range: "192.0.2.0/29", Gateway: "192.0.2.1", Reserved: []string{"192.0.2.3"}}),
	}})
	require.NoError(t, err)
	vm := func(n string) ipam.Owner { return ipam.Owner{VM: n, Interface: "eth0"} }
	// .0 network, .1 gateway, .3 reserved, .7 broadcast: next-free gives .2 .4 .5 .6
	var got []string
	for i := range 4 {
		a, err := m.Allocate(ctx, "p", ipam.Request{Owner: vm(fmt.Sprint(i)), Tags: map[string]string{"n": fmt.Sprint(i)}})
		require.NoError(t, err)
		assert.Equal(t, netip.MustParsePrefix("192.0.2.0/29"), a.Network)
		assert.Equal(t, addr(t, "192.0.2.1"), a.Gateway)
		got = append(got, a.Addr().String())
	}
	assert.Equal(t, []string{"192.0.2.2", "192.0.2.4", "192.0.2.5", "192.0.2.6"}, got)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: vm("x")})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)

	// The reserved address is allocatable by name, idempotently for its owner.
	a, err := m.Allocate(ctx, "p", ipam.Request{Owner: vm("r"), Addr: addr(t, "192.0.2.3")})
	require.NoError(t, err)
	again, err := m.Allocate(ctx, "p", ipam.Request{Owner: vm("r"), Addr: addr(t, "192.0.2.3")})
	require.NoError(t, err)
	assert.Equal(t, a.Prefix, again.Prefix)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: vm("other"), Addr: addr(t, "192.0.2.3")})
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	for _, bad := range []string{"192.0.2.1", "192.0.2.0", "192.0.2.7"} {
		_, err = m.Allocate(ctx, "p", ipam.Request{Owner: vm("x"), Addr: addr(t, bad)})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, bad)
		assert.ErrorContains(t, err, bad)
	}
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: vm("x"), Addr: addr(t, "198.51.100.1")})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = m.Allocate(ctx, "p", ipam.Request{})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)

	l, err := m.Lookup(ctx, "p", addr(t, "192.0.2.4"))
	require.NoError(t, err)
	assert.Equal(t, vm("1"), l.Owner)
	assert.Equal(t, map[string]string{"n": "1"}, l.Tags)
	owned, err := m.LookupOwner(ctx, ipam.Owner{VM: "1"})
	require.NoError(t, err)
	require.Len(t, owned, 1)
	assert.Equal(t, addr(t, "192.0.2.4"), owned[0].Addr())

	require.NoError(t, m.ReleaseAddr(ctx, "p", addr(t, "192.0.2.4")))
	assert.ErrorIs(t, m.ReleaseAddr(ctx, "p", addr(t, "192.0.2.4")), virtplane.ErrNotFound)
	_, err = m.Lookup(ctx, "p", addr(t, "192.0.2.4"))
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	b, err := m.Allocate(ctx, "p", ipam.Request{Owner: vm("y")})
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.4", b.Addr().String())

	list, next, err := m.List(ctx, "p", netip.Prefix{}, 3)
	require.NoError(t, err)
	assert.Len(t, list, 3)
	rest, next2, err := m.List(ctx, "p", next, 3)
	require.NoError(t, err)
	assert.Len(t, rest, 2)
	assert.False(t, next2.IsValid())

	// A VM with two interfaces is deleted: both addresses go, nobody else's.
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "y", Interface: "eth1"}, Addr: addr(t, "192.0.2.4")})
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	require.NoError(t, m.ReleaseAddr(ctx, "p", addr(t, "192.0.2.5")))
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "y", Interface: "eth1"}, Addr: addr(t, "192.0.2.5")})
	require.NoError(t, err)
	released, err := m.ReleaseOwner(ctx, ipam.Owner{VM: "y"})
	require.NoError(t, err)
	var rel []string
	for _, a := range released {
		rel = append(rel, a.Addr().String()+" "+a.Owner.Interface)
	}
	assert.Equal(t, []string{"192.0.2.4 eth0", "192.0.2.5 eth1"}, rel)
	left, err := m.LookupOwner(ctx, ipam.Owner{VM: "y"})
	require.NoError(t, err)
	assert.Empty(t, left)
	others, _, err := m.List(ctx, "p", netip.Prefix{}, 0)
	require.NoError(t, err)
	assert.Len(t, others, 3)
}

func testManagerCooldown(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	clk := &clock{now: time.Unix(1700000000, 0)}
	m := newManager(t, s, ipam.WithCooldown(time.Hour), ipam.WithClock(clk.Now))
	_, err := m.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{mustBlock(t, ipam.BlockSpec{Range: "10.0.0.1-10.0.0.3"})}})
	require.NoError(t, err)
	o := ipam.Owner{VM: "v"}
	a1, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	require.NoError(t, m.Release(ctx, "p", a1.Prefix))
	// Never-used addresses come first, then the pool is full while .1 cools.
	a2, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	a3, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, []string{a1.Addr().String(), a2.Addr().String(), a3.Addr().String()})
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o, Addr: a1.Addr()})
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	assert.ErrorContains(t, err, "cooling")
	clk.Advance(59 * time.Minute)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	clk.Advance(time.Minute)
	a4, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	assert.Equal(t, a1.Prefix, a4.Prefix)

	// A second manager over the same store sees the cooldown too.
	require.NoError(t, m.Release(ctx, "p", a2.Prefix))
	m2 := newManager(t, s, ipam.WithCooldown(time.Hour), ipam.WithClock(clk.Now))
	got, err := m2.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted, "got %s", got.Prefix)
	clk.Advance(time.Hour)
	a5, err := m2.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	assert.Equal(t, a2.Prefix, a5.Prefix)
}

func testManagerDelegation(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	m := newManager(t, s, ipam.WithCooldown(0))
	_, err := m.CreatePool(ctx, ipam.Pool{ID: "v6", Blocks: []ipam.Block{
		mustBlock(t, ipam.BlockSpec{Range: "2001:db8:1::/48", PrefixLen: 64, Gateway: "2001:db8:1::1"}),
		mustBlock(t, ipam.BlockSpec{Range: "2001:db8:2::/64", Gateway: "2001:db8:2::1"}),
		mustBlock(t, ipam.BlockSpec{Range: "10.9.0.0/30"}),
	}})
	require.NoError(t, err)
	o := ipam.Owner{VM: "vm"}
	p1, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Prefix: true})
	require.NoError(t, err)
	assert.Equal(t, "2001:db8:1:1::/64", p1.Prefix.String(), "the /64 holding the gateway is excluded")
	p2, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Prefix: true})
	require.NoError(t, err)
	assert.Equal(t, "2001:db8:1:2::/64", p2.Prefix.String())
	a6, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Family: ipam.IPv6})
	require.NoError(t, err)
	assert.Equal(t, "2001:db8:2::2/128", a6.Prefix.String(), "past the Subnet-Router anycast address (::) and the gateway (::1)")
	a4, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Family: ipam.IPv4})
	require.NoError(t, err)
	assert.Equal(t, "10.9.0.1/32", a4.Prefix.String())
	pf, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Prefix: true, Addr: addr(t, "2001:db8:1:ffff::42")})
	require.NoError(t, err)
	assert.Equal(t, "2001:db8:1:ffff::/64", pf.Prefix.String())
	l, err := m.Lookup(ctx, "v6", addr(t, "2001:db8:1:2::99"))
	require.NoError(t, err)
	assert.Equal(t, p2.Prefix, l.Prefix)
	require.NoError(t, m.Release(ctx, "v6", p2.Prefix))
	_, err = m.Lookup(ctx, "v6", addr(t, "2001:db8:1:2::99"))
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	p3, err := m.Allocate(ctx, "v6", ipam.Request{Owner: o, Prefix: true})
	require.NoError(t, err)
	assert.Equal(t, "2001:db8:1:3::/64", p3.Prefix.String(), "never-used prefixes first")
}

func testManagerBlocks(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	m := newManager(t, s, ipam.WithCooldown(time.Hour))
	_, err := m.CreatePool(ctx, ipam.Pool{ID: "p", Clusters: []string{"a"}})
	require.NoError(t, err)
	o := ipam.Owner{VM: "v"}
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	b, err := m.AddBlock(ctx, "p", mustBlock(t, ipam.BlockSpec{Range: "10.0.0.0/30"}))
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.0/30", b.ID)
	_, err = m.AddBlock(ctx, "p", mustBlock(t, ipam.BlockSpec{Range: "10.0.0.2-10.0.0.9"}))
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	_, err = m.AddBlock(ctx, "p", mustBlock(t, ipam.BlockSpec{Range: "10.0.1.0/30", ID: "10.0.0.0/30"}))
	assert.ErrorIs(t, err, virtplane.ErrAlreadyExists)
	a, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	err = m.RemoveBlock(ctx, "p", b.ID)
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	assert.ErrorContains(t, err, a.Addr().String())
	require.NoError(t, m.Release(ctx, "p", a.Prefix))
	require.NoError(t, m.RemoveBlock(ctx, "p", b.ID), "cooling addresses do not hold a block")
	assert.ErrorIs(t, m.RemoveBlock(ctx, "p", b.ID), virtplane.ErrNotFound)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	_, err = m.AddBlock(ctx, "p", mustBlock(t, ipam.BlockSpec{Range: "10.0.0.0/30"}))
	require.NoError(t, err)
	a2, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	assert.Equal(t, a.Prefix, a2.Prefix, "a re-added block starts clean")

	require.NoError(t, m.SetClusters(ctx, "p", []string{"a", "b"}))
	_, err = m.CreatePool(ctx, ipam.Pool{ID: "q", Clusters: []string{"c"}})
	require.NoError(t, err)
	pools, _, err := m.ListPools(ctx, "b", "", 0)
	require.NoError(t, err)
	require.Len(t, pools, 1)
	assert.Equal(t, "p", pools[0].ID)

	require.NoError(t, m.Reserve(ctx, "p", addr(t, "10.0.0.2")))
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: o})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted, ".1 allocated, .2 reserved")
	got, err := m.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{addr(t, "10.0.0.2")}, got.Blocks[0].Reserved)
	require.NoError(t, m.Unreserve(ctx, "p", addr(t, "10.0.0.2")))
	a3, err := m.Allocate(ctx, "p", ipam.Request{Owner: o})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.2", a3.Addr().String())
}

func testTwoManagers(t *testing.T, s ipam.Store) {
	ctx := t.Context()
	m1 := newManager(t, s, ipam.WithCooldown(0))
	m2 := newManager(t, s, ipam.WithCooldown(0))
	_, err := m1.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{mustBlock(t, ipam.BlockSpec{Range: "10.0.0.0/28"})}})
	require.NoError(t, err)
	seen := map[netip.Prefix]bool{}
	for i := range 14 {
		m := m1
		if i%3 == 0 {
			m = m2
		}
		a, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: fmt.Sprint(i)}})
		require.NoError(t, err)
		assert.False(t, seen[a.Prefix], "address %s given twice", a.Prefix)
		seen[a.Prefix] = true
	}
	_, err = m2.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "x"}})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	require.NoError(t, m2.ReleaseAddr(ctx, "p", addr(t, "10.0.0.5")))
	a, err := m1.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "x"}})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.5", a.Addr().String())

	// A pool deleted and created again reaches the version m2 cached: the
	// new UID still tells m2 that its cache is stale.
	_, err = m1.CreatePool(ctx, ipam.Pool{ID: "q", Blocks: []ipam.Block{mustBlock(t, ipam.BlockSpec{Range: "10.1.0.0/30"})}})
	require.NoError(t, err)
	q1, err := m2.Allocate(ctx, "q", ipam.Request{Owner: ipam.Owner{VM: "old"}})
	require.NoError(t, err)
	require.NoError(t, m2.Release(ctx, "q", q1.Prefix))
	require.NoError(t, m1.DeletePool(ctx, "q"))
	_, err = m1.CreatePool(ctx, ipam.Pool{ID: "q", Blocks: []ipam.Block{mustBlock(t, ipam.BlockSpec{Range: "10.1.0.0/30"})}})
	require.NoError(t, err)
	for _, vm := range []string{"n1", "n2"} {
		_, err := m1.Allocate(ctx, "q", ipam.Request{Owner: ipam.Owner{VM: vm}})
		require.NoError(t, err)
	}
	_, err = m2.Allocate(ctx, "q", ipam.Request{Owner: ipam.Owner{VM: "late"}})
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted, "both addresses of the new pool are taken")
}

func testConcurrent(t *testing.T, s ipam.Store, n int) {
	ctx := t.Context()
	m1 := newManager(t, s)
	m2 := newManager(t, s)
	_, err := m1.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{
		mustBlock(t, ipam.BlockSpec{Range: "10.0.0.0/20"}),
		mustBlock(t, ipam.BlockSpec{Range: "10.1.0.0-10.1.39.255"}),
	}})
	require.NoError(t, err)
	results := make([]netip.Prefix, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := m1
			if i%10 == 1 {
				// A second manager: its calls, and m1's next ones, find a
				// stale cache and reload the pool (one in ten: a reload reads
				// every record, and on SQL stores every other call made the
				// test quadratic, three minutes long).
				m = m2
			}
			a, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: fmt.Sprintf("vm%d", i), Interface: "eth0"}})
			results[i], errs[i] = a.Prefix, err
		})
	}
	wg.Wait()
	seen := make(map[netip.Prefix]int, n)
	for i := range n {
		require.NoError(t, errs[i], "goroutine %d", i)
		if j, dup := seen[results[i]]; dup {
			t.Fatalf("address %s given to goroutines %d and %d", results[i], j, i)
		}
		seen[results[i]] = i
	}
	assert.Len(t, seen, n)
	count := 0
	var after netip.Prefix
	for {
		page, next, err := m1.List(ctx, "p", after, 1000)
		require.NoError(t, err)
		for _, a := range page {
			i, ok := seen[a.Prefix]
			require.True(t, ok, "stored allocation %s was not returned to anyone", a.Prefix)
			assert.Equal(t, fmt.Sprintf("vm%d", i), a.Owner.VM)
			count++
		}
		if !next.IsValid() {
			break
		}
		after = next
	}
	assert.Equal(t, n, count)
	// The /20 holds 4094 usable addresses: the rest came from the range.
	in20 := 0
	p20 := netip.MustParsePrefix("10.0.0.0/20")
	for p := range seen {
		if p20.Contains(p.Addr()) {
			in20++
		}
	}
	assert.Equal(t, 4094, in20)
}
