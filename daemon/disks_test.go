package daemon_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/vmm"
)

// targets lists the disks of a domain.
func targets(d vmm.VM) []string {
	var out []string
	for _, dk := range d.Spec.Disks {
		out = append(out, dk.Target)
	}
	return out
}

// TestDataDisks: data disks through the API on a simulated node — made
// with the VM, attached to a running VM and to a stopped one, grown,
// detached; the quota counts them; failures injected into the hypervisor
// and the storage leave nothing behind and the VM as it was; a VM's delete
// takes its data disks with it.
func TestDataDisks(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	succeeded(t, e.alice, e.aliceTask, nil)
	drv, pool := e.simParts(t, e.node.ID)

	body := e.vmBody("data")
	body.Disks = []api.DiskRequest{{SizeGiB: 2}, {SizeGiB: 3}}
	body.Limits = model.Limits{DiskIOPS: 500}
	vm, tk, err := e.alice.CreateVM(ctx, body, "")
	succeeded(t, e.alice, tk, err)
	vm, err = e.alice.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	dom := flow.DomainName(vm.ID)
	require.Len(t, vm.Disks, 2)
	assert.Equal(t, []string{"vdb", "vdc"}, []string{vm.Disks[0].Target, vm.Disks[1].Target})
	for _, d := range vm.Disks {
		v, err := pool.Volume(ctx, d.Volume)
		require.NoError(t, err, "disk %s", d.Target)
		assert.EqualValues(t, d.SizeGiB<<30, v.Capacity)
	}
	domain := func() vmm.VM {
		d, err := drv.Get(ctx, dom)
		require.NoError(t, err)
		return d
	}
	assert.Equal(t, []string{"vda", "vdb", "vdc"}, targets(domain()))
	assert.EqualValues(t, 500, domain().Spec.Limits.Disks["vdc"].ReadIOPS, "disk_iops holds for data disks")
	volumes := func() []string {
		vols, err := pool.List(ctx)
		require.NoError(t, err)
		var names []string
		for _, v := range vols {
			names = append(names, v.Name)
		}
		return names
	}

	t.Run("attach to the running VM", func(t *testing.T) {
		tk, err := e.alice.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 4})
		succeeded(t, e.alice, tk, err)
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		require.Len(t, got.Disks, 3)
		assert.Equal(t, "vdd", got.Disks[2].Target)
		assert.Equal(t, []string{"vda", "vdb", "vdc", "vdd"}, targets(domain()))
		assert.Equal(t, vmm.StateRunning, domain().State)
		assert.EqualValues(t, 500, domain().Spec.Limits.Disks["vdd"].WriteIOPS, "the new disk is throttled like the others")
		assert.Contains(t, volumes(), flow.DataVolumeName(vm.ID, "vdd"))
	})
	t.Run("grow a data disk", func(t *testing.T) {
		tk, err := e.alice.ResizeVMDisk(ctx, vm.ID, "vdb", 6)
		succeeded(t, e.alice, tk, err)
		v, err := pool.Volume(ctx, flow.DataVolumeName(vm.ID, "vdb"))
		require.NoError(t, err)
		assert.EqualValues(t, 6<<30, v.Capacity)
		assert.EqualValues(t, 6<<30, drv.DiskSize(dom, "vdb"), "the running guest was told")
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		d, _ := got.DataDisk("vdb")
		assert.EqualValues(t, 6, d.SizeGiB)

		_, err = e.alice.ResizeVMDisk(ctx, vm.ID, "vdb", 5)
		assertProblem(t, err, 422, "body.size_gib", "disks only grow")
		_, err = e.alice.ResizeVMDisk(ctx, vm.ID, "vdx", 9)
		assertProblem(t, err, 404, "path.target", "no data disk vdx")
	})
	t.Run("the quota counts data disks", func(t *testing.T) {
		// web (5) + data (5 root + 6 + 3 + 4) = 23 GiB held.
		limit := int64(25)
		_, err := e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{DiskGiB: &limit})
		require.NoError(t, err)
		_, err = e.alice.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 3})
		assertProblem(t, err, 403, "quota.disk_gib", "disk_gib")
		tk, err := e.alice.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 2})
		succeeded(t, e.alice, tk, err)
		noLimit := int64(-1)
		_, err = e.admin.SetQuota(ctx, e.aliceID, api.QuotaPatch{DiskGiB: &noLimit})
		require.NoError(t, err)
		tk, err = e.alice.DetachVMDisk(ctx, vm.ID, "vde")
		succeeded(t, e.alice, tk, err)
	})
	t.Run("the hypervisor fails the attach: the volume is deleted", func(t *testing.T) {
		before := volumes()
		drv.FailNext("AttachDisk", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
		tk, err := e.alice.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 1})
		assert.ErrorIs(t, taskFailed(t, e.alice, tk, err), virtplane.ErrUnavailable)
		assert.Equal(t, before, volumes(), "the new volume was deleted")
		assert.Equal(t, []string{"vda", "vdb", "vdc", "vdd"}, targets(domain()))
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Len(t, got.Disks, 3)
	})
	t.Run("the storage fails the detach: the disk is plugged back in", func(t *testing.T) {
		pool.Fail("Delete", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
		tk, err := e.alice.DetachVMDisk(ctx, vm.ID, "vdc")
		assert.ErrorIs(t, taskFailed(t, e.alice, tk, err), virtplane.ErrUnavailable)
		pool.Fail("Delete", nil)
		assert.ElementsMatch(t, []string{"vda", "vdb", "vdc", "vdd"}, targets(domain()), "vdc is attached again")
		assert.Contains(t, volumes(), flow.DataVolumeName(vm.ID, "vdc"))
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Len(t, got.Disks, 3)
	})
	t.Run("detach from the running VM", func(t *testing.T) {
		tk, err := e.alice.DetachVMDisk(ctx, vm.ID, "vdc")
		succeeded(t, e.alice, tk, err)
		assert.ElementsMatch(t, []string{"vda", "vdb", "vdd"}, targets(domain()))
		assert.NotContains(t, volumes(), flow.DataVolumeName(vm.ID, "vdc"))
		_, err = e.alice.DetachVMDisk(ctx, vm.ID, "vdc")
		assertProblem(t, err, 404, "path.target", "no data disk vdc")
	})
	t.Run("attach and detach on the stopped VM", func(t *testing.T) {
		tk, err := e.alice.VMAction(ctx, vm.ID, "stop")
		succeeded(t, e.alice, tk, err)
		tk, err = e.alice.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 1})
		succeeded(t, e.alice, tk, err)
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"vda", "vdb", "vdd", "vdc"}, got.DiskTargets(), "the first free target again, in attach order")
		assert.Equal(t, got.DiskTargets(), targets(domain()))
		assert.Equal(t, vmm.StateStopped, domain().State)
		tk, err = e.alice.VMAction(ctx, vm.ID, "start")
		succeeded(t, e.alice, tk, err)
	})
	t.Run("bad requests", func(t *testing.T) {
		bad := e.vmBody("bad")
		bad.Disks = []api.DiskRequest{{SizeGiB: 1, StorageTags: []string{"ssd"}}}
		_, _, err := e.alice.CreateVM(ctx, bad, "")
		assertProblem(t, err, 422, "body.disks[0].storage_tags", "has no storages")
		bad.Disks = []api.DiskRequest{{SizeGiB: 1}, {SizeGiB: 1, Storage: "nvme"}}
		_, _, err = e.alice.CreateVM(ctx, bad, "")
		assertProblem(t, err, 404, "body.disks[1].storage", "no storage")
		bad.Disks = make([]api.DiskRequest, model.MaxDataDisks+1)
		_, _, err = e.alice.CreateVM(ctx, bad, "")
		var p *client.Problem
		require.ErrorAs(t, err, &p)
		assert.Equal(t, 422, p.Status, "nine data disks: %v", err)
		_, err = e.bob.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 1})
		assertProblem(t, err, 404, "path.id", "")
	})
	t.Run("a move to another node is refused for node-local data disks", func(t *testing.T) {
		n2, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "sim2", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
		require.NoError(t, err)
		tk, err := e.admin.MigrateVM(ctx, vm.ID, n2.ID)
		err = taskFailed(t, e.admin, tk, err)
		assert.ErrorIs(t, err, virtplane.ErrNotImplemented)
		assert.Contains(t, err.Error(), "data disk vdb")
		got, err := e.alice.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, e.node.ID, got.NodeID)
		assert.Equal(t, vmm.StateRunning, domain().State)
	})
	t.Run("delete takes the data disks", func(t *testing.T) {
		tk, err := e.alice.DeleteVM(ctx, vm.ID)
		succeeded(t, e.alice, tk, err)
		for _, v := range volumes() {
			assert.NotContains(t, v, vm.ID, "volume %s of the deleted VM", v)
		}
	})
}

// assertProblem requires err to be an API problem of status naming field
// (when given) whose message contains msg.
func assertProblem(t *testing.T, err error, status int, field, msg string) {
	t.Helper()
	var p *client.Problem
	require.ErrorAs(t, err, &p, "want a problem %d on %s", status, field)
	assert.Equal(t, status, p.Status, "%v", err)
	if field != "" {
		assert.Equal(t, field, p.Field(), "%v", err)
	}
	assert.Contains(t, p.Error(), msg)
}

// TestCloneFaults: a clone whose create fails after the disk copy (the
// hypervisor refuses the domain) or at it (the storage refuses the volume)
// leaves no volume, domain or address behind, and the source as it was:
// stopped, and free to start.
func TestCloneFaults(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	succeeded(t, e.alice, e.aliceTask, nil)
	src := e.aliceVM
	tk, err := e.alice.VMAction(ctx, src.ID, "stop")
	succeeded(t, e.alice, tk, err)
	drv, pool := e.simParts(t, e.node.ID)
	for _, fault := range []struct {
		name   string
		inject func()
	}{
		{"the domain is refused after the copy", func() { drv.FailNext("Create", virtplane.Errorf(virtplane.ErrUnavailable, "injected")) }},
		{"the storage refuses the copy", func() { pool.Fail("Create", virtplane.Errorf(virtplane.ErrUnavailable, "injected")) }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			fault.inject()
			defer pool.Fail("Create", nil)
			twin, tk, err := e.alice.CloneVM(ctx, src.ID, "twin", "")
			assert.ErrorIs(t, taskFailed(t, e.alice, tk, err), virtplane.ErrUnavailable)
			_, err = pool.Volume(ctx, flow.VolumeName(twin.ID))
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "the clone's copy was left")
			_, err = drv.Get(ctx, flow.DomainName(twin.ID))
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "the clone's domain was left")
			got, err := e.alice.GetVM(ctx, twin.ID)
			require.NoError(t, err)
			assert.Equal(t, model.VMFailed, got.State)
			assert.Empty(t, got.Addresses, "the clone kept an address")
			tk, err = e.alice.DeleteVM(ctx, twin.ID)
			succeeded(t, e.alice, tk, err)
			s, err := e.alice.GetVM(ctx, src.ID)
			require.NoError(t, err)
			assert.Equal(t, model.VMStopped, s.State, "the source changed")
			_, err = pool.Volume(ctx, flow.VolumeName(src.ID))
			require.NoError(t, err, "the source's disk")
		})
	}
	tk, err = e.alice.VMAction(ctx, src.ID, "start")
	succeeded(t, e.alice, tk, err)
}

// TestCloneWithDataDisks: a full clone copies the source's data disks too,
// each into a volume of its own at the same target and size.
func TestCloneWithDataDisks(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	succeeded(t, e.alice, e.aliceTask, nil)
	body := e.vmBody("src")
	body.Disks = []api.DiskRequest{{SizeGiB: 2}, {SizeGiB: 3}}
	src, tk, err := e.alice.CreateVM(ctx, body, "")
	succeeded(t, e.alice, tk, err)
	tk, err = e.alice.VMAction(ctx, src.ID, "stop")
	succeeded(t, e.alice, tk, err)
	drv, pool := e.simParts(t, e.node.ID)
	twin, tk, err := e.alice.CloneVM(ctx, src.ID, "twin", "")
	succeeded(t, e.alice, tk, err)
	twin, err = e.alice.GetVM(ctx, twin.ID)
	require.NoError(t, err)
	require.Len(t, twin.Disks, 2)
	for i, d := range twin.Disks {
		assert.Equal(t, []string{"vdb", "vdc"}[i], d.Target)
		assert.Equal(t, flow.DataVolumeName(twin.ID, d.Target), d.Volume)
		v, err := pool.Volume(ctx, d.Volume)
		require.NoError(t, err, "the clone's %s", d.Target)
		assert.EqualValues(t, d.SizeGiB<<30, v.Capacity)
		assert.Empty(t, v.Parent, "a full copy")
	}
	dom, err := drv.Get(ctx, flow.DomainName(twin.ID))
	require.NoError(t, err)
	assert.Equal(t, []string{"vda", "vdb", "vdc"}, targets(dom))
	// The source keeps its own.
	for _, d := range []string{"vdb", "vdc"} {
		_, err := pool.Volume(ctx, flow.DataVolumeName(src.ID, d))
		require.NoError(t, err)
	}
}
