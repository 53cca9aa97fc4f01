package ipamtest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go4.org/netipx"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
)

// An excluded address is never handed out again, by next-free or by
// explicit request, and the exclusion is stored with the block: a second
// manager on the store sees it. An allocated address is refused, all or
// nothing; a released one (cooling down) loses its state: it does not
// come back when its cooldown would have ended.
func testManagerExclude(t *testing.T, store ipam.Store) {
	ctx := t.Context()
	now := time.Now()
	m, err := ipam.New(ipam.Config{Store: store}, ipam.WithCooldown(time.Hour), ipam.WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	b, err := ipam.ParseBlock(ipam.BlockSpec{ID: "b1", Range: "10.0.0.0/29"}) // .1-.6 usable
	require.NoError(t, err)
	_, err = m.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{b}})
	require.NoError(t, err)
	addr := netip.MustParseAddr
	held, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "vm1"}})
	require.NoError(t, err)
	require.Equal(t, addr("10.0.0.1"), held.Addr())
	cooling, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "vm2"}})
	require.NoError(t, err)
	require.NoError(t, m.ReleaseAddr(ctx, "p", cooling.Addr()))

	err = m.Exclude(ctx, "p", addr("10.0.0.3"), held.Addr())
	require.ErrorIs(t, err, virtplane.ErrConflict)
	assert.ErrorContains(t, err, `"vm1"`)
	assert.ErrorIs(t, m.Exclude(ctx, "p", addr("10.9.0.1")), virtplane.ErrNotFound)
	p, err := m.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Empty(t, p.Blocks[0].Excluded, "a refusal changes nothing")

	require.NoError(t, m.Exclude(ctx, "p", addr("10.0.0.3"), cooling.Addr(), addr("10.0.0.3")))
	require.NoError(t, m.Exclude(ctx, "p", addr("10.0.0.3")), "excluding again is a no-op")
	p, err = m.GetPool(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, []netipx.IPRange{netipx.IPRangeFrom(addr("10.0.0.3"), addr("10.0.0.3")), netipx.IPRangeFrom(addr("10.0.0.2"), addr("10.0.0.2"))}, p.Blocks[0].Excluded)
	_, err = m.Lookup(ctx, "p", cooling.Addr())
	assert.ErrorIs(t, err, virtplane.ErrNotFound)

	for _, mgr := range []*ipam.Manager{m, mustExcludeManager(t, store)} {
		_, err = mgr.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "vm3"}, Addr: addr("10.0.0.3")})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	}
	now = now.Add(2 * time.Hour) // the released address's cooldown would be over
	var got []netip.Addr
	for {
		a, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "vm4"}, Tags: map[string]string{"n": "x"}})
		if err != nil {
			require.ErrorIs(t, err, virtplane.ErrResourceExhausted)
			break
		}
		got = append(got, a.Addr())
		require.Less(t, len(got), 10)
	}
	assert.Equal(t, []netip.Addr{addr("10.0.0.4"), addr("10.0.0.5"), addr("10.0.0.6")}, got)

	require.NoError(t, m.Unexclude(ctx, "p", addr("10.0.0.3")))
	a, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "vm5"}})
	require.NoError(t, err)
	assert.Equal(t, addr("10.0.0.3"), a.Addr(), "an unexcluded address is free again")
}

func mustExcludeManager(t *testing.T, s ipam.Store) *ipam.Manager {
	t.Helper()
	m, err := ipam.New(ipam.Config{Store: s}, ipam.WithCooldown(time.Hour))
	require.NoError(t, err)
	return m
}
