package hostnet_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/hostnet/hostnettest"
	"github.com/virtplane/virtplane/network/nettest"
)

func TestConformanceFake(t *testing.T) {
	hostnettest.Run(t, func(t *testing.T) (hostnet.Configurator, []string) {
		return hostnet.NewFake("tap0", "tap1", "tap2"), []string{"tap0", "tap1", "tap2"}
	})
}

func TestConformanceRecorder(t *testing.T) {
	hostnettest.Run(t, func(t *testing.T) (hostnet.Configurator, []string) {
		h, err := hostnet.New(hostnet.Config{Netlink: nettest.NewRecorder("tap0", "tap1", "tap2")})
		require.NoError(t, err)
		return h, []string{"tap0", "tap1", "tap2"}
	})
}

func TestConformanceKernel(t *testing.T) {
	hostnettest.Run(t, func(t *testing.T) (hostnet.Configurator, []string) {
		ns := testenv.NewNetns(t)
		var ports []string
		for i := range 3 {
			p := fmt.Sprintf("vm%dp", i)
			ns.Run(t, "ip", "link", "add", p, "type", "veth", "peer", "name", p+"x")
			ports = append(ports, p)
		}
		h, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, ns.Name)})
		require.NoError(t, err)
		return h, ports
	})
}

// TestSwitchingTwoHosts: VM ports and the uplink on a bridge on each of two
// hosts; a VM on host A reaches a VM on host B through the hosts' bridges.
func TestSwitchingTwoHosts(t *testing.T) {
	hostA, hostB := testenv.NewNetns(t), testenv.NewNetns(t)
	vmA, vmB := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, hostA, "eth0", "", hostB, "eth0", "")
	testenv.Veth(t, vmA, "eth0", "10.50.0.1/24", hostA, "vm1p", "")
	testenv.Veth(t, vmB, "eth0", "10.50.0.2/24", hostB, "vm2p", "")

	var hostBCfg *hostnet.Host
	for _, h := range []struct {
		ns   *testenv.Netns
		port string
	}{{hostA, "vm1p"}, {hostB, "vm2p"}} {
		host, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, h.ns.Name)})
		require.NoError(t, err)
		hostBCfg = host
		d := hostnet.Desired{
			Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}},
			Ports:   []hostnet.Port{{Name: "eth0", Master: "br0"}, {Name: h.port, Master: "br0"}},
		}
		first, err := host.Apply(t.Context(), d)
		require.NoError(t, err)
		assert.Equal(t, "create bridge br0\nset-master eth0 br0\nset-master "+h.port+" br0\nset-up br0\n", hostnet.FormatChanges(first))
		second, err := host.Apply(t.Context(), d)
		require.NoError(t, err)
		assert.Empty(t, second)
	}
	out := vmA.Run(t, "ping", "-c", "2", "-W", "2", "-i", "0.2", "10.50.0.2")
	assert.Contains(t, out, "2 received")
	assert.Contains(t, hostB.Run(t, "bridge", "fdb", "show", "br", "br0"), "master br0")

	// VM 2 stops: its port leaves the configuration and the bridge.
	changes, err := hostBCfg.Apply(t.Context(), hostnet.Desired{
		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}},
		Ports:   []hostnet.Port{{Name: "eth0", Master: "br0"}},
	})
	require.NoError(t, err)
	assert.Equal(t, "release vm2p br0\n", hostnet.FormatChanges(changes))
	assert.Error(t, vmA.Command(t.Context(), "ping", "-c", "1", "-W", "1", "10.50.0.2").Run())
}

// TestVLANOnThisKernel: the kernel here has no 802.1Q module. Apply of a
// bridge and a VLAN must then fail as not implemented and leave nothing
// behind: the bridge it created first is removed again by the reverter.
func TestVLANOnThisKernel(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.Run(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0x")
	h, err := hostnet.New(hostnet.Config{Netlink: nettest.Handle(t, ns.Name)})
	require.NoError(t, err)
	d := hostnet.Desired{
		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br100"}}},
		VLANs:   []hostnet.VLAN{{Common: hostnet.Common{Name: "eth0.100", Master: "br100"}, Parent: "eth0", ID: 100}},
	}
	_, err = h.Apply(t.Context(), d)
	if err == nil {
		t.Log("this kernel has VLAN sub-interfaces; checking the result instead")
		assert.Contains(t, ns.Run(t, "ip", "-d", "link", "show", "eth0.100"), "vlan protocol 802.1Q id 100")
		return
	}
	assert.True(t, errors.Is(err, virtplane.ErrNotImplemented) || errors.Is(err, virtplane.ErrUnavailable), err)
	assert.NotContains(t, ns.Run(t, "ip", "link", "show"), "br100", "the bridge created before the failed step is reverted")
}

// TestGoldenVLANBond checks the exact netlink requests for bonds, VLANs and
// VLAN filtering, which this kernel cannot create.
func TestGoldenVLANBond(t *testing.T) {
	rec := nettest.NewRecorder("eth0", "eth1")
	h, err := hostnet.New(hostnet.Config{Netlink: rec})
	require.NoError(t, err)
	d := hostnet.Desired{
		Bonds: []hostnet.Bond{{Common: hostnet.Common{Name: "bond0", MTU: 9000}, Mode: "802.3ad", Members: []string{"eth0", "eth1"}, LACPRate: "fast", XmitHashPolicy: "layer3+4"}},
		VLANs: []hostnet.VLAN{
			{Common: hostnet.Common{Name: "bond0.100", Master: "br100"}, Parent: "bond0", ID: 100},
			{Common: hostnet.Common{Name: "bond0.200", Master: "br200"}, Parent: "bond0", ID: 200, Protocol: "802.1ad"},
		},
		Bridges: []hostnet.Bridge{
			{Common: hostnet.Common{Name: "br100", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.100.1/24"), netip.MustParsePrefix("fd00:100::1/64")}}},
			{Common: hostnet.Common{Name: "br200"}, VLANFiltering: true},
		},
	}
	_, err = h.Apply(t.Context(), d)
	require.NoError(t, err)
	nettest.Golden(t, "vlan_bond_apply", rec.Requests())

	changes, err := h.Apply(t.Context(), d)
	require.NoError(t, err)
	assert.Empty(t, changes)
	assert.Empty(t, rec.Requests(), "second Apply sends no request")

	d.VLANs, d.Bridges = d.VLANs[:1], d.Bridges[:1]
	d.Bridges[0].Addresses = d.Bridges[0].Addresses[:1]
	_, err = h.Apply(t.Context(), d)
	require.NoError(t, err)
	nettest.Golden(t, "vlan_bond_shrink", rec.Requests())

	_, err = h.Apply(t.Context(), hostnet.Desired{})
	require.NoError(t, err)
	nettest.Golden(t, "vlan_bond_remove", rec.Requests())
}

func TestGoldenBondModes(t *testing.T) {
	var all strings.Builder
	for _, mode := range hostnet.BondModes() {
		rec := nettest.NewRecorder("eth0", "eth1")
		h, err := hostnet.New(hostnet.Config{Netlink: rec})
		require.NoError(t, err)
		_, err = h.Apply(t.Context(), hostnet.Desired{Bonds: []hostnet.Bond{{Common: hostnet.Common{Name: "bond0"}, Mode: mode, Members: []string{"eth0", "eth1"}}}})
		require.NoError(t, err, mode)
		all.WriteString("# " + mode + "\n" + rec.Requests())
		again, err := h.Apply(t.Context(), hostnet.Desired{Bonds: []hostnet.Bond{{Common: hostnet.Common{Name: "bond0"}, Mode: mode, Members: []string{"eth0", "eth1"}}}})
		require.NoError(t, err)
		assert.Empty(t, again, mode)
	}
	nettest.Golden(t, "bond_modes", all.String())
}

// TestApplyRevertsOnFailure: a step failing in the middle undoes the steps before it.
func TestApplyRevertsOnFailure(t *testing.T) {
	rec := nettest.NewRecorder("eth0")
	h, err := hostnet.New(hostnet.Config{Netlink: rec})
	require.NoError(t, err)
	rec.FailOn("LinkSetMaster", "eth0", errors.New("injected"))
	_, err = h.Apply(t.Context(), hostnet.Desired{
		Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}},
		Ports:   []hostnet.Port{{Name: "eth0", Master: "br0"}},
	})
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Equal(t, "LinkAdd br0 type=bridge\nLinkSetAlias br0 virtplane\nLinkSetMaster eth0 master=br0 FAILED\nLinkDel br0\n", rec.Requests())
}

// TestRecreatedBondTakesItsVLANs: changing a bond's mode recreates it; the
// kernel deletes the VLAN on it, so the plan recreates the VLAN too.
func TestRecreatedBondTakesItsVLANs(t *testing.T) {
	rec := nettest.NewRecorder("eth0", "eth1")
	h, err := hostnet.New(hostnet.Config{Netlink: rec})
	require.NoError(t, err)
	d := hostnet.Desired{
		Bonds: []hostnet.Bond{{Common: hostnet.Common{Name: "bond0"}, Mode: "active-backup", Members: []string{"eth0", "eth1"}}},
		VLANs: []hostnet.VLAN{{Common: hostnet.Common{Name: "bond0.7"}, Parent: "bond0", ID: 7}},
	}
	_, err = h.Apply(t.Context(), d)
	require.NoError(t, err)
	rec.Requests()
	d.Bonds[0].Mode = "802.3ad"
	changes, err := h.Apply(t.Context(), d)
	require.NoError(t, err)
	assert.Contains(t, hostnet.FormatChanges(changes), "create vlan bond0.7")
	nettest.Golden(t, "bond_mode_change", rec.Requests())
	again, err := h.Apply(t.Context(), d)
	require.NoError(t, err)
	assert.Empty(t, again)
}
