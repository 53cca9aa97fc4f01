package daemon_test

import (
	"context"
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
	"github.com/virtplane/virtplane/network/firewall"
	netport "github.com/virtplane/virtplane/network/port"
)

// TestPortPolicyThroughTheAPI: a VM's blocked ports, connection cap and
// bandwidth per direction reach its port on the node, at create and on a
// limits change, and follow it on migration. Bad input is refused naming
// the field; a connection cap outside a routed cluster is refused as not
// implemented rather than accepted and not enforced. (That nftables holds
// such a policy is shown on real ports: firewall's traffic tests, and
// TestEndToEndLibvirt for the rules of a VM made through the API.)
func TestPortPolicyThroughTheAPI(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, err := e.admin.CreateCluster(ctx, clusterBody("routed", "routed"))
	require.NoError(t, err)
	var nodes []model.Node
	for _, name := range []string{"r1", "r2"} {
		n, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: name, Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "routed-pool", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/24", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	body := e.vmBody("mail")
	body.ClusterID, body.PoolID = cl.ID, pool.ID
	body.Limits = model.Limits{BlockInPorts: []string{"23/tcp"}, BlockOutPorts: []string{"25/tcp", "6000-6010/udp"}, MaxConnections: 100, NetInMbit: 5, NetOutMbit: 7}
	vm, tk, err := e.alice.CreateVM(ctx, body, "")
	require.NoError(t, err)
	tk, err = e.alice.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	port := func(nodeID string) netport.Spec {
		t.Helper()
		np, err := e.srv.Flow.NodePorts(ctx, nodeID)
		require.NoError(t, err)
		p, ok := np.(*simnode.Ports).Port(flow.PortName(vm.ID))
		require.True(t, ok, "the node holds the VM's port")
		return p
	}
	p := port(vm.NodeID)
	assert.Equal(t, []firewall.PortRange{{Protocol: "tcp", First: 23}}, p.BlockIn)
	assert.Equal(t, []firewall.PortRange{{Protocol: "tcp", First: 25}, {Protocol: "udp", First: 6000, Last: 6010}}, p.BlockOut)
	assert.Equal(t, 100, p.MaxConnections)
	assert.EqualValues(t, 5000, p.InKbit)
	assert.EqualValues(t, 7000, p.OutKbit)
	assert.Equal(t, body.Limits.BlockOutPorts, vm.Limits.BlockOutPorts, "the VM shows its policy")

	// A limits change replaces the policy: what is left out is removed.
	tk, err = e.alice.SetVMLimits(ctx, vm.ID, model.Limits{BlockOutPorts: []string{"465/tcp"}, MaxConnections: 20})
	require.NoError(t, err)
	tk, err = e.alice.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
	p = port(vm.NodeID)
	assert.Empty(t, p.BlockIn)
	assert.Equal(t, []firewall.PortRange{{Protocol: "tcp", First: 465}}, p.BlockOut)
	assert.Equal(t, 20, p.MaxConnections)
	assert.Zero(t, p.InKbit)

	// On migration the target's port has the same policy.
	target := nodes[0].ID
	if vm.NodeID == target {
		target = nodes[1].ID
	}
	mt, err := e.admin.MigrateVM(ctx, vm.ID, target)
	require.NoError(t, err)
	mt, err = e.admin.WaitTask(ctx, mt.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(mt))
	p = port(target)
	assert.Equal(t, []firewall.PortRange{{Protocol: "tcp", First: 465}}, p.BlockOut)
	assert.Equal(t, 20, p.MaxConnections)

	// Bad input, named.
	for _, tc := range []struct {
		name   string
		limits model.Limits
		status int
		field  string
		class  error
	}{
		{"no protocol", model.Limits{BlockInPorts: []string{"25"}}, 422, "body.limits.block_in_ports[0]", virtplane.ErrInvalidArgument},
		{"port 0", model.Limits{BlockOutPorts: []string{"80/tcp", "0/udp"}}, 422, "body.limits.block_out_ports[1]", virtplane.ErrInvalidArgument},
		{"backwards", model.Limits{BlockOutPorts: []string{"90-80/tcp"}}, 422, "body.limits.block_out_ports[0]", virtplane.ErrInvalidArgument},
		{"negative cap", model.Limits{MaxConnections: -1}, 422, "body.limits.max_connections", virtplane.ErrInvalidArgument},
		{"cap in a bridge cluster", model.Limits{MaxConnections: 10}, 501, "body.limits.max_connections", virtplane.ErrNotImplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.vmBody("refused")
			b.Limits = tc.limits
			_, _, err := e.alice.CreateVM(ctx, b, "")
			var pr *client.Problem
			require.ErrorAs(t, err, &pr)
			assert.Equal(t, tc.status, pr.Status, pr.Error())
			assert.Equal(t, tc.field, pr.Field(), pr.Error())
			assert.ErrorIs(t, err, tc.class)
		})
	}
	_, err = e.alice.SetVMLimits(ctx, e.aliceVM.ID, model.Limits{MaxConnections: 10})
	var pr *client.Problem
	require.ErrorAs(t, err, &pr)
	assert.Equal(t, "body.max_connections", pr.Field(), pr.Error())
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	_, err = e.alice.SetVMLimits(ctx, e.aliceVM.ID, model.Limits{BlockInPorts: []string{"22/sctp"}})
	require.ErrorAs(t, err, &pr)
	assert.Equal(t, "body.block_in_ports[0]", pr.Field(), pr.Error())
}
