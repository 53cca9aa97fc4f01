package daemon_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/network/ipam"
)

// TestDualStackVMs: a dual-stack VM holds an IPv4 and an IPv6 address of
// its pool, both on its port and in its quota; an admin's address is the
// one of its family; delete releases both. A pool without one of the
// families and a routed cluster are refused at once, naming dual_stack.
// (That the guest reads both from its seed is TestEndToEndLibvirt's.)
func TestDualStackVMs(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "dual", ClusterIDs: []string{e.cluster.ID}, Blocks: []api.BlockBody{
		{Range: "2001:db8:5::/120", Gateway: "2001:db8:5::1"}, {Range: "198.51.100.0/29", Gateway: "198.51.100.1"},
	}})
	require.NoError(t, err)
	create := func(c *client.Client, name, address string) (model.VM, error) {
		t.Helper()
		b := e.vmBody(name)
		b.PoolID, b.DualStack, b.Address = pool.ID, true, address
		vm, tk, err := c.CreateVM(ctx, b, "")
		if err != nil {
			return vm, err
		}
		tk, err = c.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(tk))
		return c.GetVM(ctx, vm.ID)
	}
	vm, err := create(e.alice, "both", "")
	require.NoError(t, err)
	assert.True(t, vm.DualStack)
	assert.Equal(t, []string{"198.51.100.2", "2001:db8:5::2"}, vm.Addresses, "IPv4 first, though the IPv6 block comes first in the pool")
	np, err := e.srv.Flow.NodePorts(ctx, vm.NodeID)
	require.NoError(t, err)
	port, ok := np.(*simnode.Ports).Port(flow.PortName(vm.ID))
	require.True(t, ok)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:5::2")}, port.Addresses, "the VM may send from both")
	q, err := e.alice.Quota(ctx, e.aliceID)
	require.NoError(t, err)
	assert.EqualValues(t, 3, q.Usage.Addresses, "alice's first VM's one and these two")

	chosen, err := create(e.admin, "chosen", "2001:db8:5::99")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.3", "2001:db8:5::99"}, chosen.Addresses, "the asked address is the IPv6 one; IPv4 is the next free")

	del, err := e.alice.DeleteVM(ctx, vm.ID)
	require.NoError(t, err)
	del, err = e.alice.WaitTask(ctx, del.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(del))
	left, err := e.srv.IPAM.LookupOwner(ctx, ipam.Owner{VM: vm.ID})
	require.NoError(t, err)
	assert.Empty(t, left, "both addresses released")

	// Refused at once: a pool of one family, a routed cluster.
	b := e.vmBody("v4only")
	b.DualStack = true
	_, _, err = e.alice.CreateVM(ctx, b, "")
	p := problemOf(t, err)
	assert.Equal(t, 422, p.Status, p.Error())
	assert.Equal(t, "body.dual_stack", p.Field())
	assert.Contains(t, p.Error(), "no IPv6 block")
	routed, err := e.admin.CreateCluster(ctx, clusterBody("routed", "routed"))
	require.NoError(t, err)
	_, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: routed.ID, Name: "r1", Address: "sim", Cores: 4, MemoryMiB: 8192, DiskGiB: 50})
	require.NoError(t, err)
	rp, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "rdual", ClusterIDs: []string{routed.ID}, Blocks: []api.BlockBody{
		{Range: "203.0.113.0/29", Gateway: "203.0.113.1"}, {Range: "2001:db8:6::/120", Gateway: "2001:db8:6::1"}}})
	require.NoError(t, err)
	b = e.vmBody("routed-dual")
	b.ClusterID, b.PoolID, b.DualStack = routed.ID, rp.ID, true
	_, _, err = e.alice.CreateVM(ctx, b, "")
	p = problemOf(t, err)
	assert.Equal(t, 501, p.Status, p.Error())
	assert.Equal(t, "body.dual_stack", p.Field())
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
}
