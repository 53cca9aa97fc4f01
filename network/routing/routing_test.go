package routing_test

import (
	"net/netip"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/routing"
	"github.com/virtplane/virtplane/network/routing/routingtest"
)

const vmMAC = "02:cc:00:00:00:10"

// TestRoutedMode: the datacenter routes the VM's addresses to the host's
// main address; the host routes them to the VM's port and answers ARP/NDP
// for the gateway. The VM reaches the datacenter gateway over IPv4 and
// IPv6, and its MAC never appears in the gateway's neighbour table.
func TestRoutedMode(t *testing.T) {
	dc, host, vm := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, dc, "eth0", "203.0.113.1/24", host, "eth0", "203.0.113.2/24")
	dc.Run(t, "ip", "addr", "add", "fd00:113::1/64", "dev", "eth0", "nodad")
	host.Run(t, "ip", "addr", "add", "fd00:113::2/64", "dev", "eth0", "nodad")
	host.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	dc.Run(t, "ip", "route", "add", "198.51.100.10/32", "via", "203.0.113.2")
	dc.Run(t, "ip", "-6", "route", "add", "fd00:51::10/128", "via", "fd00:113::2")

	testenv.Veth(t, vm, "eth0", "198.51.100.10/32", host, "vm1p", "")
	vm.Run(t, "ip", "link", "set", "eth0", "address", vmMAC)
	vm.Run(t, "ip", "addr", "add", "fd00:51::10/128", "dev", "eth0", "nodad")
	vm.Run(t, "ip", "route", "add", "172.31.1.1", "dev", "eth0")
	vm.Run(t, "ip", "route", "add", "default", "via", "172.31.1.1")
	vm.Run(t, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")

	r, err := routing.New(nettest.Handle(t, host.Name), routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1"), GatewayV6: netip.MustParseAddr("fe80::1")})
	require.NoError(t, err)
	vms := []routing.VM{{Port: "vm1p", IPv4: []netip.Addr{netip.MustParseAddr("198.51.100.10")}, IPv6: []netip.Addr{netip.MustParseAddr("fd00:51::10")}}}
	changes, err := r.Apply(t.Context(), vms)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"add gateway 172.31.1.1/32 dev vm1p", "add gateway fe80::1/64 dev vm1p",
		"add route 198.51.100.10/32 dev vm1p", "add route fd00:51::10/128 dev vm1p",
	}, changes)
	again, err := r.Apply(t.Context(), vms)
	require.NoError(t, err)
	assert.Empty(t, again, "second Apply changes nothing")

	assert.Contains(t, vm.Run(t, "ping", "-c", "2", "-i", "0.2", "-W", "2", "203.0.113.1"), "2 received")
	assert.Contains(t, vm.Run(t, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd00:113::1"), "2 received")
	hostMAC := regexp.MustCompile(`link/ether (\S+)`).FindStringSubmatch(host.Run(t, "ip", "link", "show", "eth0"))[1]
	neigh := dc.Run(t, "ip", "neigh", "show")
	assert.NotContains(t, neigh, vmMAC, "the VM's MAC never leaves the host")
	assert.Contains(t, neigh, hostMAC)
	assert.Contains(t, vm.Run(t, "ip", "neigh", "show", "172.31.1.1"), regexp.MustCompile(`link/ether (\S+)`).FindStringSubmatch(host.Run(t, "ip", "link", "show", "vm1p"))[1], "the host answered ARP for the gateway")

	// The VM goes: its routes and the port's gateway addresses go too.
	changes, err = r.Apply(t.Context(), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"delete route 198.51.100.10/32 dev vm1p", "delete route fd00:51::10/128 dev vm1p",
		"delete gateway 172.31.1.1/32 dev vm1p", "delete gateway fe80::1/64 dev vm1p",
	}, changes)
	assert.NotContains(t, host.Run(t, "ip", "route", "show"), "198.51.100.10")
	_, err = vm.Command(t.Context(), "ping", "-c", "1", "-W", "1", "203.0.113.1").CombinedOutput()
	assert.Error(t, err)
}

func TestApplyRejects(t *testing.T) {
	r, err := routing.New(nettest.NewRecorder(), routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1")})
	require.NoError(t, err)
	_, err = r.Apply(t.Context(), []routing.VM{{Port: "a", IPv4: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, {Port: "b", IPv4: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}})
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	_, err = r.Apply(t.Context(), []routing.VM{{Port: "a", IPv4: []netip.Addr{netip.MustParseAddr("fd00::1")}}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = r.Apply(t.Context(), []routing.VM{{Port: "", IPv4: nil}})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = routing.New(nettest.NewRecorder(), routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1"), GatewayV6: netip.MustParseAddr("fd00::1")})
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}

// TestGoldenRequests records the netlink requests of routed mode.
func TestGoldenRequests(t *testing.T) {
	rec := nettest.NewRecorder("vm1p", "vm2p")
	r, err := routing.New(rec, routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1"), GatewayV6: netip.MustParseAddr("fe80::1")})
	require.NoError(t, err)
	vms := []routing.VM{
		{Port: "vm1p", IPv4: []netip.Addr{netip.MustParseAddr("198.51.100.10")}, IPv6: []netip.Addr{netip.MustParseAddr("fd00:51::10")}},
		{Port: "vm2p", IPv4: []netip.Addr{netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("198.51.100.12")}},
	}
	_, err = r.Apply(t.Context(), vms)
	require.NoError(t, err)
	nettest.Golden(t, "routing_apply", rec.Requests())
	_, err = r.Apply(t.Context(), vms)
	require.NoError(t, err)
	assert.Empty(t, rec.Requests())
	_, err = r.Apply(t.Context(), vms[1:])
	require.NoError(t, err)
	nettest.Golden(t, "routing_remove_vm1", rec.Requests())
}

var gateways = routing.Config{GatewayV4: netip.MustParseAddr("172.31.1.1"), GatewayV6: netip.MustParseAddr("fe80::1")}

func TestConformanceFake(t *testing.T) {
	routingtest.Run(t, func(t *testing.T) (routing.Applier, [2]string) {
		return routing.NewFake(gateways, "vm1p", "vm2p"), [2]string{"vm1p", "vm2p"}
	})
}

func TestConformanceNetlink(t *testing.T) {
	routingtest.Run(t, func(t *testing.T) (routing.Applier, [2]string) {
		ns := testenv.NewNetns(t)
		ns.Run(t, "ip", "link", "add", "vm1p", "type", "veth", "peer", "name", "vm2p")
		ns.Run(t, "ip", "link", "set", "vm1p", "up")
		ns.Run(t, "ip", "link", "set", "vm2p", "up")
		r, err := routing.New(nettest.Handle(t, ns.Name), gateways)
		require.NoError(t, err)
		return r, [2]string{"vm1p", "vm2p"}
	})
}
