package fakepower_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/ha"
	"github.com/virtplane/virtplane/ha/fakepower"
	"github.com/virtplane/virtplane/ha/powertest"
)

func TestConformance(t *testing.T) {
	powertest.Run(t, func(t *testing.T) (ha.Power, string) { return fakepower.New("node-1"), "node-1" })
}

func TestFaultsHookAndCalls(t *testing.T) {
	p := fakepower.New("n1")
	var off []string
	p.OnPowerOff(func(n string) { off = append(off, n) })
	p.FailNext("PowerOff", virtplane.Errorf(virtplane.ErrUnavailable, "bmc"))
	require.ErrorIs(t, p.PowerOff(t.Context(), "n1"), virtplane.ErrUnavailable)
	p.Unreachable("n1", true)
	require.ErrorIs(t, p.PowerOff(t.Context(), "n1"), virtplane.ErrUnavailable)
	p.Unreachable("n1", false)
	require.NoError(t, p.PowerOff(t.Context(), "n1"))
	require.NoError(t, p.PowerOff(t.Context(), "n1"))
	assert.Equal(t, []string{"n1"}, off, "hook runs on the on→off edge only")
	assert.Len(t, p.Calls(), 4)
}
