package hostnet_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// genDesired draws a valid configuration over a fixed set of foreign links
// (eth0..eth3, tap0..tap3).
func genDesired(t *rapid.T) hostnet.Desired {
	var d hostnet.Desired
	used := map[string]bool{}
	nBr := rapid.IntRange(0, 3).Draw(t, "bridges")
	var bridges []string
	for i := range nBr {
		name := fmt.Sprintf("br%d", i)
		bridges = append(bridges, name)
		var addrs []netip.Prefix
		for j := range rapid.IntRange(0, 2).Draw(t, "addrs") {
			addrs = append(addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(j), byte(rapid.IntRange(1, 3).Draw(t, "host"))}), 24))
		}
		d.Bridges = append(d.Bridges, hostnet.Bridge{Common: hostnet.Common{Name: name, MTU: rapid.SampledFrom([]int{0, 1500, 9000}).Draw(t, "mtu"), Addresses: addrs}, VLANFiltering: rapid.Bool().Draw(t, "vf")})
	}
	pickMaster := func(label string) string {
		if len(bridges) == 0 || rapid.Bool().Draw(t, label) {
			return ""
		}
		return rapid.SampledFrom(bridges).Draw(t, label+"-bridge")
	}
	if rapid.Bool().Draw(t, "bond") {
		d.Bonds = append(d.Bonds, hostnet.Bond{Common: hostnet.Common{Name: "bond0", Master: pickMaster("bond-master")},
			Mode: rapid.SampledFrom(hostnet.BondModes()).Draw(t, "mode"), Members: []string{"eth0", "eth1"}})
		used["eth0"], used["eth1"] = true, true
	}
	for i := range rapid.IntRange(0, 2).Draw(t, "vlans") {
		parent := rapid.SampledFrom([]string{"eth2", "eth3"}).Draw(t, "parent")
		if d.Bonds != nil && rapid.Bool().Draw(t, "on-bond") {
			parent = "bond0"
		}
		d.VLANs = append(d.VLANs, hostnet.VLAN{Common: hostnet.Common{Name: fmt.Sprintf("vl%d", i), Master: pickMaster("vlan-master")}, Parent: parent, ID: rapid.IntRange(1, 4094).Draw(t, "id")})
	}
	for _, p := range []string{"tap0", "tap1", "tap2", "tap3"} {
		if rapid.Bool().Draw(t, p) {
			d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: pickMaster(p + "-master")})
		}
	}
	return d
}

// TestPlanReachesTarget: from any state reached by earlier configurations,
// the plan for a new one, simulated, leaves nothing more to do, and foreign
// links are never deleted.
func TestPlanReachesTarget(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		links := hostnet.NewFake("eth0", "eth1", "eth2", "eth3", "tap0", "tap1", "tap2", "tap3")
		cur, err := links.Links(t.Context())
		require.NoError(t, err)
		for range rapid.IntRange(1, 4).Draw(t, "steps") {
			d := genDesired(t)
			plan, err := hostnet.Plan(cur, d)
			require.NoError(t, err)
			for _, c := range plan {
				if c.Op == hostnet.OpDelete {
					assert.True(t, c.Spec.Owned, "deleted a foreign link: %s", c)
				}
			}
			cur = hostnet.Simulate(cur, plan)
			again, err := hostnet.Plan(cur, d)
			require.NoError(t, err)
			require.Empty(t, again, "after:\n%s", hostnet.FormatChanges(plan))
		}
	})
}

// FuzzDesiredValidate: arbitrary names and numbers never panic, and every
// rejection is an invalid-argument error.
func FuzzDesiredValidate(f *testing.F) {
	f.Add("br0", "eth0", 100, "802.3ad", 1500, 42)
	f.Add("", "", 0, "", -1, 0)
	f.Add("a-name-longer-than-15", "eth0.100", 4095, "balance-rr", 70000, 1<<24)
	f.Fuzz(func(t *testing.T, name, parent string, id int, mode string, mtu, vni int) {
		d := hostnet.Desired{
			Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: name, MTU: mtu}}},
			VLANs:   []hostnet.VLAN{{Common: hostnet.Common{Name: name + "v", Master: name}, Parent: parent, ID: id}},
			Bonds:   []hostnet.Bond{{Common: hostnet.Common{Name: name + "b"}, Mode: mode}},
			VXLANs:  []hostnet.VXLAN{{Common: hostnet.Common{Name: name + "x"}, VNI: vni}},
		}
		if err := d.Validate(); err != nil {
			assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			return
		}
		_, err := hostnet.Plan(nil, d)
		assert.NoError(t, err)
	})
}

// TestPlanLeavesWhatItIsTold: a link named in Leave is neither released
// from an owned bridge it hangs on nor enslaved; without Leave the same
// link is released.
func TestPlanLeavesWhatItIsTold(t *testing.T) {
	current := []hostnet.Link{
		{Name: "br0", Kind: hostnet.KindBridge, Owned: true, Up: true},
		{Name: "tap1", Master: "br0", Up: true},
		{Name: "tap2", Up: true},
	}
	d := hostnet.Desired{Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "br0"}}}}
	changes, err := hostnet.Plan(current, d)
	require.NoError(t, err)
	assert.Contains(t, changes, hostnet.Change{Op: hostnet.OpRelease, Link: "tap1", Master: "br0"})
	d.Leave = []string{"tap1", "tap2"}
	changes, err = hostnet.Plan(current, d)
	require.NoError(t, err)
	assert.Empty(t, changes)
}
