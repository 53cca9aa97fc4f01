package flow_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	netport "github.com/virtplane/virtplane/network/port"
)

func routedCluster(c *model.Cluster) { c.NetworkMode, c.Bridge = model.NetworkRouted, "" }

func vxlanCluster(c *model.Cluster) { c.NetworkMode, c.Bridge, c.VNI = model.NetworkVXLAN, "", 5000 }

// TestCreateRouted: in a routed cluster the VM's port is routed through
// its block's gateway and on no bridge; the domain's NIC is a plain tap of
// the port's name; the guest gets its address alone with the gateway
// on-link. Delete leaves nothing.
func TestCreateRouted(t *testing.T) {
	fx := newFixture(t, "", fixtureOption{cluster: routedCluster})
	vm, tk := fx.create(t, "web", model.Limits{NetMbit: 20})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	require.Len(t, vm.Addresses, 1)

	port, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok, "no port for the VM")
	assert.Equal(t, netport.ModeRouted, port.Mode)
	assert.Empty(t, port.Bridge)
	assert.Equal(t, netip.MustParseAddr("192.0.2.1"), port.GatewayV4, "the block's gateway")
	assert.Nil(t, port.VXLAN)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr(vm.Addresses[0])}, port.Addresses)
	assert.EqualValues(t, 20_000, port.InKbit, "shaped as in any mode")

	dom, err := fx.drv.Get(t.Context(), flow.DomainName(vm.ID))
	require.NoError(t, err)
	require.Len(t, dom.Spec.NICs, 1)
	nic := dom.Spec.NICs[0]
	assert.Empty(t, nic.Bridge, "a plain tap (libvirt type='ethernet'), no bridge member")
	assert.Equal(t, port.Name, nic.Tap)
	assert.Equal(t, port.MAC, nic.MAC)
	require.NotNil(t, dom.Spec.CloudInit)
	assert.Contains(t, dom.Spec.CloudInit.NetworkConfig, "addresses: ["+vm.Addresses[0]+"/32]")
	assert.Contains(t, dom.Spec.CloudInit.NetworkConfig, "{to: 0.0.0.0/0, via: 192.0.2.1, on-link: true}")

	del := fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskSucceeded, del.State, del.Error)
	fx.assertNothingLeft(t, vm.ID)
}

// TestCreateVXLAN: in a vxlan cluster the VM's port joins the bridge of
// the cluster's VNI, with its node as tunnel endpoint and the cluster's
// other nodes as the flood list; the domain's NIC is on that bridge.
func TestCreateVXLAN(t *testing.T) {
	fx := newFixture(t, "", fixtureOption{cluster: vxlanCluster,
		node:  func(n *model.Node) { n.VTEPAddress = "10.99.0.1" },
		peers: []model.Node{{Name: "sim3", VTEPAddress: "10.99.0.3"}, {Name: "sim2", VTEPAddress: "10.99.0.2"}}})
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)

	port, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok, "no port for the VM")
	assert.Equal(t, netport.ModeVXLAN, port.Mode)
	assert.Equal(t, "vxbr5000", port.Bridge)
	require.NotNil(t, port.VXLAN)
	assert.Equal(t, 5000, port.VXLAN.VNI)
	assert.Equal(t, netip.MustParseAddr("10.99.0.1"), port.VXLAN.Local)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}, port.VXLAN.Peers)
	assert.False(t, port.GatewayV4.IsValid())

	dom, err := fx.drv.Get(t.Context(), flow.DomainName(vm.ID))
	require.NoError(t, err)
	require.Len(t, dom.Spec.NICs, 1)
	assert.Equal(t, "vxbr5000", dom.Spec.NICs[0].Bridge)
	assert.Equal(t, port.Name, dom.Spec.NICs[0].Tap)
	assert.Contains(t, dom.Spec.CloudInit.NetworkConfig, "gateway4: 192.0.2.1", "a bridged guest, as in bridge mode")

	del := fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskSucceeded, del.State, del.Error)
	fx.assertNothingLeft(t, vm.ID)
}

// TestCreateRejectsNetworkSettings: settings that cannot give the VM a
// port fail the create with a typed error naming the field, and leave
// nothing behind.
func TestCreateRejectsNetworkSettings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   fixtureOption
		class error
		field string
	}{
		{"vxlan cluster without vni", fixtureOption{cluster: func(c *model.Cluster) { vxlanCluster(c); c.VNI = 0 },
			node: func(n *model.Node) { n.VTEPAddress = "10.99.0.1" }}, virtplane.ErrInvalidArgument, "vni"},
		{"node without vtep address", fixtureOption{cluster: vxlanCluster}, virtplane.ErrInvalidArgument, "vtep_address"},
		{"peer without vtep address", fixtureOption{cluster: vxlanCluster, node: func(n *model.Node) { n.VTEPAddress = "10.99.0.1" },
			peers: []model.Node{{Name: "sim2"}}}, virtplane.ErrInvalidArgument, "vtep_address"},
		{"peer of another family", fixtureOption{cluster: vxlanCluster, node: func(n *model.Node) { n.VTEPAddress = "10.99.0.1" },
			peers: []model.Node{{Name: "sim2", VTEPAddress: "2001:db8::2"}}}, virtplane.ErrInvalidArgument, "vtep_address"},
		{"routed block without gateway", fixtureOption{cluster: routedCluster, gateway: "-"}, virtplane.ErrInvalidArgument, "gateway"},
		{"routed cluster with a bridge", fixtureOption{cluster: func(c *model.Cluster) { routedCluster(c); c.Bridge = "br0" }}, virtplane.ErrInvalidArgument, "bridge"},
		{"unknown mode", fixtureOption{cluster: func(c *model.Cluster) { c.NetworkMode = "evpn" }}, virtplane.ErrInvalidArgument, "network_mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, "", tc.opt)
			vm, tk := fx.create(t, "web", model.Limits{})
			require.Equal(t, store.TaskFailed, tk.State)
			assert.Equal(t, virtplane.Class(tc.class).Error(), tk.ErrorClass, tk.Error)
			assert.Contains(t, tk.Error, tc.field)
			fx.assertNothingLeft(t, vm.ID)
			for _, c := range fx.ports.Calls() {
				assert.NotEqual(t, "Setup", c.Method, "no port was set up")
			}
		})
	}
}

// TestCreateOnANodeThatCannotRoute: a node whose ports cannot do the
// cluster's mode fails the create with ErrNotImplemented, saying which.
func TestCreateOnANodeThatCannotRoute(t *testing.T) {
	ports := netport.NewFake()
	ports.Disable(netport.ModeRouted)
	fx := newFixture(t, "", fixtureOption{cluster: routedCluster, ports: ports})
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskFailed, tk.State)
	assert.Equal(t, virtplane.Class(virtplane.ErrNotImplemented).Error(), tk.ErrorClass, tk.Error)
	assert.Contains(t, tk.Error, "routed")
	_, ok := ports.Port(flow.PortName(vm.ID))
	assert.False(t, ok)
	fx.assertNothingLeft(t, vm.ID)
}

// runSync runs the flood sync of the fixture's cluster and waits for it.
func (fx *fixture) runSync(t *testing.T) store.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tk, _, err := fx.eng.Submit(ctx, flow.FloodSyncSubmission(fx.cluster.ID, "admin"))
	require.NoError(t, err)
	tk, err = fx.eng.Wait(ctx, tk.ID)
	require.NoError(t, err)
	return tk
}

// TestFloodSync: the flood sync sets each VXLAN port of the cluster's VMs
// up again with the vteps of the cluster's other nodes as they are in the
// store when it runs; a port whose setup fails fails the task naming the
// node, and the next run converges; a port already up to date is left
// alone. A VM start, too, sets its port up with the current peers.
func TestFloodSync(t *testing.T) {
	ctx := t.Context()
	fx := newFixture(t, "", fixtureOption{cluster: vxlanCluster,
		node:  func(n *model.Node) { n.VTEPAddress = "10.99.0.1" },
		peers: []model.Node{{Name: "sim2", VTEPAddress: "10.99.0.2"}}})
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	peers := func() []string {
		t.Helper()
		port, ok := fx.ports.Port(flow.PortName(vm.ID))
		require.True(t, ok)
		var out []string
		for _, p := range port.VXLAN.Peers {
			out = append(out, p.String())
		}
		return out
	}
	setups := func() int {
		n := 0
		for _, c := range fx.ports.Calls() {
			if c.Method == "Setup" {
				n++
			}
		}
		return n
	}
	require.Equal(t, []string{"10.99.0.2"}, peers())

	before := setups()
	tk = fx.runSync(t)
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	assert.Equal(t, before, setups(), "nothing changed: no setup")

	third := model.Node{ID: store.NewID(), ClusterID: fx.cluster.ID, Name: "sim3", Address: "sim", State: model.NodeMaintenance,
		Maintenance: true, Cores: 8, MemoryMiB: 16384, DiskGiB: 100, VTEPAddress: "10.99.0.3", Created: time.Now().UTC()}
	put(t, fx.st, store.KindNode, third.ID, third.Name, fx.cluster.ID, third)

	fx.ports.FailNext("Setup", errors.New("connection reset"))
	tk = fx.runSync(t)
	require.Equal(t, store.TaskFailed, tk.State)
	assert.Equal(t, virtplane.ErrUnavailable.Error(), tk.ErrorClass, tk.Error)
	assert.Contains(t, tk.Error, "node sim1", "names the node")
	assert.Equal(t, []string{"10.99.0.2"}, peers(), "the failed setup changed nothing")

	tk = fx.runSync(t)
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	assert.Equal(t, []string{"10.99.0.2", "10.99.0.3"}, peers(), "the rerun converged")
	recs, err := fx.st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: simnode.PortsParent(fx.node.ID)})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Contains(t, string(recs[0].Data), "10.99.0.3", "the node recorded the new spec")

	// A node leaves without a sync: the next start of the VM sets the port
	// up with the peers of now, not with the recorded ones.
	require.NoError(t, fx.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindNode, third.ID, 0) }))
	fx.flow.Invalidate(fx.cluster.ID)
	stop := fx.run(t, flow.KindVMStop, vm.ID)
	require.Equal(t, store.TaskSucceeded, stop.State, stop.Error)
	start := fx.run(t, flow.KindVMStart, vm.ID)
	require.Equal(t, store.TaskSucceeded, start.State, start.Error)
	assert.Equal(t, []string{"10.99.0.2"}, peers())
}

// TestFloodSyncOutsideVXLAN: in another mode the sync has nothing to do
// and touches no port.
func TestFloodSyncOutsideVXLAN(t *testing.T) {
	fx := newFixture(t, "vptbr-sync")
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	calls := len(fx.ports.Calls())
	tk = fx.runSync(t)
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	assert.Len(t, fx.ports.Calls(), calls)
	port, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok)
	assert.Equal(t, "vptbr-sync", port.Bridge)
}
