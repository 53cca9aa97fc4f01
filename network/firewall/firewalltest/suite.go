// Package firewalltest is the conformance suite every firewall.Enforcer
// passes: the Fake and the nftables Firewall.
package firewalltest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/firewall"
)

// Factory returns a fresh Enforcer and the names of two existing VM ports.
type Factory func(t *testing.T) (firewall.Enforcer, [2]string)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	policy := func(port string) firewall.Policy {
		return firewall.Policy{
			Port: port, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
			IPv4: []netip.Addr{netip.MustParseAddr("10.0.0.5")}, IPv6: []netip.Addr{netip.MustParseAddr("fd00::5")},
			BlockOut: []firewall.PortRange{{Protocol: "tcp", First: 25}}, BlockIn: []firewall.PortRange{{Protocol: "udp", First: 1000, Last: 2000}},
			MaxConnections: 100,
		}
	}
	t.Run("ApplyListRemove", func(t *testing.T) {
		e, ports := factory(t)
		require.NoError(t, e.Apply(t.Context(), policy(ports[0])))
		require.NoError(t, e.Apply(t.Context(), policy(ports[0])), "re-apply replaces")
		require.NoError(t, e.Apply(t.Context(), policy(ports[1])))
		got, err := e.Ports(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{ports[0], ports[1]}, got)
		require.NoError(t, e.Remove(t.Context(), ports[0]))
		require.NoError(t, e.Remove(t.Context(), ports[0]), "removing twice is fine")
		got, err = e.Ports(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{ports[1]}, got)
	})
	t.Run("InvalidPolicy", func(t *testing.T) {
		e, ports := factory(t)
		for name, mut := range map[string]func(*firewall.Policy){
			"port":     func(p *firewall.Policy) { p.Port = "" },
			"mac":      func(p *firewall.Policy) { p.MAC = nil },
			"ipv4":     func(p *firewall.Policy) { p.IPv4 = []netip.Addr{netip.MustParseAddr("fd00::1")} },
			"ipv6":     func(p *firewall.Policy) { p.IPv6 = []netip.Addr{netip.MustParseAddr("10.0.0.1")} },
			"protocol": func(p *firewall.Policy) { p.BlockIn = []firewall.PortRange{{Protocol: "sctp", First: 1}} },
			"range":    func(p *firewall.Policy) { p.BlockOut = []firewall.PortRange{{Protocol: "tcp", First: 10, Last: 5}} },
			"limit":    func(p *firewall.Policy) { p.MaxConnections = -1 },
		} {
			p := policy(ports[0])
			mut(&p)
			assert.ErrorIs(t, e.Apply(t.Context(), p), virtplane.ErrInvalidArgument, name)
		}
		got, err := e.Ports(t.Context())
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}
