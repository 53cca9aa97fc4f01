package vxlan_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	"github.com/virtplane/virtplane/network/vxlan"
)

// underlay joins n hosts through a switch namespace; host i has 10.60.0.(i+1)/24 on eth0.
func underlay(t *testing.T, n int) ([]*testenv.Netns, []netip.Addr) {
	sw := testenv.NewNetns(t)
	noIPv6(t, sw)
	sw.Run(t, "ip", "link", "add", "sw", "type", "bridge")
	sw.Run(t, "ip", "link", "set", "sw", "up")
	var hosts []*testenv.Netns
	var addrs []netip.Addr
	for i := range n {
		h := testenv.NewNetns(t)
		noIPv6(t, h)
		a := netip.AddrFrom4([4]byte{10, 60, 0, byte(i + 1)})
		testenv.Veth(t, sw, fmt.Sprintf("p%d", i), "", h, "eth0", a.String()+"/24")
		sw.Run(t, "ip", "link", "set", fmt.Sprintf("p%d", i), "master", "sw")
		hosts, addrs = append(hosts, h), append(addrs, a)
	}
	return hosts, addrs
}

// vm makes a VM namespace behind port on host, with addr on its eth0 and IPv6
// off (so that no router solicitation counts as traffic).
func vm(t *testing.T, host *testenv.Netns, port, addr, mac string) *testenv.Netns {
	v := testenv.NewNetns(t)
	noIPv6(t, v)
	testenv.Veth(t, v, "eth0", addr, host, port, "")
	v.Run(t, "ip", "link", "set", "eth0", "address", mac)
	// Links moved in from the root namespace keep its IPv6 setting.
	v.Run(t, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
	host.Run(t, "sysctl", "-qw", "net.ipv6.conf."+port+".disable_ipv6=1")
	v.Run(t, "nft", "add table netdev watch; add chain netdev watch in { type filter hook ingress device eth0 priority 0; }; "+
		"add rule netdev watch in ether saddr { "+strings.Join(userA, ", ")+" } counter; "+
		"add rule netdev watch in ether saddr { "+strings.Join(userB, ", ")+" } counter")
	return v
}

// noIPv6 turns IPv6 off in a namespace: its link-local chatter (router
// solicitations, MLD reports) would count as received packets.
func noIPv6(t *testing.T, ns *testenv.Netns) {
	ns.Run(t, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1")
}

// The VMs' MAC addresses, per user.
var (
	userA = []string{"02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:aa:00:00:00:03"}
	userB = []string{"02:bb:00:00:00:01", "02:bb:00:00:00:02"}
)

// framesFrom counts the frames that arrived on the VM's eth0 from any VM of
// user "a" or "b" since the VM was made.
func framesFrom(t *testing.T, ns *testenv.Netns, user string) int {
	out := ns.Run(t, "nft", "list", "chain", "netdev", "watch", "in")
	m := regexp.MustCompile(`counter packets (\d+)`).FindAllStringSubmatch(out, -1)
	require.Len(t, m, 2, out)
	i := map[string]int{"a": 0, "b": 1}[user]
	n, err := strconv.Atoi(m[i][1])
	require.NoError(t, err)
	return n
}

// TestFullMeshTwoTenants: three hosts, two users whose networks have the
// same name and the same addresses on VNIs 100 and 200. VMs reach each other
// across hosts inside their network, and never see the other user's traffic.
func TestFullMeshTwoTenants(t *testing.T) {
	hosts, addrs := underlay(t, 3)
	// User A: VMs on hosts 0, 1, 2. User B: VMs on hosts 0 and 1, same addresses.
	a := []*testenv.Netns{
		vm(t, hosts[0], "a0", "192.168.1.1/24", "02:aa:00:00:00:01"),
		vm(t, hosts[1], "a1", "192.168.1.2/24", "02:aa:00:00:00:02"),
		vm(t, hosts[2], "a2", "192.168.1.3/24", "02:aa:00:00:00:03"),
	}
	b := []*testenv.Netns{
		vm(t, hosts[0], "b0", "192.168.1.1/24", "02:bb:00:00:00:01"),
		vm(t, hosts[1], "b1", "192.168.1.2/24", "02:bb:00:00:00:02"),
	}
	for i, h := range hosts {
		nets := []vxlan.Network{{Name: "default", VNI: 100, Ports: []string{fmt.Sprintf("a%d", i)}}}
		if i < 2 {
			nets = append(nets, vxlan.Network{Name: "default", VNI: 200, Ports: []string{fmt.Sprintf("b%d", i)}})
		}
		d, err := vxlan.Desired(vxlan.Underlay{Local: addrs[i], Device: "eth0"}, nets, true)
		require.NoError(t, err)
		nl := nettest.Handle(t, h.Name)
		host, err := hostnet.New(hostnet.Config{Netlink: nl})
		require.NoError(t, err)
		_, err = host.Apply(t.Context(), d)
		require.NoError(t, err)
		again, err := host.Apply(t.Context(), d)
		require.NoError(t, err)
		assert.Empty(t, again)
		for _, n := range nets {
			added, removed, err := vxlan.SyncFDB(t.Context(), nl, n.Device(), vxlan.FullMesh(addrs[i], addrs))
			require.NoError(t, err)
			assert.Equal(t, 2, added)
			assert.Zero(t, removed)
			added, removed, err = vxlan.SyncFDB(t.Context(), nl, n.Device(), vxlan.FullMesh(addrs[i], addrs))
			require.NoError(t, err)
			assert.Zero(t, added+removed, "second sync changes nothing")
		}
	}

	bRx, bOwn := framesFrom(t, b[1], "a"), framesFrom(t, b[1], "b")
	out := a[0].Run(t, "ping", "-c", "20", "-i", "0.05", "-W", "2", "192.168.1.2")
	assert.Contains(t, out, "20 received")
	assert.Contains(t, a[0].Run(t, "ping", "-c", "2", "-W", "2", "192.168.1.3"), "2 received", "third host over the mesh")
	assert.Contains(t, a[0].Run(t, "ip", "neigh", "show", "192.168.1.2"), "02:aa:00:00:00:02", "A's 192.168.1.2 answered, not B's")
	assert.Zero(t, bRx)
	assert.Zero(t, framesFrom(t, b[1], "a"), "B's VM with the same address saw none of A's packets")

	// B's own traffic stays in B.
	aRx := framesFrom(t, a[1], "b")
	assert.Contains(t, b[0].Run(t, "ping", "-c", "5", "-i", "0.1", "-W", "2", "192.168.1.2"), "5 received")
	assert.Contains(t, b[0].Run(t, "ip", "neigh", "show", "192.168.1.2"), "02:bb:00:00:00:02")
	assert.Greater(t, framesFrom(t, b[1], "b"), bOwn+4, "the counter sees B's own frames")
	assert.Zero(t, aRx)
	assert.Zero(t, framesFrom(t, a[1], "b"), "A's VM saw none of B's packets")
	// B has no network on host 2: A's VM there is unreachable from B.
	_, err := b[0].Command(t.Context(), "ping", "-c", "1", "-W", "1", "192.168.1.3").CombinedOutput()
	assert.Error(t, err)

	// Removing a peer from the mesh deletes its entry.
	nl := nettest.Handle(t, hosts[0].Name)
	added, removed, err := vxlan.SyncFDB(t.Context(), nl, "vx100", vxlan.FullMesh(addrs[0], addrs[:2]))
	require.NoError(t, err)
	assert.Equal(t, 0, added)
	assert.Equal(t, 1, removed)
}

func TestDesiredRejectsSharedVNI(t *testing.T) {
	_, err := vxlan.Desired(vxlan.Underlay{Local: netip.MustParseAddr("10.0.0.1")},
		[]vxlan.Network{{Name: "a", VNI: 5}, {Name: "b", VNI: 5}}, true)
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	_, err = vxlan.Desired(vxlan.Underlay{Local: netip.MustParseAddr("10.0.0.1")}, []vxlan.Network{{Name: "a", VNI: 0}}, true)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	_, err = vxlan.Desired(vxlan.Underlay{}, nil, true)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}
