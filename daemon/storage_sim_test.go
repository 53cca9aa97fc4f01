package daemon_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// TestStoragesOnSimulatedNodes: a simulated node simulates every storage of
// its cluster with its one pool; disks are placed by tags all the same, and
// two storages on one backend do not copy an image's base onto itself (a
// create failed so before).
func TestStoragesOnSimulatedNodes(t *testing.T) {
	ctx := t.Context()
	e := newSimStorages(t, dbtest.SQLite(t), model.StorageRef{Name: "local", Driver: "file", Path: "/var/lib/virtplane/local"},
		model.StorageRef{Name: "fast", Driver: "lvm", Path: "vgfast", Tags: []string{"ssd"}, Options: map[string]string{"no_activation": "true"}})
	c, cl, pool, img := e.c, e.cl, e.pool, e.img
	for _, want := range []struct{ name, storage string }{{"on-ssd", "fast"}, {"plain", "local"}, {"again", "fast"}} {
		var tags []string
		if want.storage == "fast" {
			tags = []string{"ssd"}
		}
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: want.name, ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5, StorageTags: tags}, "")
		succeeded(t, c, tk, err)
		vm, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, want.storage, vm.Storage, "vm %s", want.name)
	}

	// Data disks are placed one by one, by their own tags.
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "data", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5,
		Disks: []api.DiskRequest{{SizeGiB: 2, StorageTags: []string{"ssd"}}, {SizeGiB: 1}}}, "")
	succeeded(t, c, tk, err)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, vm.Disks, 2)
	assert.Equal(t, "local", vm.Storage)
	assert.Equal(t, "fast", vm.Disks[0].Storage, "vdb asked for ssd")
	assert.Equal(t, "local", vm.Disks[1].Storage, "vdc: the first enabled storage")
	usage, err := c.StorageUsage(ctx, cl.ID)
	require.NoError(t, err)
	for _, u := range usage {
		want := map[string]int{"local": 2, "fast": 3}[u.Storage] // VMs with any disk there
		assert.Equal(t, want, u.VMs, "storage %s", u.Storage)
	}
	// A disk no storage has room for fails with the reason of each.
	tk, err = c.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 60000})
	err = taskFailed(t, c, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	assert.Contains(t, err.Error(), "local: ")
	assert.Contains(t, err.Error(), "fast: ")
	tk, err = c.AttachVMDisk(ctx, vm.ID, api.DiskRequest{SizeGiB: 1, StorageTags: []string{"ssd"}})
	succeeded(t, c, tk, err)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, vm.Disks, 3)
	assert.Equal(t, "fast", vm.Disks[2].Storage)
}

// TestLiveDiskMoveOnSimulatedNodes: a running VM's disk moves to another
// storage with the VM running; a copy the hypervisor fails leaves it on its
// old disk with nothing on the new storage.
func TestLiveDiskMoveOnSimulatedNodes(t *testing.T) {
	ctx := t.Context()
	e := newSimStorages(t, dbtest.SQLite(t), model.StorageRef{Name: "local", Driver: "file", Path: "/var/lib/virtplane/local"},
		model.StorageRef{Name: "other", Driver: "lvm", Path: "vgother", Options: map[string]string{"no_activation": "true"}})
	srv, c, cl, nd, pool, img := e.srv, e.c, e.cl, e.nd, e.pool, e.img
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "mover", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5, Storage: "local",
		Disks: []api.DiskRequest{{SizeGiB: 1, Storage: "local"}}}, "")
	succeeded(t, c, tk, err)
	drvAny, err := srv.Flow.NodeDriver(ctx, nd.ID)
	require.NoError(t, err)
	drv := drvAny.(*simnode.Node)
	dom := flow.DomainName(vm.ID)
	root := func() vmm.Disk {
		d, err := drv.Get(ctx, dom)
		require.NoError(t, err)
		require.Equal(t, vmm.StateRunning, d.State, "the VM keeps running")
		return d.Spec.Disks[0]
	}
	before := root().Source.Path
	usage := func() map[string]int {
		u, err := c.StorageUsage(ctx, cl.ID)
		require.NoError(t, err)
		out := map[string]int{}
		for _, x := range u {
			out[x.Storage] = x.VMs
		}
		return out
	}

	drv.FailNext("CopyDisk", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
	tk, err = c.MoveVMDisk(ctx, vm.ID, "other")
	assert.ErrorIs(t, taskFailed(t, c, tk, err), virtplane.ErrUnavailable)
	assert.Equal(t, before, root().Source.Path, "a failed copy moved the disk")
	got, err := c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", got.Storage)

	tk, err = c.MoveVMDisk(ctx, vm.ID, "other")
	succeeded(t, c, tk, err)
	got, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "other", got.Storage)
	assert.Equal(t, model.VMRunning, got.State)
	assert.NotEqual(t, before, root().Source.Path, "the running disk is on the new volume")
	assert.Equal(t, map[string]int{"local": 1, "other": 1}, usage(), "the data disk stays on local")
	tk, err = c.MoveVMDisk(ctx, vm.ID, "local")
	succeeded(t, c, tk, err)

	// A data disk moves too, live and cold.
	data := func() vmm.Disk {
		d, err := drv.Get(ctx, dom)
		require.NoError(t, err)
		return d.Spec.Disks[1]
	}
	dataBefore := data().Source.Path
	tk, err = c.MoveVMDataDisk(ctx, vm.ID, "vdb", "other")
	succeeded(t, c, tk, err)
	got, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", got.Storage, "the root disk stays")
	assert.Equal(t, "other", got.Disks[0].Storage)
	assert.NotEqual(t, dataBefore, data().Source.Path)
	assert.Equal(t, before, root().Source.Path, "the root disk stays")
	assert.Equal(t, map[string]int{"local": 1, "other": 1}, usage())
	_, err = c.MoveVMDataDisk(ctx, vm.ID, "vdb", "other")
	assertProblem(t, err, 422, "body.storage", "there already")
	_, err = c.MoveVMDataDisk(ctx, vm.ID, "vdq", "other")
	assertProblem(t, err, 404, "body.disk", "no disk vdq")
	tk, err = c.VMAction(ctx, vm.ID, "stop")
	succeeded(t, c, tk, err)
	tk, err = c.MoveVMDataDisk(ctx, vm.ID, "vdb", "local")
	succeeded(t, c, tk, err)
	got, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", got.Disks[0].Storage)
	d, err := drv.Get(ctx, dom)
	require.NoError(t, err)
	assert.Equal(t, dataBefore, d.Spec.Disks[1].Source.Path, "back on the first storage, defined again cold")
	assert.Equal(t, map[string]int{"local": 1, "other": 0}, usage())
}

// TestHalfCopiedBaseIsCopiedAgain: a base volume of an image found in a
// storage without the record a whole copy leaves (a create a crash cut
// short mid-copy) is deleted and copied again before a VM is cloned from it.
func TestHalfCopiedBaseIsCopiedAgain(t *testing.T) {
	ctx := t.Context()
	st := dbtest.SQLite(t)
	fast := model.StorageRef{Name: "fast", Driver: "lvm", Path: "vgfast", Options: map[string]string{"no_activation": "true", "thin_pool": "tp"}}
	e := newSimStorages(t, st, model.StorageRef{Name: "local", Driver: "file", Path: "/var/lib/virtplane/local"}, fast)
	srv, c, cl, nd, pool, img := e.srv, e.c, e.cl, e.nd, e.pool, e.img
	b, err := srv.Backend(ctx, nd, cl)
	require.NoError(t, err)
	fastPool, err := srv.Flow.OpenStorage(ctx, nd, b, cl, fast)
	require.NoError(t, err)
	base := flow.ImageVolume(img.ID)
	_, err = fastPool.Create(ctx, storage.VolumeSpec{Name: base, Size: 1 << 20}) // the half copy
	require.NoError(t, err)

	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "on-fast", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5, Storage: "fast"}, "")
	succeeded(t, c, tk, err)
	v, err := fastPool.Volume(ctx, base)
	require.NoError(t, err)
	assert.NotEqualValues(t, 1<<20, v.Capacity, "the half copy was cloned from")
	own, err := fastPool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, base, own.Parent)
	recs, err := st.ListObjects(ctx, store.KindImageBase, store.ListOptions{Parent: img.ID})
	require.NoError(t, err)
	assert.Len(t, recs, 1, "the whole copy is recorded")

	// A second VM clones the recorded base as it is.
	_, tk, err = c.CreateVM(ctx, api.VMCreateBody{Name: "again", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5, Storage: "fast"}, "")
	succeeded(t, c, tk, err)
	// The records go with the image.
	for _, name := range []string{"on-fast", "again"} {
		vms, err := c.ListVMs(ctx, client.VMListOptions{})
		require.NoError(t, err)
		for _, x := range vms.Items {
			if x.Name == name {
				tk, err := c.DeleteVM(ctx, x.ID)
				succeeded(t, c, tk, err)
			}
		}
	}
	tk, err = c.DeleteImage(ctx, img.ID)
	succeeded(t, c, tk, err)
	recs, err = st.ListObjects(ctx, store.KindImageBase, store.ListOptions{Parent: img.ID})
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestBackupsWithDataDisks: a backup holds the data disks too and a
// restore puts them all back; a restore failing at a data disk brings back
// every disk it had set aside, the root's included.
func TestBackupsWithDataDisks(t *testing.T) {
	ctx := t.Context()
	fast := model.StorageRef{Name: "fast", Driver: "lvm", Path: "vgfast", Options: map[string]string{"no_activation": "true"}}
	local := model.StorageRef{Name: "local", Driver: "file", Path: "/var/lib/virtplane/local"}
	bak := model.StorageRef{Name: "bak", Driver: "lvm", Path: "vgbak", Options: map[string]string{"no_activation": "true"}}
	e := newSimStorages(t, dbtest.SQLite(t), local, fast, bak)
	srv, c, cl, nd, pool, img := e.srv, e.c, e.cl, e.nd, e.pool, e.img
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "db", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5,
		Storage: "local", Disks: []api.DiskRequest{{SizeGiB: 2, Storage: "fast"}}}, "")
	succeeded(t, c, tk, err)
	tk, err = c.VMAction(ctx, vm.ID, "stop")
	succeeded(t, c, tk, err)
	b, err := srv.Backend(ctx, nd, cl)
	require.NoError(t, err)
	pools := map[string]*simnode.Storage{}
	for _, ref := range []model.StorageRef{local, fast, bak} {
		p, err := srv.Flow.OpenStorage(ctx, nd, b, cl, ref)
		require.NoError(t, err)
		pools[ref.Name] = p.(*simnode.Storage)
	}
	names := func(name string) []string {
		vols, err := pools[name].List(ctx)
		require.NoError(t, err)
		var out []string
		for _, v := range vols {
			out = append(out, v.Name)
		}
		return out
	}

	tk, err = c.BackupVM(ctx, vm.ID, "bak")
	succeeded(t, c, tk, err)
	backups, err := c.ListBackups(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, backups, 1)
	bk := backups[0]
	require.Len(t, bk.Disks, 1)
	assert.Equal(t, "vdb", bk.Disks[0].Target)
	assert.ElementsMatch(t, []string{bk.Volume, bk.Disks[0].Volume}, names("bak"), "both copies in the backup storage")

	localBefore, fastBefore := names("local"), names("fast")
	pools["fast"].Fail("Create", virtplane.Errorf(virtplane.ErrUnavailable, "injected"))
	tk, err = c.RestoreBackup(ctx, vm.ID, bk.ID)
	assert.ErrorIs(t, taskFailed(t, c, tk, err), virtplane.ErrUnavailable)
	pools["fast"].Fail("Create", nil)
	assert.Equal(t, localBefore, names("local"), "the root disk is back, nothing set aside is left")
	assert.Equal(t, fastBefore, names("fast"), "the data disk is back, nothing set aside is left")

	tk, err = c.RestoreBackup(ctx, vm.ID, bk.ID)
	succeeded(t, c, tk, err)
	assert.Equal(t, localBefore, names("local"))
	assert.Equal(t, fastBefore, names("fast"))

	tk, err = c.DeleteBackup(ctx, vm.ID, bk.ID)
	succeeded(t, c, tk, err)
	assert.Empty(t, names("bak"), "the backup's copies are gone")
}

// simStorages is a daemon with one cluster of the given storages, one
// simulated node, an IP pool and an image.
type simStorages struct {
	srv  *daemon.Server
	c    *client.Client
	cl   model.Cluster
	nd   model.Node
	pool model.IPPool
	img  model.Image
}

func newSimStorages(t *testing.T, st store.Store, storages ...model.StorageRef) simStorages {
	t.Helper()
	ctx := t.Context()
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "sim-" + t.Name(), DataDir: t.TempDir()})
	require.NoError(t, err)
	e := simStorages{srv: srv, c: serveAdmin(t, srv)}
	e.cl, err = e.c.CreateCluster(ctx, api.ClusterBody{Name: "s", Storages: storages})
	require.NoError(t, err)
	e.nd, err = e.c.AddNode(ctx, api.NodeBody{ClusterID: e.cl.ID, Name: "sim1", Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 100})
	require.NoError(t, err)
	e.pool, err = e.c.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{e.cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/24"}}})
	require.NoError(t, err)
	e.img, err = e.c.CreateImage(ctx, api.ImageBody{Name: "i", OSType: "linux", Source: "/var/lib/images/i.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	return e
}
