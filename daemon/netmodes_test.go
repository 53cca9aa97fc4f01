package daemon_test

import (
	"context"
	"errors"
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
	netport "github.com/virtplane/virtplane/network/port"
)

func clusterBody(name, mode string) api.ClusterBody {
	return api.ClusterBody{Name: name, VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: mode}
}

// TestNetworkModeSettingsNameTheField: the API refuses network settings
// that cannot work, naming the field: a vxlan cluster without a VNI, a VNI
// out of range or outside vxlan mode, a bridge outside bridge mode, a node
// of a vxlan cluster without a vtep address, a mode change under VMs.
func TestNetworkModeSettingsNameTheField(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx := t.Context()
	problem := func(t *testing.T, err error, status int, field string) {
		t.Helper()
		var p *client.Problem
		require.ErrorAs(t, err, &p)
		assert.Equal(t, status, p.Status, p.Error())
		assert.Equal(t, field, p.Field(), p.Error())
	}
	for _, tc := range []struct {
		name   string
		body   api.ClusterBody
		status int
		field  string
	}{
		{"vxlan without vni", clusterBody("vx1", "vxlan"), 422, "body.vni"},
		{"vni too large", func() api.ClusterBody { b := clusterBody("vx2", "vxlan"); b.VNI = 1 << 24; return b }(), 422, "body.vni"},
		{"vni in bridge mode", func() api.ClusterBody { b := clusterBody("br1", "bridge"); b.VNI = 5; return b }(), 422, "body.vni"},
		{"bridge in routed mode", func() api.ClusterBody { b := clusterBody("rt1", "routed"); b.Bridge = "br0"; return b }(), 422, "body.bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.CreateCluster(ctx, tc.body)
			problem(t, err, tc.status, tc.field)
		})
	}

	b := clusterBody("vx", "vxlan")
	b.VNI = 100
	vx, err := e.admin.CreateCluster(ctx, b)
	require.NoError(t, err)
	assert.Equal(t, 100, vx.VNI)
	node := api.NodeBody{ClusterID: vx.ID, Name: "vx-n1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100}
	_, err = e.admin.AddNode(ctx, node)
	problem(t, err, 422, "body.vtep_address")
	node.VTEPAddress = "10.99.0.300"
	_, err = e.admin.AddNode(ctx, node)
	problem(t, err, 422, "body.vtep_address")
	node.VTEPAddress = "10.99.0.1"
	n, err := e.admin.AddNode(ctx, node)
	require.NoError(t, err)
	assert.Equal(t, "10.99.0.1", n.VTEPAddress)

	// The bridge cluster of newEnv has a VM: its mode stays.
	up := clusterBody("fra1", "routed")
	err = e.admin.Do(ctx, "PUT", "/v1/clusters/"+e.cluster.ID, up, nil)
	problem(t, err, 409, "body.network_mode")
	// An empty cluster turns vxlan only when every node has a vtep address.
	rt, err := e.admin.CreateCluster(ctx, clusterBody("rt", "routed"))
	require.NoError(t, err)
	_, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: rt.ID, Name: "rt-n1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	up = clusterBody("rt", "vxlan")
	up.VNI = 200
	err = e.admin.Do(ctx, "PUT", "/v1/clusters/"+rt.ID, up, nil)
	problem(t, err, 422, "body.network_mode")
}

// TestVMsInRoutedAndVXLANClusters: through the API, a VM in a routed and
// one in a vxlan cluster of simulated nodes get the port of their mode;
// migrated, the port moves along (a VXLAN port taking the target's vtep).
func TestVMsInRoutedAndVXLANClusters(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, mode := range []string{"routed", "vxlan"} {
		t.Run(mode, func(t *testing.T) {
			b := clusterBody(mode, mode)
			if mode == "vxlan" {
				b.VNI = 4242
			}
			cl, err := e.admin.CreateCluster(ctx, b)
			require.NoError(t, err)
			var nodes []model.Node
			for i, vtep := range []string{"10.99.0.1", "10.99.0.2"} {
				n, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: mode + "-n" + string(rune('1'+i)), Address: "sim",
					Cores: 8, MemoryMiB: 16384, DiskGiB: 100, VTEPAddress: vtep})
				require.NoError(t, err)
				nodes = append(nodes, n)
			}
			pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: mode + "-pool", ClusterIDs: []string{cl.ID},
				Blocks: []api.BlockBody{{Range: "198.51.100.0/24", Gateway: "198.51.100.1"}}})
			require.NoError(t, err)
			body := e.vmBody(mode + "-vm")
			body.ClusterID, body.PoolID = cl.ID, pool.ID
			vm, tk, err := e.alice.CreateVM(ctx, body, "")
			require.NoError(t, err)
			tk, err = e.alice.WaitTask(ctx, tk.ID)
			require.NoError(t, err)
			require.NoError(t, client.TaskError(tk))
			vm, err = e.alice.GetVM(ctx, vm.ID)
			require.NoError(t, err)

			check := func(t *testing.T, nodeID string) {
				t.Helper()
				np, err := e.srv.Flow.NodePorts(ctx, nodeID)
				require.NoError(t, err)
				port, ok := np.(*simnode.Ports).Port(flow.PortName(vm.ID))
				require.True(t, ok, "the node recorded the VM's port")
				assert.Equal(t, mode, port.Mode)
				assert.Equal(t, []netip.Addr{netip.MustParseAddr(vm.Addresses[0])}, port.Addresses)
				switch mode {
				case "routed":
					assert.Empty(t, port.Bridge)
					assert.Equal(t, "198.51.100.1", port.GatewayV4.String())
				case "vxlan":
					assert.Equal(t, netport.VXLANBridge(4242), port.Bridge)
					require.NotNil(t, port.VXLAN)
					self, other := nodes[0], nodes[1]
					if nodeID == other.ID {
						self, other = other, self
					}
					assert.Equal(t, self.VTEPAddress, port.VXLAN.Local.String())
					assert.Equal(t, []netip.Addr{netip.MustParseAddr(other.VTEPAddress)}, port.VXLAN.Peers)
				}
			}
			check(t, vm.NodeID)

			target := nodes[0].ID
			if vm.NodeID == target {
				target = nodes[1].ID
			}
			mt, err := e.admin.MigrateVM(ctx, vm.ID, target)
			require.NoError(t, err)
			mt, err = e.admin.WaitTask(ctx, mt.ID)
			require.NoError(t, err)
			require.NoError(t, client.TaskError(mt))
			check(t, target)
			np, err := e.srv.Flow.NodePorts(ctx, vm.NodeID)
			require.NoError(t, err)
			_, left := np.(*simnode.Ports).Port(flow.PortName(vm.ID))
			assert.False(t, left, "no port left on the source")
		})
	}
}

// TestVXLANFloodFollowsNodes: in a vxlan cluster of simulated nodes with a
// VM on each of two nodes, the VMs' ports flood to the nodes as they come,
// change their vtep and go (a cluster.vxlan.sync task each time). A node
// whose ports cannot be reached fails the sync naming it, and leaves the
// other nodes up to date; syncing again converges.
func TestVXLANFloodFollowsNodes(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b := clusterBody("vxf", "vxlan")
	b.VNI = 3030
	cl, err := e.admin.CreateCluster(ctx, b)
	require.NoError(t, err)
	addNode := func(name, vtep string) model.Node {
		t.Helper()
		n, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: name, Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100, VTEPAddress: vtep})
		require.NoError(t, err)
		return n
	}
	// syncs waits for the cluster's sync tasks not seen before and returns
	// them, oldest first.
	seen := map[string]bool{}
	syncs := func() []api.TaskView {
		t.Helper()
		var page api.Page[api.TaskView]
		require.NoError(t, e.admin.Do(ctx, "GET", "/v1/tasks?limit=1000&target=cluster/"+cl.ID, nil, &page))
		var out []api.TaskView
		for _, tk := range page.Items {
			if seen[tk.ID] {
				continue
			}
			seen[tk.ID] = true
			assert.Equal(t, flow.KindClusterFloodSync, tk.Kind)
			tk, err := e.admin.WaitTask(ctx, tk.ID)
			require.NoError(t, err)
			out = append(out, tk)
		}
		return out
	}
	n1, n2 := addNode("vxf-n1", "10.98.0.1"), addNode("vxf-n2", "10.98.0.2")
	for _, tk := range syncs() {
		require.NoError(t, client.TaskError(tk), "nothing to sync on empty nodes")
	}
	pool, err := e.admin.CreatePool(ctx, api.PoolBody{Name: "vxf-pool", ClusterIDs: []string{cl.ID},
		Blocks: []api.BlockBody{{Range: "198.51.100.0/24", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	var vms []model.VM
	for _, name := range []string{"vxf-a", "vxf-b"} {
		body := e.vmBody(name)
		body.ClusterID, body.PoolID = cl.ID, pool.ID
		vm, tk, err := e.alice.CreateVM(ctx, body, "")
		require.NoError(t, err)
		tk, err = e.alice.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(tk))
		vm, err = e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		vms = append(vms, vm)
	}
	require.ElementsMatch(t, []string{n1.ID, n2.ID}, []string{vms[0].NodeID, vms[1].NodeID}, "even placement: a VM on each node")
	nodePorts := func(nodeID string) *simnode.Ports {
		t.Helper()
		np, err := e.srv.Flow.NodePorts(ctx, nodeID)
		require.NoError(t, err)
		return np.(*simnode.Ports)
	}
	// peers returns the flood list of each VM's port, by VM name.
	peers := func() map[string][]string {
		t.Helper()
		out := map[string][]string{}
		for _, vm := range vms {
			port, ok := nodePorts(vm.NodeID).Port(flow.PortName(vm.ID))
			require.True(t, ok, "port of %s", vm.Name)
			require.NotNil(t, port.VXLAN)
			out[vm.Name] = []string{}
			for _, p := range port.VXLAN.Peers {
				out[vm.Name] = append(out[vm.Name], p.String())
			}
		}
		return out
	}
	// flood is what each VM should flood to: every vtep but its node's.
	vtepOf := map[string]string{n1.ID: "10.98.0.1", n2.ID: "10.98.0.2"}
	flood := func(vteps ...string) map[string][]string {
		out := map[string][]string{}
		for _, vm := range vms {
			out[vm.Name] = []string{}
			for _, v := range vteps {
				if v != vtepOf[vm.NodeID] {
					out[vm.Name] = append(out[vm.Name], v)
				}
			}
		}
		return out
	}
	require.Equal(t, flood("10.98.0.1", "10.98.0.2"), peers())
	succeeded := func(t *testing.T) {
		t.Helper()
		tks := syncs()
		require.Len(t, tks, 1, "one sync task per change")
		require.NoError(t, client.TaskError(tks[0]))
	}

	var n3 model.Node
	t.Run("add a node", func(t *testing.T) {
		n3 = addNode("vxf-n3", "10.98.0.3")
		succeeded(t)
		assert.Equal(t, flood("10.98.0.1", "10.98.0.2", "10.98.0.3"), peers())
	})
	require.NotEmpty(t, n3.ID)

	t.Run("change a vtep", func(t *testing.T) {
		var got model.Node
		require.NoError(t, e.admin.Do(ctx, "PUT", "/v1/nodes/"+n3.ID+"/vtep", map[string]string{"vtep_address": "10.98.0.33"}, &got))
		assert.Equal(t, "10.98.0.33", got.VTEPAddress)
		succeeded(t)
		assert.Equal(t, flood("10.98.0.1", "10.98.0.2", "10.98.0.33"), peers())

		// The vtep of a node under VMs stays: their tunnel starts there.
		err := e.admin.Do(ctx, "PUT", "/v1/nodes/"+n1.ID+"/vtep", map[string]string{"vtep_address": "10.98.0.11"}, nil)
		var p *client.Problem
		require.ErrorAs(t, err, &p)
		assert.Equal(t, 409, p.Status, p.Error())
		assert.Equal(t, "body.vtep_address", p.Field())
		for _, tc := range []struct {
			vtep   string
			status int
		}{{"not-an-ip", 422}, {"", 422}, {"2001:db8::33", 422}, {"10.98.0.2", 409}} {
			err = e.admin.Do(ctx, "PUT", "/v1/nodes/"+n3.ID+"/vtep", map[string]string{"vtep_address": tc.vtep}, nil)
			require.ErrorAs(t, err, &p, tc.vtep)
			assert.Equal(t, tc.status, p.Status, p.Error())
			assert.Equal(t, "body.vtep_address", p.Field(), tc.vtep)
		}
		_, err = e.admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "vxf-dup", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100, VTEPAddress: "10.98.0.1"})
		require.ErrorAs(t, err, &p)
		assert.Equal(t, 409, p.Status, p.Error())
		assert.Equal(t, "body.vtep_address", p.Field())
		assert.Empty(t, syncs(), "a refused change starts no sync")
	})

	t.Run("remove a node while another is unreachable", func(t *testing.T) {
		down := nodePorts(n2.ID)
		down.FailNext("List", errors.New("connection refused"))
		require.NoError(t, e.admin.Do(ctx, "DELETE", "/v1/nodes/"+n3.ID, nil, nil))
		tks := syncs()
		require.Len(t, tks, 1)
		assert.Equal(t, "failed", tks[0].State)
		assert.Equal(t, virtplane.ErrUnavailable.Error(), tks[0].ErrorClass, tks[0].Error)
		assert.Contains(t, tks[0].Error, "vxf-n2", "the failure names the node")
		assert.NotContains(t, tks[0].Error, "vxf-n1")
		got := peers()
		want := flood("10.98.0.1", "10.98.0.2")
		onN1 := vms[0]
		if onN1.NodeID != n1.ID {
			onN1 = vms[1]
		}
		assert.Equal(t, want[onN1.Name], got[onN1.Name], "the reachable node is up to date")

		var tk api.TaskView
		require.NoError(t, e.admin.Do(ctx, "POST", "/v1/clusters/"+cl.ID+"/vxlan-sync", nil, &tk))
		seen[tk.ID] = true
		tk, err := e.admin.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(tk))
		assert.Equal(t, want, peers(), "the rerun converged")

		setups := 0
		for _, c := range down.Calls() {
			if c.Method == "Setup" {
				setups++
			}
		}
		require.NoError(t, e.admin.Do(ctx, "POST", "/v1/clusters/"+cl.ID+"/vxlan-sync", nil, &tk))
		seen[tk.ID] = true
		tk, err = e.admin.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(tk))
		after := 0
		for _, c := range down.Calls() {
			if c.Method == "Setup" {
				after++
			}
		}
		assert.Equal(t, setups, after, "a sync with nothing to change sets up no port")
	})
}
