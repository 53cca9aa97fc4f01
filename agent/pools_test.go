package agent_test

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/storage"
	sfake "github.com/virtplane/virtplane/storage/fake"
)

// TestOpenPool: pools open by driver through the registered openers;
// opening is idempotent, another spec under the same name is a conflict.
func TestOpenPool(t *testing.T) {
	var gotExec storage.Executor
	ex := &sfake.Executor{}
	opener := func(_ context.Context, spec agent.PoolSpec, e storage.Executor) (storage.Pool, error) {
		gotExec = e
		return sfake.New(spec.Name, spec.Tags), nil
	}
	n := serve(t, agent.Node{Exec: ex, PoolOpeners: map[string]agent.PoolOpener{"fake": opener},
		Pools: map[string]storage.Pool{"given": sfake.New("given", nil)}})
	c := n.client
	ctx := t.Context()
	spec := agent.PoolSpec{Name: "san1", Driver: "fake", Path: "vg0", Tags: map[string]string{"tier": "ssd"}}
	p, err := c.OpenPool(ctx, spec)
	require.NoError(t, err)
	assert.Equal(t, ex, gotExec, "the opener gets the node's executor")
	info, err := p.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, "san1", info.Name)
	assert.Equal(t, map[string]string{"tier": "ssd"}, info.Tags)
	_, err = c.OpenPool(ctx, spec)
	require.NoError(t, err, "the same spec again")

	other := spec
	other.Path = "vg1"
	_, err = c.OpenPool(ctx, other)
	assert.ErrorIs(t, err, virtplane.ErrConflict, "another spec under an open name")
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "given", Driver: "fake"})
	assert.ErrorIs(t, err, virtplane.ErrConflict, "a pool the node was given")
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "x", Driver: "ceph"})
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented, "a driver this node's binary lacks")
	assert.Contains(t, err.Error(), "fake, file", "the error lists the drivers there are")
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "../x", Driver: "fake"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "f", Driver: "file", Path: "relative"})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = c.OpenPool(ctx, agent.PoolSpec{Name: "f", Driver: "file", Path: t.TempDir(), Options: map[string]string{"preallocate": "full"}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "an option the file driver does not know")
	assert.Contains(t, err.Error(), "preallocate")

	h, err := c.Hello(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"Pool", "Cloner", "Resizer", "Snapshotter"}, h.Capabilities.Pools["san1"])
	assert.Equal(t, []string{"fake", "file"}, h.Capabilities.PoolDrivers)

	_, err = c.Pool("nope").List(ctx)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, ok := storage.As[storage.Cloner](c.Pool("nope"))
	assert.False(t, ok, "a pool the node does not have has no capabilities")
	_, ok = storage.As[storage.Activator](c.Pool("san1"))
	assert.False(t, ok, "the fake pool has no Activator")
	_, ok = storage.As[storage.Cloner](c.Pool("san1"))
	assert.True(t, ok)
}

func TestFacts(t *testing.T) {
	pool := sfake.New("local", nil)
	c := serve(t, agent.Node{Pools: map[string]storage.Pool{"local": pool}}).client
	f, err := c.Facts(t.Context())
	require.NoError(t, err)
	host, _ := os.Hostname()
	assert.Equal(t, host, f.Hostname)
	assert.Equal(t, runtime.NumCPU(), f.Cores)
	assert.Greater(t, f.MemoryBytes, int64(64<<20))
	assert.NotEmpty(t, f.Kernel)
	assert.NotEmpty(t, f.Arch)
	require.Len(t, f.Pools, 1)
	assert.Equal(t, agent.PoolFacts{Name: "local", Driver: "fake", Capacity: sfake.Capacity}, f.Pools[0])

	// A pool that cannot be read says why; the facts still come.
	pool.Fail("Info", virtplane.Errorf(virtplane.ErrUnavailable, "backend down"))
	f, err = c.Facts(t.Context())
	require.NoError(t, err)
	assert.Contains(t, f.Pools[0].Error, "backend down")

	// The node's own facts function, and its failure.
	own := serve(t, agent.Node{Facts: func(context.Context) (agent.Facts, error) {
		return agent.Facts{Hostname: "n1", Cores: 64, MemoryBytes: 256 << 30, Libvirt: "9.0.0", QEMU: "7.2.0"}, nil
	}}).client
	f, err = own.Facts(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 64, f.Cores)
	assert.Equal(t, "9.0.0", f.Libvirt)
	assert.Empty(t, f.Pools, "a node without pools")
	failing := serve(t, agent.Node{Facts: func(context.Context) (agent.Facts, error) {
		return agent.Facts{}, virtplane.Errorf(virtplane.ErrUnavailable, "no /proc")
	}}).client
	_, err = failing.Facts(t.Context())
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
}
