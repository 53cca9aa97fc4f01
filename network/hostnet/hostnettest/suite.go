// Package hostnettest is the conformance suite every hostnet.Configurator
// passes: the Fake, the kernel Host in a network namespace, and the Host over
// a nettest.Recorder.
package hostnettest

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/hostnet"
)

// Factory returns a fresh Configurator whose host has at least three links
// it does not own, named in ports (taps or veths that a hypervisor made).
type Factory func(t *testing.T) (c hostnet.Configurator, ports []string)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("ApplyTwiceChangesNothing", func(t *testing.T) { applyTwice(t, factory) })
	t.Run("RemovesWhatItOwns", func(t *testing.T) { removesOwned(t, factory) })
	t.Run("InvalidInputChangesNothing", func(t *testing.T) { invalidInput(t, factory) })
	t.Run("ConflictWithForeignLink", func(t *testing.T) { conflict(t, factory) })
	t.Run("MissingPort", func(t *testing.T) { missingPort(t, factory) })
}

func find(t *testing.T, c hostnet.Configurator, name string) (hostnet.Link, bool) {
	t.Helper()
	ls, err := c.Links(t.Context())
	require.NoError(t, err)
	i := slices.IndexFunc(ls, func(l hostnet.Link) bool { return l.Name == name })
	if i < 0 {
		return hostnet.Link{}, false
	}
	return ls[i], true
}

func bridgeWith(ports []string, addr string) hostnet.Desired {
	d := hostnet.Desired{Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "vptbr0", Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}}}}
	for _, p := range ports {
		d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: "vptbr0"})
	}
	return d
}

func applyTwice(t *testing.T, factory Factory) {
	c, ports := factory(t)
	d := bridgeWith(ports[:2], "10.77.0.1/24")
	first, err := c.Apply(t.Context(), d)
	require.NoError(t, err)
	assert.NotEmpty(t, first)
	second, err := c.Apply(t.Context(), d)
	require.NoError(t, err)
	assert.Empty(t, second, "second Apply must change nothing, planned:\n%s", hostnet.FormatChanges(second))

	br, ok := find(t, c, "vptbr0")
	require.True(t, ok)
	assert.True(t, br.Owned)
	assert.True(t, br.Up)
	assert.Equal(t, hostnet.KindBridge, br.Kind)
	assert.Contains(t, br.Addresses, netip.MustParsePrefix("10.77.0.1/24"))
	for _, p := range ports[:2] {
		l, ok := find(t, c, p)
		require.True(t, ok)
		assert.Equal(t, "vptbr0", l.Master, p)
		assert.True(t, l.Up, p)
	}
}

func removesOwned(t *testing.T, factory Factory) {
	c, ports := factory(t)
	_, err := c.Apply(t.Context(), bridgeWith(ports[:3], "10.77.0.1/24"))
	require.NoError(t, err)

	// Drop one port and change the address: the port is released, the old address goes.
	changes, err := c.Apply(t.Context(), bridgeWith(ports[:2], "10.77.1.1/24"))
	require.NoError(t, err)
	ops := map[hostnet.Op]int{}
	for _, ch := range changes {
		ops[ch.Op]++
	}
	assert.Equal(t, map[hostnet.Op]int{hostnet.OpRelease: 1, hostnet.OpAddAddr: 1, hostnet.OpDelAddr: 1}, ops, hostnet.FormatChanges(changes))
	l, ok := find(t, c, ports[2])
	require.True(t, ok, "a released port is not deleted: the Host does not own it")
	assert.Empty(t, l.Master)
	br, _ := find(t, c, "vptbr0")
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.77.1.1/24")}, nonLinkLocal(br.Addresses))

	// The empty configuration removes the bridge and keeps every foreign link.
	_, err = c.Apply(t.Context(), hostnet.Desired{})
	require.NoError(t, err)
	_, ok = find(t, c, "vptbr0")
	assert.False(t, ok)
	for _, p := range ports {
		l, ok := find(t, c, p)
		require.True(t, ok, p)
		assert.Empty(t, l.Master, p)
	}
	again, err := c.Apply(t.Context(), hostnet.Desired{})
	require.NoError(t, err)
	assert.Empty(t, again)
}

func nonLinkLocal(ps []netip.Prefix) []netip.Prefix {
	return slices.DeleteFunc(slices.Clone(ps), func(p netip.Prefix) bool { return p.Addr().IsLinkLocalUnicast() })
}

func invalidInput(t *testing.T, factory Factory) {
	c, ports := factory(t)
	before, err := c.Links(t.Context())
	require.NoError(t, err)
	for name, d := range map[string]hostnet.Desired{
		"long name":      {Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "a-name-longer-than-15"}}}},
		"vlan id":        {VLANs: []hostnet.VLAN{{Common: hostnet.Common{Name: "v0"}, Parent: ports[0], ID: 5000}}},
		"bond mode":      {Bonds: []hostnet.Bond{{Common: hostnet.Common{Name: "bond0"}, Mode: "round-robin"}}},
		"vni":            {VXLANs: []hostnet.VXLAN{{Common: hostnet.Common{Name: "vx0"}, VNI: 1 << 24}}},
		"unknown master": {Ports: []hostnet.Port{{Name: ports[0], Master: "nope"}}},
		"duplicate":      {Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: "b"}}, {Common: hostnet.Common{Name: "b"}}}},
	} {
		_, err := c.Apply(t.Context(), d)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, name)
	}
	after, err := c.Links(t.Context())
	require.NoError(t, err)
	assert.ElementsMatch(t, names(before), names(after))
}

func names(ls []hostnet.Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name+"@"+l.Master)
	}
	return out
}

func conflict(t *testing.T, factory Factory) {
	c, ports := factory(t)
	_, err := c.Apply(t.Context(), hostnet.Desired{Bridges: []hostnet.Bridge{{Common: hostnet.Common{Name: ports[0]}}}})
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	l, ok := find(t, c, ports[0])
	require.True(t, ok)
	assert.False(t, l.Owned)
}

func missingPort(t *testing.T, factory Factory) {
	c, ports := factory(t)
	d := bridgeWith([]string{ports[0], "vptnosuch0"}, "10.77.0.1/24")
	_, err := c.Apply(t.Context(), d)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	_, ok := find(t, c, "vptbr0")
	assert.False(t, ok, "a failed Apply leaves nothing behind")
}
