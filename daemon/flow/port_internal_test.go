package flow

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/vmm"
)

// TestPortSpec: the port of a VM in each network mode, and the settings
// each mode refuses (the error names the field).
func TestPortSpec(t *testing.T) {
	vm := model.VM{ID: "vm1", Limits: model.Limits{NetMbit: 3}}
	alloc := ipam.Allocation{Pool: "p1", Block: "b1", Prefix: netip.MustParsePrefix("192.0.2.10/32"),
		Network: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("192.0.2.1")}
	nodes := []model.Node{{ID: "n1", Name: "n1", VTEPAddress: "10.99.0.1"}, {ID: "n2", Name: "n2", VTEPAddress: "10.99.0.2"}, {ID: "n3", Name: "n3", VTEPAddress: "10.99.0.3"}}
	vx := model.Cluster{Name: "c", NetworkMode: model.NetworkVXLAN, VNI: 9}

	s, err := portSpec(vm, model.Cluster{Name: "c", NetworkMode: model.NetworkBridge, Bridge: "br9"}, nodes[0], nil, alloc)
	require.NoError(t, err)
	assert.Equal(t, netport.ModeBridge, s.Mode)
	assert.Equal(t, "br9", s.Bridge)
	assert.EqualValues(t, 3000, s.InKbit)
	assert.Equal(t, vmm.NIC{Bridge: "br9", Tap: s.Name, MAC: s.MAC}, nic(s))

	s, err = portSpec(vm, model.Cluster{Name: "c", NetworkMode: model.NetworkRouted}, nodes[0], nil, alloc)
	require.NoError(t, err)
	assert.Equal(t, netport.ModeRouted, s.Mode)
	assert.Equal(t, alloc.Gateway, s.GatewayV4)
	assert.Empty(t, nic(s).Bridge, "a plain tap")
	require.NoError(t, s.Validate())

	for i, n := range nodes {
		s, err = portSpec(vm, vx, n, nodes, alloc)
		require.NoError(t, err)
		assert.Equal(t, "vxbr9", s.Bridge)
		assert.Equal(t, n.VTEPAddress, s.VXLAN.Local.String())
		require.Len(t, s.VXLAN.Peers, 2, "node %d: the others", i)
		assert.NotContains(t, s.VXLAN.Peers, s.VXLAN.Local)
		require.NoError(t, s.Validate())
	}

	for _, tc := range []struct {
		name  string
		c     model.Cluster
		node  model.Node
		nodes []model.Node
		a     ipam.Allocation
		class error
		field string
	}{
		{"vxlan without vni", model.Cluster{NetworkMode: model.NetworkVXLAN}, nodes[0], nodes, alloc, virtplane.ErrInvalidArgument, "vni"},
		{"node without vtep", vx, model.Node{ID: "n9", Name: "n9"}, nodes, alloc, virtplane.ErrInvalidArgument, "vtep_address"},
		{"bad vtep", vx, model.Node{ID: "n9", Name: "n9", VTEPAddress: "10.0.0.300"}, nodes, alloc, virtplane.ErrInvalidArgument, "vtep_address"},
		{"routed without gateway", model.Cluster{NetworkMode: model.NetworkRouted}, nodes[0], nil,
			ipam.Allocation{Block: "b1", Prefix: alloc.Prefix}, virtplane.ErrInvalidArgument, "gateway"},
		{"routed v6 gateway", model.Cluster{NetworkMode: model.NetworkRouted}, nodes[0], nil,
			ipam.Allocation{Block: "b1", Prefix: alloc.Prefix, Gateway: netip.MustParseAddr("2001:db8::1")}, virtplane.ErrInvalidArgument, "gateway"},
		{"routed ipv6 address", model.Cluster{NetworkMode: model.NetworkRouted}, nodes[0], nil,
			ipam.Allocation{Block: "b6", Prefix: netip.MustParsePrefix("2001:db8::10/128"), Gateway: netip.MustParseAddr("fe80::1")}, virtplane.ErrNotImplemented, "IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := portSpec(vm, tc.c, tc.node, tc.nodes, tc.a)
			assert.ErrorIs(t, err, tc.class)
			assert.ErrorContains(t, err, tc.field)
		})
	}
}
