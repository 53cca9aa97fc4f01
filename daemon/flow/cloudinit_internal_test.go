package flow

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
)

// TestCloudInitNetworkConfig: the guest's netplan v2 network config for
// one address, a dual-stack pair (each family with its gateway) and a
// routed address (alone, its gateway on-link).
func TestCloudInitNetworkConfig(t *testing.T) {
	v4 := ipam.Allocation{Prefix: netip.MustParsePrefix("198.51.100.5/32"), Network: netip.MustParsePrefix("198.51.100.0/29"), Gateway: netip.MustParseAddr("198.51.100.1")}
	v6 := ipam.Allocation{Prefix: netip.MustParsePrefix("2001:db8::2/128"), Network: netip.MustParsePrefix("2001:db8::/64"), Gateway: netip.MustParseAddr("2001:db8::1")}
	const head = "version: 2\nethernets:\n  eth0:\n    match: {name: \"e*\"}\n"
	vm := model.VM{ID: "vm1", Name: "web"}
	for _, tc := range []struct {
		name  string
		addrs []ipam.Allocation
		mode  string
		want  string
	}{
		{"one address", []ipam.Allocation{v4}, netport.ModeBridge, head + "    addresses: [198.51.100.5/29]\n    gateway4: 198.51.100.1\n"},
		{"dual stack", []ipam.Allocation{v4, v6}, netport.ModeBridge, head + "    addresses: [198.51.100.5/29, 2001:db8::2/64]\n    gateway4: 198.51.100.1\n    gateway6: 2001:db8::1\n"},
		{"no gateway", []ipam.Allocation{{Prefix: v6.Prefix, Network: v6.Network}}, netport.ModeVXLAN, head + "    addresses: [2001:db8::2/64]\n"},
		{"routed", []ipam.Allocation{v4}, netport.ModeRouted, head + "    addresses: [198.51.100.5/32]\n    routes:\n      - {to: 0.0.0.0/0, via: 198.51.100.1, on-link: true}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci := cloudInit(vm, "", tc.addrs, tc.mode)
			assert.Equal(t, tc.want, ci.NetworkConfig)
			assert.Equal(t, "#cloud-config\n", ci.UserData)
			assert.Contains(t, ci.MetaData, "local-hostname: web\n")
		})
	}
}
