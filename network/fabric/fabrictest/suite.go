// Package fabrictest is the conformance suite every fabric.Announcer
// passes: the Fake and the GoBGP Speaker.
package fabrictest

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/fabric"
)

// Factory returns a fresh Announcer.
type Factory func(t *testing.T) fabric.Announcer

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	v4, v4b := netip.MustParsePrefix("10.200.0.5/32"), netip.MustParsePrefix("10.200.0.6/32")
	t.Run("AnnounceWithdraw", func(t *testing.T) {
		a := factory(t)
		require.NoError(t, a.Announce(t.Context(), v4b))
		require.NoError(t, a.Announce(t.Context(), v4))
		require.NoError(t, a.Announce(t.Context(), v4), "announcing twice is fine")
		got, err := a.Announced(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []netip.Prefix{v4, v4b}, got)
		require.NoError(t, a.Withdraw(t.Context(), v4))
		require.NoError(t, a.Withdraw(t.Context(), v4), "withdrawing twice is fine")
		got, err = a.Announced(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []netip.Prefix{v4b}, got)
	})
	t.Run("OnlyHostPrefixes", func(t *testing.T) {
		a := factory(t)
		assert.ErrorIs(t, a.Announce(t.Context(), netip.MustParsePrefix("10.200.0.0/24")), virtplane.ErrInvalidArgument)
		assert.ErrorIs(t, a.Withdraw(t.Context(), netip.MustParsePrefix("10.200.0.0/24")), virtplane.ErrInvalidArgument)
		got, err := a.Announced(t.Context())
		require.NoError(t, err)
		assert.Empty(t, got)
	})
}
