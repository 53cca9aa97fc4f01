package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
)

// TestAntiAffinityGroup: three hard members of a group land on three
// nodes; a fourth finds no node and its create fails naming the group.
func TestAntiAffinityGroup(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done(t, e.alice, e.aliceTask, nil)
	for _, n := range []string{"sim2", "sim3"} {
		_, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: n, Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
		require.NoError(t, err)
	}
	nodes := map[string]bool{}
	for _, name := range []string{"db-1", "db-2", "db-3"} {
		b := e.vmBody(name)
		b.AntiAffinity = &model.AntiAffinity{Group: "db", Hard: true}
		vm, tk, err := e.alice.CreateVM(ctx, b, "")
		done(t, e.alice, tk, err)
		vm, err = e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		nodes[vm.NodeID] = true
		assert.Equal(t, &model.AntiAffinity{Group: "db", Hard: true}, vm.AntiAffinity)
	}
	assert.Len(t, nodes, 3, "one member per node")

	b := e.vmBody("db-4")
	b.AntiAffinity = &model.AntiAffinity{Group: "db", Hard: true}
	vm, tk, err := e.alice.CreateVM(ctx, b, "")
	err = fails(t, e.alice, tk, err)
	require.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	assert.Contains(t, err.Error(), `anti-affinity group`)
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMFailed, vm.State)
	assert.Contains(t, vm.Error, "anti-affinity")

	// Bob's group of the same name is his own: his VM is placed.
	bb := e.vmBody("db-1")
	bb.AntiAffinity = &model.AntiAffinity{Group: "db", Hard: true}
	_, tk, err = e.bob.CreateVM(ctx, bb, "")
	done(t, e.bob, tk, err)
	// A soft member falls back to a node with a member.
	b = e.vmBody("db-5")
	b.AntiAffinity = &model.AntiAffinity{Group: "db"}
	_, tk, err = e.alice.CreateVM(ctx, b, "")
	done(t, e.alice, tk, err)

	bad := e.vmBody("x")
	bad.AntiAffinity = &model.AntiAffinity{Group: "Not A Name"}
	_, _, err = e.alice.CreateVM(ctx, bad, "")
	assert.Equal(t, "body.anti_affinity.group", problemOf(t, err).Field())
}

// TestRebalance: VMs packed on one node by the sequential strategy; the
// plan moves some, the imbalance drops, the task applies it by live
// migration and a new plan starts from where the first ended.
func TestRebalance(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	done(t, e.alice, e.aliceTask, nil)
	cl, err := e.admin.CreateCluster(ctx, api.ClusterBody{Name: "packed", VirtType: "kvm", Strategy: "sequential", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	var nodeIDs []string
	for _, n := range []string{"p1", "p2", "p3"} {
		nd, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: n, Address: "sim", Cores: 8, MemoryMiB: 8192, DiskGiB: 100})
		require.NoError(t, err)
		nodeIDs = append(nodeIDs, nd.ID)
	}
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "packed", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/24", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	var vms []string
	for i := range 6 {
		b := api.VMCreateBody{Name: "r" + string(rune('a'+i)), ClusterID: cl.ID, ImageID: e.image.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 1024, DiskGiB: 5}
		vm, tk, err := e.alice.CreateVM(ctx, b, "")
		done(t, e.alice, tk, err)
		vms = append(vms, vm.ID)
	}
	where := func() map[string]int {
		out := map[string]int{}
		for _, id := range vms {
			vm, err := e.alice.GetVM(ctx, id)
			require.NoError(t, err)
			out[vm.NodeID]++
		}
		return out
	}
	require.Equal(t, map[string]int{nodeIDs[0]: 6}, where(), "sequential fills the first node")

	_, err = e.alice.PlanRebalance(ctx, cl.ID, api.RebalanceBody{})
	assert.ErrorIs(t, err, virtplane.ErrPermissionDenied)
	_, err = e.admin.PlanRebalance(ctx, cl.ID, api.RebalanceBody{Threshold: 2})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	plan, err := e.admin.PlanRebalance(ctx, cl.ID, api.RebalanceBody{Threshold: 0.05})
	require.NoError(t, err)
	require.NotEmpty(t, plan.Moves)
	assert.Less(t, plan.After, plan.Before, "the plan lowers the imbalance")
	t.Logf("plan: %d moves, imbalance %.3f → %.3f", len(plan.Moves), plan.Before, plan.After)
	for _, m := range plan.Moves {
		assert.Equal(t, nodeIDs[0], m.From)
	}
	assert.Equal(t, map[string]int{nodeIDs[0]: 6}, where(), "a plan changes nothing")

	tk, err := e.admin.Rebalance(ctx, cl.ID, api.RebalanceBody{Threshold: 0.05})
	done(t, e.admin, tk, err)
	after := where()
	assert.Len(t, after, 3, "the VMs spread over the three nodes: %v", after)
	again, err := e.admin.PlanRebalance(ctx, cl.ID, api.RebalanceBody{Threshold: 0.05})
	require.NoError(t, err)
	assert.InDelta(t, plan.After, again.Before, 1e-9, "the cluster is where the plan said")
	assert.Empty(t, again.Moves)
}

// TestMigrateToAnotherCluster: a running VM moves live to a node of
// another cluster whose network matches and which its IP pool serves;
// otherwise the move is refused before anything moves.
func TestMigrateToAnotherCluster(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done(t, e.alice, e.aliceTask, nil)
	other, err := e.admin.CreateCluster(ctx, api.ClusterBody{Name: "ams1", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	node, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: other.ID, Name: "ams-sim1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	vmID := e.aliceVM.ID

	_, err = e.admin.MigrateVMToCluster(ctx, vmID, e.cluster.ID, node.ID)
	assert.Equal(t, "body.node_id", problemOf(t, err).Field(), "a node of another cluster than named")
	tk, err := e.admin.MigrateVMToCluster(ctx, vmID, other.ID, "")
	err = fails(t, e.admin, tk, err)
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "does not serve cluster")

	// A VM of a pool that serves both clusters moves, live, and is the
	// other cluster's from then on.
	routed, err := e.admin.CreateCluster(ctx, api.ClusterBody{Name: "routed", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "routed"})
	require.NoError(t, err)
	_, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: routed.ID, Name: "r-sim1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	both, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "both", ClusterIDs: []string{e.cluster.ID, other.ID, routed.ID}, Blocks: []api.BlockBody{{Range: "203.0.113.0/24", Gateway: "203.0.113.1"}}})
	require.NoError(t, err)
	b := e.vmBody("mover")
	b.PoolID = both.ID
	vm, tk, err := e.alice.CreateVM(ctx, b, "")
	done(t, e.alice, tk, err)
	// A cluster whose network differs is refused, before anything moves.
	tk, err = e.admin.MigrateVMToCluster(ctx, vm.ID, routed.ID, "")
	err = fails(t, e.admin, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	assert.Contains(t, err.Error(), "network")
	tk, err = e.admin.MigrateVMToCluster(ctx, vm.ID, other.ID, "")
	done(t, e.admin, tk, err)
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, other.ID, vm.ClusterID)
	assert.Equal(t, node.ID, vm.NodeID)
	assert.Equal(t, model.VMRunning, vm.State)
	drv, err := e.srv.Flow.NodeDriver(ctx, node.ID)
	require.NoError(t, err)
	d, err := drv.Get(ctx, "vpt-"+vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", string(d.State), "running on the other cluster's node")
	// The other cluster's placement counts it: its node is the VM's.
	plan, err := e.admin.PlanRebalance(ctx, other.ID, api.RebalanceBody{})
	require.NoError(t, err)
	assert.Empty(t, plan.Moves, "one node: nothing to move")

}
