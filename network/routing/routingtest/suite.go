// Package routingtest is the conformance suite every routing.Applier
// passes: the Fake and the netlink Router.
package routingtest

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/routing"
)

// Factory returns a fresh Applier, configured with an IPv4 and an IPv6
// gateway, and two existing port names.
type Factory func(t *testing.T) (routing.Applier, [2]string)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	vm := func(port string, last byte) routing.VM {
		return routing.VM{Port: port, IPv4: []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, last})}, IPv6: []netip.Addr{netip.AddrFrom16([16]byte{0xfd, 0, 0x51, 15: last})}}
	}
	t.Run("ApplyTwiceChangesNothing", func(t *testing.T) {
		a, ports := factory(t)
		vms := []routing.VM{vm(ports[0], 10), vm(ports[1], 11)}
		changes, err := a.Apply(t.Context(), vms)
		require.NoError(t, err)
		assert.Len(t, changes, 4+4, "per VM: 2 routes and 2 gateway addresses")
		changes, err = a.Apply(t.Context(), vms)
		require.NoError(t, err)
		assert.Empty(t, changes)
	})
	t.Run("RemovesWhatItOwns", func(t *testing.T) {
		a, ports := factory(t)
		_, err := a.Apply(t.Context(), []routing.VM{vm(ports[0], 10), vm(ports[1], 11)})
		require.NoError(t, err)
		changes, err := a.Apply(t.Context(), []routing.VM{vm(ports[1], 11)})
		require.NoError(t, err)
		assert.NotEmpty(t, changes)
		changes, err = a.Apply(t.Context(), nil)
		require.NoError(t, err)
		assert.NotEmpty(t, changes)
		changes, err = a.Apply(t.Context(), nil)
		require.NoError(t, err)
		assert.Empty(t, changes)
	})
	t.Run("Errors", func(t *testing.T) {
		a, ports := factory(t)
		_, err := a.Apply(t.Context(), []routing.VM{vm(ports[0], 10), vm("vptnosuch", 11)})
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		_, err = a.Apply(t.Context(), []routing.VM{vm(ports[0], 10), vm(ports[1], 10)})
		assert.ErrorIs(t, err, virtplane.ErrConflict)
		changes, err := a.Apply(t.Context(), nil)
		require.NoError(t, err)
		assert.Empty(t, changes, "failed Applies changed nothing")
	})
}
