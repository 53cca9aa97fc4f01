package firewall_test

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/firewall/firewalltest"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
)

func TestMain(m *testing.M) {
	nettest.RunTrafficIfHelper()
	os.Exit(m.Run())
}

func nftIn(t testing.TB, ns *testenv.Netns) *nftables.Conn {
	h, err := netns.GetFromName(ns.Name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseLasting() })
	return c
}

func TestConformanceFake(t *testing.T) {
	firewalltest.Run(t, func(t *testing.T) (firewall.Enforcer, [2]string) {
		return firewall.NewFake(), [2]string{"tap0", "tap1"}
	})
}

func TestConformanceNftables(t *testing.T) {
	firewalltest.Run(t, func(t *testing.T) (firewall.Enforcer, [2]string) {
		ns := testenv.NewNetns(t)
		ns.Run(t, "ip", "link", "add", "vm0p", "type", "veth", "peer", "name", "vm1p")
		f, err := firewall.New(nftIn(t, ns))
		require.NoError(t, err)
		return f, [2]string{"vm0p", "vm1p"}
	})
}

var (
	mac1 = net.HardwareAddr{0x02, 0xf0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{0x02, 0xf0, 0, 0, 0, 2}
)

// bridged builds a host with two VMs on one bridge and returns the host
// and the VMs (VM1 10.70.0.1 / fd00:70::1, VM2 10.70.0.2 / fd00:70::2).
func bridged(t *testing.T) (host, vm1, vm2 *testenv.Netns) {
	host, vm1, vm2 = testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, vm1, "eth0", "10.70.0.1/24", host, "vm1p", "")
	testenv.Veth(t, vm2, "eth0", "10.70.0.2/24", host, "vm2p", "")
	vm1.Run(t, "ip", "link", "set", "eth0", "address", mac1.String())
	vm2.Run(t, "ip", "link", "set", "eth0", "address", mac2.String())
	vm1.Run(t, "ip", "addr", "add", "fd00:70::1/64", "dev", "eth0", "nodad")
	vm2.Run(t, "ip", "addr", "add", "fd00:70::2/64", "dev", "eth0", "nodad")
	h, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, host.Name)})
	require.NoError(t, err)
	_, err = h.Apply(t.Context(), hostnet.Desired{
		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}},
		Ports:   []hostnet.Port{{Name: "vm1p", Master: "br0"}, {Name: "vm2p", Master: "br0"}},
	})
	require.NoError(t, err)
	return host, vm1, vm2
}

func pings(vm *testenv.Netns, t *testing.T, args ...string) bool {
	args = append([]string{"-c", "1", "-W", "1"}, args...)
	return vm.Command(t.Context(), "ping", args...).Run() == nil
}

// TestAntiSpoofing: a VM may only send from its own MAC, IPv4 and IPv6
// addresses; legitimate traffic passes, spoofed traffic is dropped.
func TestAntiSpoofing(t *testing.T) {
	host, vm1, _ := bridged(t)
	require.True(t, pings(vm1, t, "10.70.0.2"), "before the firewall")
	fw, err := firewall.New(nftIn(t, host))
	require.NoError(t, err)
	policy := firewall.Policy{Port: "vm1p", MAC: mac1, IPv4: []netip.Addr{netip.MustParseAddr("10.70.0.1")}, IPv6: []netip.Addr{netip.MustParseAddr("fd00:70::1")}}
	require.NoError(t, fw.Apply(t.Context(), policy))
	first := host.Run(t, "nft", "list", "ruleset")
	require.NoError(t, fw.Apply(t.Context(), policy))
	assert.Equal(t, first, host.Run(t, "nft", "list", "ruleset"), "applying twice gives the same rules")

	assert.True(t, pings(vm1, t, "10.70.0.2"), "legitimate IPv4 passes")
	assert.True(t, pings(vm1, t, "-6", "fd00:70::2"), "legitimate IPv6 passes")

	vm1.Run(t, "ip", "addr", "add", "10.70.0.99/24", "dev", "eth0")
	assert.False(t, pings(vm1, t, "-I", "10.70.0.99", "10.70.0.2"), "spoofed IPv4 source is dropped")
	vm1.Run(t, "ip", "addr", "add", "fd00:70::99/64", "dev", "eth0", "nodad")
	assert.False(t, pings(vm1, t, "-6", "-I", "fd00:70::99", "fd00:70::2"), "spoofed IPv6 source is dropped")
	assert.Contains(t, host.Run(t, "nft", "list", "table", "netdev", "vpt-vm1p"), "fd00:70::1")

	vm1.Run(t, "ip", "neigh", "flush", "all")
	vm1.Run(t, "ip", "link", "set", "eth0", "address", "02:f0:00:00:00:66")
	assert.False(t, pings(vm1, t, "10.70.0.2"), "spoofed MAC is dropped")
	vm1.Run(t, "ip", "link", "set", "eth0", "address", mac1.String())
	assert.True(t, pings(vm1, t, "10.70.0.2"), "back to its own MAC")

	require.NoError(t, fw.Remove(t.Context(), "vm1p"))
	assert.True(t, pings(vm1, t, "-I", "10.70.0.99", "10.70.0.2"), "without the policy the spoofed source passes")
}

// TestBlockedPorts: outbound TCP 25 and inbound 8000-8100 are dropped,
// other ports pass, in both directions.
func TestBlockedPorts(t *testing.T) {
	host, vm1, vm2 := bridged(t)
	fw, err := firewall.New(nftIn(t, host))
	require.NoError(t, err)
	require.NoError(t, fw.Apply(t.Context(), firewall.Policy{
		Port: "vm1p", MAC: mac1, IPv4: []netip.Addr{netip.MustParseAddr("10.70.0.1")},
		BlockOut: []firewall.PortRange{{Protocol: "tcp", First: 25}},
		BlockIn:  []firewall.PortRange{{Protocol: "tcp", First: 8000, Last: 8100}},
	}))
	for _, addr := range []string{"10.70.0.2:25", "10.70.0.2:9000"} {
		nettest.Serve(t, vm2.Name, addr)
	}
	for _, addr := range []string{"10.70.0.1:8050", "10.70.0.1:9000"} {
		nettest.Serve(t, vm1.Name, addr)
	}
	assert.Equal(t, 0, nettest.Dial(t, vm1.Name, "10.70.0.2:25", 1), "outbound 25 blocked")
	assert.Equal(t, 1, nettest.Dial(t, vm1.Name, "10.70.0.2:9000", 1), "outbound 9000 passes")
	assert.Equal(t, 0, nettest.Dial(t, vm2.Name, "10.70.0.1:8050", 1), "inbound 8050 blocked")
	assert.Equal(t, 1, nettest.Dial(t, vm2.Name, "10.70.0.1:9000", 1), "inbound 9000 passes")
}

// TestConnectionLimit: on a routed port, a VM may hold at most
// MaxConnections connections; the rest are dropped until some close.
func TestConnectionLimit(t *testing.T) {
	host, vm, srv := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, vm, "eth0", "10.71.0.2/24", host, "vm1p", "10.71.0.1/24")
	testenv.Veth(t, srv, "eth0", "10.72.0.2/24", host, "uplink", "10.72.0.1/24")
	vm.Run(t, "ip", "route", "add", "default", "via", "10.71.0.1")
	srv.Run(t, "ip", "route", "add", "default", "via", "10.72.0.1")
	host.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	vm.Run(t, "ip", "link", "set", "eth0", "address", mac1.String())

	fw, err := firewall.New(nftIn(t, host))
	require.NoError(t, err)
	require.NoError(t, fw.Apply(t.Context(), firewall.Policy{Port: "vm1p", MAC: mac1, IPv4: []netip.Addr{netip.MustParseAddr("10.71.0.2")}, MaxConnections: 3}))
	nettest.Serve(t, srv.Name, "10.72.0.2:9000")
	connected := nettest.DialHold(t, vm.Name, "10.72.0.2:9000", 5, 5*time.Second)
	assert.Equal(t, 3, connected())
}

// FuzzPolicyValidate: arbitrary policies never panic and every rejection is
// an invalid-argument error; accepted ones pass the Fake.
func FuzzPolicyValidate(f *testing.F) {
	f.Add("vnet0", []byte{2, 0, 0, 0, 0, 1}, []byte{10, 0, 0, 1}, "tcp", uint16(25), uint16(0), -1)
	f.Add("", []byte{}, []byte{}, "sctp", uint16(0), uint16(1), 0)
	f.Fuzz(func(t *testing.T, port string, mac, ip []byte, proto string, first, last uint16, limit int) {
		a, _ := netip.AddrFromSlice(ip)
		p := firewall.Policy{Port: port, MAC: mac, IPv4: []netip.Addr{a}, BlockOut: []firewall.PortRange{{Protocol: proto, First: first, Last: last}}, MaxConnections: limit}
		if err := p.Validate(); err != nil {
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			return
		}
		assert.NoError(t, firewall.NewFake().Apply(t.Context(), p))
	})
}

// TestPolicyBeforePort: a policy applied before the VM's port exists (the
// hypervisor creates the tap when the VM starts) takes effect when it appears.
func TestPolicyBeforePort(t *testing.T) {
	host, vm1, vm2 := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	fw, err := firewall.New(nftIn(t, host))
	require.NoError(t, err)
	require.NoError(t, fw.Apply(t.Context(), firewall.Policy{Port: "vm1p", MAC: mac1, IPv4: []netip.Addr{netip.MustParseAddr("10.70.0.1")}}))

	testenv.Veth(t, vm1, "eth0", "10.70.0.1/24", host, "vm1p", "")
	testenv.Veth(t, vm2, "eth0", "10.70.0.2/24", host, "vm2p", "")
	vm1.Run(t, "ip", "link", "set", "eth0", "address", mac1.String())
	h, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, host.Name)})
	require.NoError(t, err)
	_, err = h.Apply(t.Context(), hostnet.Desired{
		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}},
		Ports:   []hostnet.Port{{Name: "vm1p", Master: "br0"}, {Name: "vm2p", Master: "br0"}},
	})
	require.NoError(t, err)
	assert.True(t, pings(vm1, t, "10.70.0.2"))
	vm1.Run(t, "ip", "addr", "add", "10.70.0.99/24", "dev", "eth0")
	assert.False(t, pings(vm1, t, "-I", "10.70.0.99", "10.70.0.2"), "spoofed source dropped on the port that appeared later")
}
