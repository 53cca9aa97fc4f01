package agent_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/storage"
	sfake "github.com/virtplane/virtplane/storage/fake"
	vfake "github.com/virtplane/virtplane/vmm/fake"
)

// allClasses are the error classes of the root package (errors.go).
var allClasses = []error{
	virtplane.ErrNotFound, virtplane.ErrAlreadyExists, virtplane.ErrConflict, virtplane.ErrInvalidArgument,
	virtplane.ErrUnavailable, virtplane.ErrResourceExhausted, virtplane.ErrNotImplemented,
	virtplane.ErrPermissionDenied, virtplane.ErrUnauthenticated, virtplane.ErrCanceled, virtplane.ErrTimeout,
}

// TestEveryClassCrossesTheWire: an error of each class that the node's
// driver returns is of the same class, and no other, on the controller.
func TestEveryClassCrossesTheWire(t *testing.T) {
	d := vfake.New()
	c := serve(t, agent.Node{VMM: d}).client
	ctx := t.Context()
	_, err := c.VMM().Create(ctx, fakeSpec("vpt-a"))
	require.NoError(t, err)
	for i, class := range allClasses {
		d.FailNext("Start", virtplane.Errorf(class, "injected %d", i))
		err := c.VMM().Start(ctx, "vpt-a")
		require.Error(t, err)
		assert.ErrorIs(t, err, class)
		assert.Equal(t, class, virtplane.Class(err), "exactly this class")
		assert.Contains(t, err.Error(), fmt.Sprintf("injected %d", i))
		assert.Contains(t, err.Error(), "node n1", "the error names the node")
		for _, other := range allClasses {
			if other != class {
				assert.NotErrorIs(t, err, other)
			}
		}
	}

	// A context's end survives along with the class.
	d.FailNext("Stop", fmt.Errorf("stop: %w: %w", virtplane.ErrTimeout, context.DeadlineExceeded))
	err = c.VMM().Stop(ctx, "vpt-a")
	assert.ErrorIs(t, err, virtplane.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	// An error without a class stays without one.
	d.FailNext("Stop", errors.New("plain"))
	err = c.VMM().Stop(ctx, "vpt-a")
	require.Error(t, err)
	assert.Nil(t, virtplane.Class(err))
	var re *agent.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "plain", re.Message)
	assert.Equal(t, "n1", re.Node)
}

// TestExitErrorCrossesTheWire: a driver's failed command arrives as a
// *storage.ExitError with its command, code and standard error.
func TestExitErrorCrossesTheWire(t *testing.T) {
	p := sfake.New("p", nil)
	c := serve(t, agent.Node{Pools: map[string]storage.Pool{"p": p}}).client
	want := &storage.ExitError{Command: storage.Command{Name: "lvcreate", Args: []string{"-L", "4m", "vg"}, Env: []string{"LVM_SYSTEM_DIR=/x"}}, Code: 5, Stderr: "  Volume group \"vg\" has insufficient free space\n"}
	p.Fail("Create", want)
	_, err := c.Pool("p").Create(t.Context(), storage.VolumeSpec{Name: "v", Size: 1 << 20})
	var got *storage.ExitError
	require.ErrorAs(t, err, &got)
	assert.Equal(t, want.Code, got.Code)
	assert.Equal(t, want.Stderr, got.Stderr)
	assert.Equal(t, want.Command.Name, got.Command.Name)
	assert.Equal(t, want.Command.Args, got.Command.Args)
	assert.Equal(t, want.Command.Env, got.Command.Env)
	assert.Equal(t, want.Error(), got.Error())
}
