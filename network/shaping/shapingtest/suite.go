// Package shapingtest is the conformance suite every shaping.Limiter
// passes: the Fake and the tc Shaper.
package shapingtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/shaping"
)

// Factory returns a fresh Limiter and the name of an existing port.
type Factory func(t *testing.T) (shaping.Limiter, string)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("ApplyIsIdempotent", func(t *testing.T) {
		l, port := factory(t)
		lim := shaping.Limit{Port: port, InKbit: 10_000, OutKbit: 5_000}
		changed, err := l.Apply(t.Context(), lim)
		require.NoError(t, err)
		assert.True(t, changed)
		changed, err = l.Apply(t.Context(), lim)
		require.NoError(t, err)
		assert.False(t, changed)
		st, err := l.Current(t.Context(), port)
		require.NoError(t, err)
		assert.Equal(t, shaping.State{InKbit: 10_000, OutKbit: 5_000}, st)
	})
	t.Run("OneDirectionAndRemove", func(t *testing.T) {
		l, port := factory(t)
		_, err := l.Apply(t.Context(), shaping.Limit{Port: port, OutKbit: 1_000})
		require.NoError(t, err)
		st, err := l.Current(t.Context(), port)
		require.NoError(t, err)
		assert.Equal(t, shaping.State{OutKbit: 1_000}, st)
		require.NoError(t, l.Remove(t.Context(), port))
		require.NoError(t, l.Remove(t.Context(), port))
		st, err = l.Current(t.Context(), port)
		require.NoError(t, err)
		assert.Zero(t, st)
	})
	t.Run("Errors", func(t *testing.T) {
		l, port := factory(t)
		_, err := l.Apply(t.Context(), shaping.Limit{Port: port, InKbit: 1})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
		_, err = l.Apply(t.Context(), shaping.Limit{Port: "vptnosuch", InKbit: 1000})
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
		_, err = l.Current(t.Context(), "vptnosuch")
		assert.ErrorIs(t, err, virtplane.ErrNotFound)
	})
}
