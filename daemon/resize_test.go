package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
)

// simParts returns the simulated hypervisor and storage of a node, to look
// at and to inject faults into.
func (e *env) simParts(t *testing.T, nodeID string) (*simnode.Node, *simnode.Storage) {
	t.Helper()
	drv, err := e.srv.Flow.NodeDriver(t.Context(), nodeID)
	require.NoError(t, err)
	pool, err := e.srv.Flow.NodePool(t.Context(), nodeID)
	require.NoError(t, err)
	return drv.(*simnode.Node), pool.(*simnode.Storage)
}

// succeeded waits for a task and requires it to have succeeded.
func succeeded(t *testing.T, c *client.Client, tk api.TaskView, err error) {
	t.Helper()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
}

// taskFailed waits for a task and returns its error, requiring it to have failed.
func taskFailed(t *testing.T, c *client.Client, tk api.TaskView, err error) error {
	t.Helper()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.Equal(t, "failed", tk.State, "task %s: %s", tk.ID, tk.Error)
	return client.TaskError(tk)
}

// TestDiskResize grows a VM's disk through the API on a simulated node:
// running (the hypervisor grows it and the guest sees it), stopped (storage
// grows it), refused shrinks, and failures that leave everything as it was.
func TestDiskResize(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	succeeded(t, e.alice, e.aliceTask, nil)
	vm := e.aliceVM
	dom, vol := flow.DomainName(vm.ID), flow.VolumeName(vm.ID)
	drv, pool := e.simParts(t, e.node.ID)
	capacity := func() int64 {
		v, err := pool.Volume(ctx, vol)
		require.NoError(t, err)
		return v.Capacity
	}
	require.EqualValues(t, 5<<30, capacity())

	t.Run("running", func(t *testing.T) {
		tk, err := e.alice.ResizeVM(ctx, vm.ID, 0, 0, 8)
		succeeded(t, e.alice, tk, err)
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.EqualValues(t, 8, got.DiskGiB)
		assert.EqualValues(t, 8<<30, capacity())
		assert.EqualValues(t, 8<<30, drv.DiskSize(dom, "vda"), "the hypervisor grew the disk of the running guest")
	})
	t.Run("shrink refused", func(t *testing.T) {
		_, err := e.alice.ResizeVM(ctx, vm.ID, 0, 0, 4)
		var p *client.Problem
		require.ErrorAs(t, err, &p)
		assert.Equal(t, 422, p.Status)
		assert.Equal(t, "body.disk_gib", p.Field())
		assert.Contains(t, p.Error(), "disks only grow")
	})
	t.Run("stopped", func(t *testing.T) {
		tk, err := e.alice.VMAction(ctx, vm.ID, "stop")
		succeeded(t, e.alice, tk, err)
		tk, err = e.alice.ResizeVM(ctx, vm.ID, 0, 0, 10)
		succeeded(t, e.alice, tk, err)
		assert.EqualValues(t, 10<<30, capacity(), "storage grew the stopped VM's volume")
		assert.EqualValues(t, 8<<30, drv.DiskSize(dom, "vda"), "the stopped hypervisor was not asked")
		tk, err = e.alice.VMAction(ctx, vm.ID, "start")
		succeeded(t, e.alice, tk, err)
	})
	t.Run("hypervisor fails: the CPU change is undone", func(t *testing.T) {
		drv.FailNext("ResizeDisk", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
		tk, err := e.alice.ResizeVM(ctx, vm.ID, 2, 0, 12)
		assert.ErrorIs(t, taskFailed(t, e.alice, tk, err), virtplane.ErrUnavailable)
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, 1, got.CPUs)
		assert.EqualValues(t, 10, got.DiskGiB)
		assert.Contains(t, got.Error, "injected")
		d, err := drv.Get(ctx, dom)
		require.NoError(t, err)
		assert.Equal(t, 1, d.Spec.VCPUs, "the resize step was undone")
		assert.EqualValues(t, 10<<30, capacity())
	})
	t.Run("storage fails", func(t *testing.T) {
		tk, err := e.alice.VMAction(ctx, vm.ID, "stop")
		succeeded(t, e.alice, tk, err)
		pool.Fail("Resize", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
		tk, err = e.alice.ResizeVM(ctx, vm.ID, 0, 1024, 12)
		assert.ErrorIs(t, taskFailed(t, e.alice, tk, err), virtplane.ErrUnavailable)
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.EqualValues(t, 512, got.MemoryMiB)
		assert.EqualValues(t, 10, got.DiskGiB)
		d, err := drv.Get(ctx, dom)
		require.NoError(t, err)
		assert.EqualValues(t, 512, d.Spec.MemoryMiB, "the resize step was undone")
		assert.EqualValues(t, 10<<30, capacity())

		pool.Fail("Resize", nil)
		tk, err = e.alice.ResizeVM(ctx, vm.ID, 0, 1024, 12)
		succeeded(t, e.alice, tk, err)
		got, err = e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.EqualValues(t, 1024, got.MemoryMiB)
		assert.EqualValues(t, 12, got.DiskGiB)
		assert.EqualValues(t, 12<<30, capacity())
		assert.Equal(t, model.VMStopped, got.State)
	})
}
