package ipam_test

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/ipam/ipamtest"
)

func TestMemoryStoreConformance(t *testing.T) {
	ipamtest.Run(t, func(t *testing.T) ipam.Store { return ipam.NewMemoryStore() })
}

// A commit that fails after the allocator picked an address must not leak
// the pick into the manager's cache, and must not hand the address out.
func TestManagerSurvivesFailedCommit(t *testing.T) {
	ctx := t.Context()
	var failCommit atomic.Bool
	lost := errors.New("connection lost")
	s := ipam.NewMemoryStore(ipam.WithCallLog(), ipam.WithFaults(func(op string) error {
		if op == "Commit" && failCommit.Load() {
			return lost
		}
		return nil
	}))
	m, err := ipam.New(ipam.Config{Store: s}, ipam.WithCooldown(0))
	require.NoError(t, err)
	b, err := ipam.ParseBlock(ipam.BlockSpec{Range: "10.0.0.0/29"})
	require.NoError(t, err)
	_, err = m.CreatePool(ctx, ipam.Pool{ID: "p", Blocks: []ipam.Block{b}})
	require.NoError(t, err)

	a1, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "a"}})
	require.NoError(t, err)
	failCommit.Store(true)
	_, err = m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "b"}})
	require.ErrorIs(t, err, lost)
	failCommit.Store(false)
	a2, err := m.Allocate(ctx, "p", ipam.Request{Owner: ipam.Owner{VM: "b"}})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.1", a1.Addr().String())
	assert.Equal(t, "10.0.0.2", a2.Addr().String(), "the failed pick is not lost nor duplicated")
	_, err = m.Lookup(ctx, "p", netip.MustParseAddr("10.0.0.3"))
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.Contains(t, s.Calls(), "Commit")
	assert.Equal(t, "CreatePool", s.Calls()[0])
}

func TestMemoryStoreCanceledContext(t *testing.T) {
	s := ipam.NewMemoryStore()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetPool(ctx, "p")
	assert.ErrorIs(t, err, virtplane.ErrCanceled)
}
