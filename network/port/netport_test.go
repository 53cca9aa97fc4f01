package port_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/nettest"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/port/porttest"
	"github.com/virtplane/virtplane/network/shaping"
)

func TestConformanceFake(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		return porttest.Harness{Ports: netport.NewFake()}
	})
}

// The Host composed over the network packages' fakes: the bridge logic and
// the state directory without a kernel.
func TestConformanceHostOverFakes(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		links := hostnet.NewFake()
		h, err := netport.NewHost(netport.HostConfig{StateDir: t.TempDir(), Links: links,
			Firewall: firewall.NewFake(), Shaper: shaping.NewFake(),
			Routes: newFakeRoutes(links).factory, FDB: newFakeFDB(links)})
		require.NoError(t, err)
		return porttest.Harness{Ports: h}
	})
}

// kernelHost is a Host over a fresh network namespace.
func kernelHost(t testing.TB) (*netport.Host, *testenv.Netns, string) {
	ns := testenv.NewNetns(t)
	h, dir := hostIn(t, ns)
	return h, ns, dir
}

// hostIn is a Host over an existing network namespace.
func hostIn(t testing.TB, ns *testenv.Netns) (*netport.Host, string) {
	fd, err := netns.GetFromName(ns.Name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fd.Close() })
	nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = nft.CloseLasting() })
	dir := t.TempDir()
	h, err := netport.NewKernelHost(dir, nettest.Handle(t, ns.Name), nft)
	require.NoError(t, err)
	return h, dir
}

// plug makes a port's device the way a hypervisor's tap appears: a link
// (one end of a veth pair here; the other end stays unused) that is up.
func plug(t testing.TB, ns *testenv.Netns, name string) {
	ns.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", "vpp"+name[len(name)-8:])
	ns.Run(t, "ip", "link", "set", name, "up")
}

func TestConformanceKernel(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		h, ns, _ := kernelHost(t)
		return porttest.Harness{Ports: h,
			Plug:   func(t *testing.T, name string) { plug(t, ns, name) },
			Unplug: func(t *testing.T, name string) { ns.Run(t, "ip", "link", "del", name) },
		}
	})
}

func TestNamesAreDerivedFromTheVM(t *testing.T) {
	for _, id := range []string{"18a6e1c2b3d4e5f6a1b2c3d4", "x", strings.Repeat("long", 40)} {
		name, mac := netport.TapName(id), netport.MAC(id)
		assert.True(t, hostnet.ValidLinkName(name), name)
		assert.Len(t, name, 15)
		assert.True(t, strings.HasPrefix(name, "vpt"))
		assert.Equal(t, name, netport.TapName(id), "deterministic")
		assert.Equal(t, mac, netport.MAC(id), "deterministic")
		assert.True(t, strings.HasPrefix(mac, "02:"), "locally administered unicast: %s", mac)
		assert.NoError(t, netport.ForVM(id, "vptbr0", nil).Validate())
	}
	assert.NotEqual(t, netport.TapName("a"), netport.TapName("b"))
	assert.NotEqual(t, netport.MAC("a"), netport.MAC("b"))
	// IDs minted in the same nanosecond range differ only at the end.
	names, macs := map[string]bool{}, map[string]bool{}
	for i := range 10_000 {
		id := fmt.Sprintf("%016x%08x", 0x18a6e1c2b3d4e5f6+i/100, i)
		names[netport.TapName(id)], macs[netport.MAC(id)] = true, true
	}
	assert.Len(t, names, 10_000, "no tap name collision among 10,000 IDs")
	assert.Len(t, macs, 10_000, "no MAC collision among 10,000 IDs")
}

// TestFakeFaults: injected faults fail the call and change nothing; the
// calls are recorded.
func TestFakeFaults(t *testing.T) {
	ctx := t.Context()
	f := netport.NewFake()
	s := netport.ForVM("vm-1", "vptbr0", []netip.Addr{netip.MustParseAddr("192.0.2.5")})
	f.FailNext("Setup", errors.New("boom"))
	err := f.Setup(ctx, s)
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
	_, ok := f.Port(s.Name)
	assert.False(t, ok)
	require.NoError(t, f.Setup(ctx, s))
	f.FailNext("Teardown", virtplane.Errorf(virtplane.ErrTimeout, "slow"))
	assert.ErrorIs(t, f.Teardown(ctx, s.Name), virtplane.ErrTimeout)
	_, ok = f.Port(s.Name)
	assert.True(t, ok, "a failed teardown keeps the port")
	f.FailNext("List", errors.New("boom"))
	_, err = f.List(ctx)
	assert.Error(t, err)
	assert.Equal(t, []netport.Call{{"Setup", s.Name}, {"Setup", s.Name}, {"Teardown", s.Name}, {"List", ""}}, f.Calls())
}

// TestHostRollsBackAFailedSetup: when the firewall refuses a new port, the
// bridge made for it and its record are gone again.
func TestHostRollsBackAFailedSetup(t *testing.T) {
	ctx := t.Context()
	links, fw := hostnet.NewFake(), firewall.NewFake()
	h, err := netport.NewHost(netport.HostConfig{StateDir: t.TempDir(), Links: links, Firewall: fw, Shaper: shaping.NewFake()})
	require.NoError(t, err)
	s := netport.ForVM("vm-1", "vptbr0", []netip.Addr{netip.MustParseAddr("192.0.2.5")})
	fw.FailNext(errors.New("nft refused"))
	assert.ErrorIs(t, h.Setup(ctx, s), virtplane.ErrUnavailable)
	got, err := h.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)
	ls, err := links.Links(ctx)
	require.NoError(t, err)
	assert.Empty(t, ls, "the bridge made for the port is deleted again")

	// An update that fails keeps the old spec in force.
	require.NoError(t, h.Setup(ctx, s))
	moved := s
	moved.Addresses = []netip.Addr{netip.MustParseAddr("192.0.2.6")}
	fw.FailNext(errors.New("nft refused"))
	assert.Error(t, h.Setup(ctx, moved))
	got, err = h.List(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.True(t, s.Equal(got[0]))
	p, ok := fw.Policy(s.Name)
	require.True(t, ok)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.5")}, p.IPv4)
}

// TestKernelLeavesForeignBridgesAlone: a bridge the Host did not make (an
// operator's, with an uplink) is used but never changed or deleted, and a
// bridge name taken by another kind of link is a conflict.
func TestKernelLeavesForeignBridgesAlone(t *testing.T) {
	ctx := t.Context()
	h, ns, _ := kernelHost(t)
	ns.Run(t, "ip", "link", "add", "br-uplink", "type", "bridge")
	ns.Run(t, "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
	ns.Run(t, "ip", "link", "set", "uplink0", "master", "br-uplink")
	s := netport.ForVM("vm-1", "br-uplink", nil)
	require.NoError(t, h.Setup(ctx, s))
	plug(t, ns, s.Name)
	ns.Run(t, "ip", "link", "set", s.Name, "master", "br-uplink") // the hypervisor attaches it
	require.NoError(t, h.Setup(ctx, s))
	require.NoError(t, h.Teardown(ctx, s.Name))
	after := ns.Run(t, "ip", "-d", "link", "show", "br-uplink")
	assert.Contains(t, after, "bridge forward_delay", "still there")
	assert.NotContains(t, after, "alias", "not taken over")
	assert.Contains(t, after, "state DOWN", "not even brought up")
	assert.Contains(t, ns.Run(t, "ip", "link", "show", "uplink0"), "master br-uplink")

	assert.ErrorIs(t, h.Setup(ctx, netport.ForVM("vm-2", "uplink0", nil)), virtplane.ErrConflict)
}

// TestKernelPort: a port set up in a network namespace: before the device
// exists the bridge (owned) and the nftables table with the VM's MAC and
// addresses are there; once it exists it is on the bridge and shaped (HTB
// on the port, an IFB with TBF for what the VM sends); teardown leaves
// nothing: no table, no qdisc, no IFB, no bridge, no state file.
func TestKernelPort(t *testing.T) {
	ctx := t.Context()
	h, ns, dir := kernelHost(t)
	s := netport.ForVM("18a6e1c2b3d4e5f6a1b2c3d4", "vptbr-test", []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")})
	s.InKbit, s.OutKbit = 20_000, 10_000
	require.NoError(t, h.Setup(ctx, s))

	br := ns.Run(t, "ip", "-d", "link", "show", "vptbr-test")
	assert.Contains(t, br, "bridge")
	assert.Contains(t, br, "alias "+netport.OwnerTagPrefix)
	table := ns.Run(t, "nft", "list", "table", "netdev", "vpt-"+s.Name)
	// nft prints the MAC as a number.
	macHex := "0x" + strings.TrimLeft(strings.ReplaceAll(s.MAC, ":", ""), "0")
	for _, want := range []string{macHex, "192.0.2.10", "2001:db8::10", `device "` + s.Name + `"`} {
		assert.Contains(t, table, want)
	}

	plug(t, ns, s.Name)
	require.NoError(t, h.Setup(ctx, s))
	assert.Contains(t, ns.Run(t, "ip", "link", "show", s.Name), "master vptbr-test")
	assert.Contains(t, ns.Run(t, "tc", "qdisc", "show", "dev", s.Name), "qdisc htb 1: root")
	assert.Contains(t, ns.Run(t, "tc", "class", "show", "dev", s.Name), "rate 20Mbit")
	assert.Contains(t, ns.Run(t, "tc", "qdisc", "show", "dev", shaping.IFBName(s.Name)), "rate 10Mbit")
	links := ns.Run(t, "ip", "-br", "link")
	require.NoError(t, h.Setup(ctx, s))
	assert.Equal(t, links, ns.Run(t, "ip", "-br", "link"), "a second setup changes nothing")

	// A second port on the bridge keeps it when the first goes.
	other := netport.ForVM("other", "vptbr-test", []netip.Addr{netip.MustParseAddr("192.0.2.11")})
	require.NoError(t, h.Setup(ctx, other))
	require.NoError(t, h.Teardown(ctx, s.Name))
	assert.NotContains(t, ns.Run(t, "ip", "link", "show", s.Name), "master", "released from the bridge")
	assert.NotContains(t, ns.Run(t, "tc", "qdisc", "show", "dev", s.Name), "htb")
	assert.NotContains(t, ns.Run(t, "ip", "link"), shaping.IFBName(s.Name))
	assert.NotContains(t, ns.Run(t, "nft", "list", "tables"), s.Name)
	assert.Contains(t, ns.Run(t, "ip", "link"), "vptbr-test")

	require.NoError(t, h.Teardown(ctx, other.Name))
	assert.NotContains(t, ns.Run(t, "ip", "link"), "vptbr-test", "the last port took the bridge with it")
	assert.Empty(t, strings.TrimSpace(ns.Run(t, "nft", "list", "tables")))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)
}

// TestKernelHostsShareANamespace: two Hosts on one machine (two daemons)
// never delete each other's bridges, even while one is empty between a
// port's setup and its VM's start.
func TestKernelHostsShareANamespace(t *testing.T) {
	ctx := t.Context()
	a, ns, _ := kernelHost(t)
	fd, err := netns.GetFromName(ns.Name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fd.Close() })
	nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = nft.CloseLasting() })
	b, err := netport.NewKernelHost(t.TempDir(), nettest.Handle(t, ns.Name), nft)
	require.NoError(t, err)

	pa := netport.ForVM("vm-a", "vptbr-a", nil)
	require.NoError(t, a.Setup(ctx, pa)) // vptbr-a is empty until the VM starts
	pb := netport.ForVM("vm-b", "vptbr-b", nil)
	require.NoError(t, b.Setup(ctx, pb))
	require.NoError(t, b.Teardown(ctx, pb.Name))
	links := ns.Run(t, "ip", "link")
	assert.Contains(t, links, "vptbr-a", "b left a's bridge alone")
	assert.NotContains(t, links, "vptbr-b")
	require.NoError(t, a.Teardown(ctx, pa.Name))
	assert.NotContains(t, ns.Run(t, "ip", "link"), "vptbr-a")
}

// TestKernelPortMoves: a port whose spec names another bridge moves there;
// the bridge it left, now empty, goes.
func TestKernelPortMoves(t *testing.T) {
	ctx := t.Context()
	h, ns, _ := kernelHost(t)
	s := netport.ForVM("vm-1", "vptbr-old", nil)
	require.NoError(t, h.Setup(ctx, s))
	plug(t, ns, s.Name)
	require.NoError(t, h.Setup(ctx, s))
	s.Bridge = "vptbr-new"
	require.NoError(t, h.Setup(ctx, s))
	assert.Contains(t, ns.Run(t, "ip", "link", "show", s.Name), "master vptbr-new")
	assert.NotContains(t, ns.Run(t, "ip", "link"), "vptbr-old")
}

// TestKernelPortAfterTheTapWent: the hypervisor deletes its tap when the VM
// stops; the IFB shaping made for it is removed by the next Setup (so a
// new tap is shaped again from scratch) and by Teardown.
func TestKernelPortAfterTheTapWent(t *testing.T) {
	ctx := t.Context()
	h, ns, _ := kernelHost(t)
	s := netport.ForVM("vm-1", "vptbr-test", []netip.Addr{netip.MustParseAddr("192.0.2.10")})
	s.OutKbit = 10_000
	plug(t, ns, s.Name)
	require.NoError(t, h.Setup(ctx, s))
	ifb := shaping.IFBName(s.Name)
	assert.Contains(t, ns.Run(t, "ip", "link"), ifb)
	ns.Run(t, "ip", "link", "del", s.Name)
	require.NoError(t, h.Setup(ctx, s))
	assert.NotContains(t, ns.Run(t, "ip", "link"), ifb)
	plug(t, ns, s.Name)
	require.NoError(t, h.Setup(ctx, s))
	assert.Contains(t, ns.Run(t, "tc", "filter", "show", "dev", s.Name, "ingress"), "mirred", "what the VM sends is redirected again")
	ns.Run(t, "ip", "link", "del", s.Name)
	require.NoError(t, h.Teardown(ctx, s.Name))
	assert.NotContains(t, ns.Run(t, "ip", "link"), ifb)
	assert.NotContains(t, ns.Run(t, "ip", "link"), "vptbr-test")
}

// TestKernelAntiSpoofing: two VMs (namespaces) behind ports of one bridge:
// the VM reaches its neighbour from its own address and MAC, and not from
// a spoofed address.
func TestKernelAntiSpoofing(t *testing.T) {
	ctx := t.Context()
	h, host, _ := kernelHost(t)
	vm1, vm2 := testenv.NewNetns(t), testenv.NewNetns(t)
	a := netport.ForVM("vm-a", "vptbr-test", []netip.Addr{netip.MustParseAddr("10.71.0.1")})
	b := netport.ForVM("vm-b", "vptbr-test", []netip.Addr{netip.MustParseAddr("10.71.0.2")})
	for _, p := range []struct {
		vm   *testenv.Netns
		s    netport.Spec
		addr string
	}{{vm1, a, "10.71.0.1/24"}, {vm2, b, "10.71.0.2/24"}} {
		require.NoError(t, h.Setup(ctx, p.s), "before the device exists")
		testenv.Veth(t, p.vm, "eth0", p.addr, host, p.s.Name, "")
		p.vm.Run(t, "ip", "link", "set", "eth0", "address", p.s.MAC)
		require.NoError(t, h.Setup(ctx, p.s), "the device appeared")
	}
	ping := func(args ...string) bool {
		return vm1.Command(ctx, "ping", append([]string{"-c", "1", "-W", "1"}, args...)...).Run() == nil
	}
	assert.True(t, ping("10.71.0.2"), "the VM reaches its neighbour over the bridge")
	vm1.Run(t, "ip", "addr", "add", "10.71.0.99/24", "dev", "eth0")
	assert.False(t, ping("-I", "10.71.0.99", "10.71.0.2"), "a spoofed source is dropped")
	require.NoError(t, h.Teardown(ctx, a.Name))
	require.NoError(t, h.Teardown(ctx, b.Name))
	assert.False(t, ping("10.71.0.2"), "torn down ports are off the bridge")
	assert.NotContains(t, host.Run(t, "ip", "link"), "vptbr-test")
}
