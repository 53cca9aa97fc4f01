package fake_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
	"github.com/virtplane/virtplane/scripts/fake"
	"github.com/virtplane/virtplane/scripts/scripttest"
)

func TestConformance(t *testing.T) {
	scripttest.Run(t, func(t *testing.T) scripttest.Harness {
		r := fake.New()
		return scripttest.Harness{
			Runner: r, Target: scripts.Target{Name: "vm1", Address: "192.0.2.1:22"},
			ProcessAlive: func(_ context.Context, pattern string) (bool, error) {
				// The suite hands a pgrep pattern "[s]leep ..."; undo the brackets.
				return r.Running(pattern[1:2] + pattern[3:]), nil
			},
		}
	})
}

func rendered(t *testing.T, body string) scripts.Rendered {
	r, err := scripts.Render(scripts.Script{Name: "s", Owner: "o", Visibility: scripts.Private, Kind: scripts.Shell, Body: body}, scripts.RenderInput{})
	require.NoError(t, err)
	return r
}

func TestFaultsHandlersAndCalls(t *testing.T) {
	r := fake.New()
	boom := virtplane.Errorf(virtplane.ErrUnavailable, "vm1 unreachable")
	r.Fail("vm1", boom)
	job := scripts.Job{Target: scripts.Target{Name: "vm1"}, Script: rendered(t, "echo hi\n"), Timeout: time.Second}

	code, err := r.Run(t.Context(), job)
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Equal(t, -1, code)

	code, err = r.Run(t.Context(), job)
	require.NoError(t, err, "the fault is used once")
	assert.Equal(t, 0, code)

	r.SetHandler("vm1", func(ctx context.Context, job scripts.Job, stdout, stderr io.Writer) (int, error) {
		_, _ = io.WriteString(stdout, "custom")
		return 42, nil
	})
	code, err = r.Run(t.Context(), job)
	require.NoError(t, err)
	assert.Equal(t, 42, code)

	calls := r.Calls()
	require.Len(t, calls, 3)
	assert.True(t, errors.Is(calls[0].Err, virtplane.ErrUnavailable))
	assert.Equal(t, 42, calls[2].Exit)
	assert.Equal(t, "vm1", calls[2].Target.Name)
}

func TestRejectsOtherKinds(t *testing.T) {
	r := fake.New()
	rr := rendered(t, "echo hi\n")
	rr.Kind = scripts.PowerShell
	_, err := r.Run(t.Context(), scripts.Job{Target: scripts.Target{Name: "vm1"}, Script: rr})
	require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
}
