// Package powertest is the conformance suite for ha.Power implementations:
// the fake (ha/fakepower) and every real power fencer pass it.
//
//	func TestConformance(t *testing.T) {
//		powertest.Run(t, func(t *testing.T) (ha.Power, string) {
//			return fakepower.New("node-1"), "node-1"
//		})
//	}
package powertest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
)

// Factory returns a fencer and a node it controls, powered on.
type Factory func(t *testing.T) (ha.Power, string)

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("OffThenOn", func(t *testing.T) {
		p, node := factory(t)
		ctx := t.Context()
		st, err := p.PowerState(ctx, node)
		require.NoError(t, err)
		assert.Equal(t, ha.PowerOn, st)
		require.NoError(t, p.PowerOff(ctx, node))
		st, err = p.PowerState(ctx, node)
		require.NoError(t, err)
		assert.Equal(t, ha.PowerOff, st, "a fence is confirmed only by PowerOff")
		require.NoError(t, p.PowerOn(ctx, node))
		st, err = p.PowerState(ctx, node)
		require.NoError(t, err)
		assert.Equal(t, ha.PowerOn, st)
	})
	t.Run("OffIsIdempotent", func(t *testing.T) {
		p, node := factory(t)
		ctx := t.Context()
		require.NoError(t, p.PowerOff(ctx, node))
		require.NoError(t, p.PowerOff(ctx, node))
		st, err := p.PowerState(ctx, node)
		require.NoError(t, err)
		assert.Equal(t, ha.PowerOff, st)
	})
	t.Run("UnknownNode", func(t *testing.T) {
		p, _ := factory(t)
		_, err := p.PowerState(t.Context(), "no-such-node-vpt")
		assert.True(t, errors.Is(err, virtplane.ErrNotFound), "got %v", err)
		assert.True(t, errors.Is(p.PowerOff(t.Context(), "no-such-node-vpt"), virtplane.ErrNotFound))
	})
	t.Run("CanceledContext", func(t *testing.T) {
		p, node := factory(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.Error(t, p.PowerOff(ctx, node))
		st, err := p.PowerState(t.Context(), node)
		require.NoError(t, err)
		assert.Equal(t, ha.PowerOn, st, "a canceled power off must not switch the node off")
	})
}
