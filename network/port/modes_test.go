package port_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/routing"
	"github.com/virtplane/virtplane/network/shaping"
)

func pings(t *testing.T, from *testenv.Netns, args ...string) bool {
	return from.Command(t.Context(), "ping", append([]string{"-c", "1", "-W", "1"}, args...)...).Run() == nil
}

// TestKernelRouted: a VM (namespace) behind a routed port reaches the
// datacenter side of the host by routing, from its own addresses only; the
// tap is on no bridge, holds the gateway, and the host routes the VM's
// /32 and /128 to it. Teardown takes routes and gateway away.
func TestKernelRouted(t *testing.T) {
	ctx := t.Context()
	h, host, dir := kernelHost(t)
	dc, vm := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, dc, "eth0", "203.0.113.1/24", host, "uplink0", "203.0.113.2/24")
	dc.Run(t, "ip", "addr", "add", "fd00:113::1/64", "dev", "eth0", "nodad")
	host.Run(t, "ip", "addr", "add", "fd00:113::2/64", "dev", "uplink0", "nodad")
	host.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	dc.Run(t, "ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.2")
	dc.Run(t, "ip", "-6", "route", "add", "fd00:51::/64", "via", "fd00:113::2")

	s := netport.ForVM("vm-routed", "", []netip.Addr{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("fd00:51::10")})
	s.Mode, s.GatewayV4, s.GatewayV6 = netport.ModeRouted, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("fe80::1")
	require.NoError(t, h.Setup(ctx, s), "before the tap exists")
	testenv.Veth(t, vm, "eth0", "198.51.100.10/32", host, s.Name, "")
	vm.Run(t, "ip", "link", "set", "eth0", "address", s.MAC)
	vm.Run(t, "ip", "addr", "add", "fd00:51::10/128", "dev", "eth0", "nodad")
	vm.Run(t, "ip", "route", "add", "198.51.100.1", "dev", "eth0")
	vm.Run(t, "ip", "route", "add", "default", "via", "198.51.100.1")
	vm.Run(t, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	require.NoError(t, h.Setup(ctx, s), "the tap appeared")

	tap := host.Run(t, "ip", "addr", "show", s.Name)
	assert.NotContains(t, tap, "master", "a routed tap is on no bridge")
	assert.Contains(t, tap, "198.51.100.1/32", "the host holds the gateway on the tap")
	assert.Contains(t, tap, "fe80::1/64")
	assert.Contains(t, host.Run(t, "ip", "route", "show", "198.51.100.10"), "dev "+s.Name)
	assert.Contains(t, host.Run(t, "ip", "-6", "route", "show", "fd00:51::10"), "dev "+s.Name)
	routes := host.Run(t, "ip", "-br", "route")
	require.NoError(t, h.Setup(ctx, s))
	assert.Equal(t, routes, host.Run(t, "ip", "-br", "route"), "a second setup changes nothing")

	assert.True(t, pings(t, vm, "203.0.113.1"), "the VM reaches the datacenter side over IPv4")
	// The VM's link-local address is tentative for a second (DAD).
	assert.True(t, pings(t, vm, "-6", "-c", "3", "-W", "3", "fd00:113::1"), "and over IPv6")
	assert.True(t, pings(t, dc, "198.51.100.10"), "the datacenter reaches the VM")
	vm.Run(t, "ip", "addr", "add", "198.51.100.99/32", "dev", "eth0")
	dc.Run(t, "ip", "route", "add", "198.51.100.99/32", "via", "203.0.113.2")
	host.Run(t, "ip", "route", "add", "198.51.100.99/32", "dev", s.Name)
	assert.False(t, pings(t, vm, "-I", "198.51.100.99", "203.0.113.1"), "a spoofed source is dropped")
	assert.NotContains(t, dc.Run(t, "ip", "neigh"), s.MAC, "the VM's MAC never leaves the host")
	host.Run(t, "ip", "route", "del", "198.51.100.99/32")

	require.NoError(t, h.Teardown(ctx, s.Name))
	assert.NotContains(t, host.Run(t, "ip", "route"), "198.51.100.10")
	assert.NotContains(t, host.Run(t, "ip", "-6", "route"), "fd00:51::10")
	assert.NotContains(t, host.Run(t, "ip", "addr", "show", s.Name), "198.51.100.1/32")
	assert.False(t, pings(t, vm, "203.0.113.1"), "no route after teardown")
	assert.Empty(t, strings.TrimSpace(host.Run(t, "nft", "list", "tables")))
	assert.NoFileExists(t, dir+"/"+s.Name+".json", "the port is forgotten")
}

// TestKernelVXLAN: two nodes (namespaces) joined by an underlay veth, a VM
// behind a VXLAN port on each: the VMs reach each other over the tunnel,
// each node floods to the other (full mesh), and teardown leaves neither
// bridge nor tunnel device.
func TestKernelVXLAN(t *testing.T) {
	ctx := t.Context()
	n1, n2 := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, n1, "under0", "10.99.0.1/24", n2, "under0", "10.99.0.2/24")
	h1, _ := hostIn(t, n1)
	h2, _ := hostIn(t, n2)
	vtep := []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")}
	type side struct {
		node, vm *testenv.Netns
		h        *netport.Host
		s        netport.Spec
	}
	var sides []side
	for i, n := range []*testenv.Netns{n1, n2} {
		h := []*netport.Host{h1, h2}[i]
		addr := netip.AddrFrom4([4]byte{10, 200, 0, byte(i + 1)})
		s := netport.ForVM("vm-vx-"+addr.String(), "", []netip.Addr{addr})
		s.Mode = netport.ModeVXLAN
		s.VXLAN = &netport.VXLAN{VNI: 100, Local: vtep[i], Peers: vtep} // itself included: dropped
		require.NoError(t, h.Setup(ctx, s), "before the tap exists")
		vm := testenv.NewNetns(t)
		testenv.Veth(t, vm, "eth0", addr.String()+"/24", n, s.Name, "")
		vm.Run(t, "ip", "link", "set", "eth0", "address", s.MAC)
		require.NoError(t, h.Setup(ctx, s), "the tap appeared")
		sides = append(sides, side{n, vm, h, s})
	}
	for i, sd := range sides {
		other := vtep[1-i].String()
		dev := sd.node.Run(t, "ip", "-d", "link", "show", "vx100")
		assert.Contains(t, dev, "vxlan id 100 local "+vtep[i].String())
		assert.Contains(t, dev, "master vxbr100")
		fdb := sd.node.Run(t, "bridge", "fdb", "show", "dev", "vx100")
		assert.Contains(t, fdb, "00:00:00:00:00:00 dst "+other, "floods to the other node")
		assert.NotContains(t, fdb, "dst "+vtep[i].String(), "not to itself")
		assert.Contains(t, sd.node.Run(t, "ip", "link", "show", sd.s.Name), "master vxbr100")
	}
	assert.True(t, pings(t, sides[0].vm, "10.200.0.2"), "the VMs reach each other over the VxLAN")
	assert.True(t, pings(t, sides[1].vm, "10.200.0.1"))
	sides[0].vm.Run(t, "ip", "addr", "add", "10.200.0.99/24", "dev", "eth0")
	assert.False(t, pings(t, sides[0].vm, "-I", "10.200.0.99", "10.200.0.2"), "a spoofed source is dropped")

	links := n1.Run(t, "ip", "-br", "link")
	require.NoError(t, h1.Setup(ctx, sides[0].s))
	assert.Equal(t, links, n1.Run(t, "ip", "-br", "link"), "a second setup changes nothing")

	// The cluster's nodes change: a Setup with the new peers brings the
	// flood list to them (a third node joins, then the second leaves), and
	// the recorded spec follows.
	third := netip.MustParseAddr("10.99.0.3")
	for _, tc := range []struct {
		peers     []netip.Addr
		has, hasn []string
	}{
		{[]netip.Addr{vtep[1], third}, []string{"10.99.0.2", "10.99.0.3"}, nil},
		{[]netip.Addr{third}, []string{"10.99.0.3"}, []string{"10.99.0.2"}},
		{[]netip.Addr{vtep[1]}, []string{"10.99.0.2"}, []string{"10.99.0.3"}},
	} {
		s := sides[0].s
		s.VXLAN = &netport.VXLAN{VNI: 100, Local: vtep[0], Peers: tc.peers}
		require.NoError(t, h1.Setup(ctx, s))
		fdb := n1.Run(t, "bridge", "fdb", "show", "dev", "vx100")
		for _, a := range tc.has {
			assert.Contains(t, fdb, "00:00:00:00:00:00 dst "+a, "peers %v", tc.peers)
		}
		for _, a := range tc.hasn {
			// Learned entries of the gone peer's MACs age out; it is no
			// longer flooded to.
			assert.NotContains(t, fdb, "00:00:00:00:00:00 dst "+a, "peers %v", tc.peers)
		}
		got, err := h1.List(ctx)
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, tc.peers, got[0].VXLAN.Peers, "the recorded spec has the new peers")
		assert.Contains(t, n1.Run(t, "ip", "link", "show", s.Name), "master vxbr100", "the port stays on the bridge")
	}
	assert.True(t, pings(t, sides[0].vm, "-I", "10.200.0.1", "10.200.0.2"), "back to the first peers, the VMs reach each other again")

	for _, sd := range sides {
		require.NoError(t, sd.h.Teardown(ctx, sd.s.Name))
		ls := sd.node.Run(t, "ip", "link")
		assert.NotContains(t, ls, "vx100", "the tunnel device went with the last port")
		assert.NotContains(t, ls, "vxbr100", "and the bridge")
	}
	assert.False(t, pings(t, sides[0].vm, "10.200.0.2"))
}

// TestModeNotImplemented: a Host without a router or an FDB cannot do
// routed or VXLAN ports, says so, and records nothing.
func TestModeNotImplemented(t *testing.T) {
	ctx := t.Context()
	h, err := netport.NewHost(netport.HostConfig{StateDir: t.TempDir(), Links: hostnet.NewFake(),
		Firewall: firewall.NewFake(), Shaper: shaping.NewFake()})
	require.NoError(t, err)
	r := netport.ForVM("vm-1", "", nil)
	r.Mode, r.GatewayV4 = netport.ModeRouted, netip.MustParseAddr("192.0.2.1")
	err = h.Setup(ctx, r)
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	assert.ErrorContains(t, err, "routed")
	v := netport.ForVM("vm-2", "", nil)
	v.Mode, v.VXLAN = netport.ModeVXLAN, &netport.VXLAN{VNI: 7, Local: netip.MustParseAddr("198.18.0.1")}
	err = h.Setup(ctx, v)
	assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
	assert.ErrorContains(t, err, "vxlan")
	got, err := h.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)

	f := netport.NewFake()
	f.Disable(netport.ModeRouted)
	assert.ErrorIs(t, f.Setup(ctx, r), virtplane.ErrNotImplemented)
	assert.NoError(t, f.Setup(ctx, v))
}

// TestHostModesOverFakes: what the Host asks of the router and the FDB:
// only routed ports whose device exists are routed, with their gateways;
// VXLAN ports make one network per VNI whose device floods to the peers.
func TestHostModesOverFakes(t *testing.T) {
	ctx := t.Context()
	links := hostnet.NewFake()
	routes, fdb := newFakeRoutes(links), newFakeFDB(links)
	h, err := netport.NewHost(netport.HostConfig{StateDir: t.TempDir(), Links: links,
		Firewall: firewall.NewFake(), Shaper: shaping.NewFake(netport.TapName("vm-a")), Routes: routes.factory, FDB: fdb})
	require.NoError(t, err)
	gw := routing.Config{GatewayV4: netip.MustParseAddr("192.0.2.1")}
	a := netport.ForVM("vm-a", "", []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")})
	a.Mode, a.GatewayV4 = netport.ModeRouted, gw.GatewayV4
	b := a
	b.Name, b.VMID, b.Addresses = netport.TapName("vm-b"), "vm-b", []netip.Addr{netip.MustParseAddr("192.0.2.11")}
	require.NoError(t, h.Setup(ctx, a))
	require.NoError(t, h.Setup(ctx, b))
	assert.Empty(t, routes.Applied(gw), "no device, no route yet")
	links.AddLink(a.Name)
	require.NoError(t, h.Setup(ctx, a))
	assert.Equal(t, []routing.VM{{Port: a.Name, IPv4: a.Addresses[:1], IPv6: a.Addresses[1:]}}, routes.Applied(gw))
	require.NoError(t, h.Teardown(ctx, a.Name))
	assert.Empty(t, routes.Applied(gw), "the last routed device's routes go")

	v := netport.ForVM("vm-v", "", nil)
	v.Mode = netport.ModeVXLAN
	v.VXLAN = &netport.VXLAN{VNI: 42, Local: netip.MustParseAddr("198.18.0.1"), Peers: []netip.Addr{netip.MustParseAddr("198.18.0.2")}}
	require.NoError(t, h.Setup(ctx, v))
	w := v
	w.Name, w.VMID = netport.TapName("vm-w"), "vm-w"
	w.VXLAN = &netport.VXLAN{VNI: 42, Local: v.VXLAN.Local, Peers: []netip.Addr{netip.MustParseAddr("198.18.0.3")}}
	require.NoError(t, h.Setup(ctx, w))
	assert.Equal(t, []string{"198.18.0.2", "198.18.0.3"}, fdb.Flood("vx42"), "the union of the ports' peers")
	last, ok := links.Last()
	require.True(t, ok)
	require.Len(t, last.VXLANs, 1)
	assert.Equal(t, 42, last.VXLANs[0].VNI)
	assert.Equal(t, "vxbr42", last.VXLANs[0].Master)
	assert.True(t, last.VXLANs[0].Learning, "full mesh learns remote MACs")
	require.NoError(t, h.Teardown(ctx, v.Name))
	assert.Equal(t, []string{"198.18.0.3"}, fdb.Flood("vx42"), "a peer only the gone port named goes")
	require.NoError(t, h.Teardown(ctx, w.Name))
	ls, err := links.Links(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1, "no bridge or tunnel device left: %v", ls)
	assert.Equal(t, a.Name, ls[0].Name, "only the tap the test made")
}
