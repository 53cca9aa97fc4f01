package fake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
	"github.com/virtplane/virtplane/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Pool { return fake.New("fake", map[string]string{"tier": "ssd"}) })
}

func TestFaultInjectionAndCalls(t *testing.T) {
	ctx := t.Context()
	p := fake.New("p", nil)
	boom := errors.New("boom")
	p.Fail("Create", boom)
	_, err := p.Create(ctx, storage.VolumeSpec{Name: "a", Size: 1})
	require.ErrorIs(t, err, boom)
	p.Fail("Create", nil)
	_, err = p.Create(ctx, storage.VolumeSpec{Name: "a", Size: 1})
	require.NoError(t, err)
	assert.Equal(t, []fake.Call{{Op: "Create", Args: []string{"a"}}, {Op: "Create", Args: []string{"a"}}}, p.Calls())

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.Volume(cctx, "a")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestExecutorRulesAndTranscript(t *testing.T) {
	ctx := t.Context()
	ex := &fake.Executor{}
	ex.On("lvs ", "out", nil)
	ex.FailOnce("lvs ", virtplane.ErrUnavailable)
	_, err := ex.Run(ctx, storage.Command{Name: "lvs", Args: []string{"vg"}})
	assert.ErrorIs(t, err, virtplane.ErrUnavailable, "the one-shot failure comes first")
	out, err := ex.Run(ctx, storage.Command{Name: "lvs", Args: []string{"vg"}, Env: []string{"A=1"}})
	require.NoError(t, err)
	assert.Equal(t, "out", string(out))
	out, err = ex.Run(ctx, storage.Command{Name: "true"})
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, "lvs vg\nA=1 lvs vg\ntrue\n", ex.Transcript())
}
