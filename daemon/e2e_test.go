package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestEndToEndLibvirt drives real libvirtd/QEMU through the API: cluster,
// local node, IP pool, image; a VM on a linked clone of the image, with an
// address from the pool; stop, snapshot, delete; nothing left behind.
func TestEndToEndLibvirt(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	t.Run("sqlite", func(t *testing.T) { endToEnd(t, lv, dbtest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { endToEnd(t, lv, dbtest.Postgres(t)) })
}

func endToEnd(t *testing.T, lv testenv.Libvirt, st store.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("/var/tmp", "vpt-e2e-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	imagesDir, stateDir := filepath.Join(dir, "images"), filepath.Join(dir, "vmm")
	require.NoError(t, os.MkdirAll(imagesDir, 0o755))
	require.NoError(t, os.MkdirAll(stateDir, 0o755))
	drv, err := libvirt.New(libvirt.Config{Socket: lv.Socket, URI: lv.URI, StateDir: stateDir})
	require.NoError(t, err)
	pool, err := file.New(file.Config{Name: "local", Dir: imagesDir})
	require.NoError(t, err)

	srv, err := daemon.New(daemon.Config{Store: st, Instance: "e2e", DataDir: filepath.Join(dir, "data"),
		LocalDriver:  func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalStorage: func(context.Context) (storage.Pool, error) { return pool, nil },
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); stop(); <-done })
	token, err := srv.Bootstrap(ctx, "admin-password")
	require.NoError(t, err)
	c := client.New(hs.URL, token)

	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "e2e", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	require.NoError(t, err)
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "e2e", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	// The OS image: a qcow2 file on the daemon's host, and the same served
	// over HTTP on loopback.
	srcDir := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(srcDir, 0o755))
	src := filepath.Join(srcDir, "blank.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "64M").CombinedOutput()
	require.NoError(t, err, string(out))
	files := httptest.NewServer(http.FileServer(http.Dir(srcDir)))
	t.Cleanup(files.Close)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "blank", OSType: "linux", Source: src, Format: "qcow2"})
	require.NoError(t, err)

	// A VM of an image not imported yet fails, and says what to do.
	early, task, err := c.CreateVM(ctx, api.VMCreateBody{Name: "too-early", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "")
	err = taskFailed(t, c, task, err)
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	assert.Contains(t, err.Error(), "/v1/images/"+img.ID+"/import")
	tk, err := c.DeleteVM(ctx, early.ID)
	succeeded(t, c, tk, err)

	// Import through the API: qemu-img converts the file into the pool.
	_, tk, err = c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	succeeded(t, c, tk, err)
	img, err = c.GetImage(ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, model.ImageReady, img.State)
	assert.Equal(t, []string{node.ID}, img.Nodes)
	assert.EqualValues(t, 64, img.SizeMiB)
	base, err := pool.Volume(ctx, flow.ImageVolume(img.ID))
	require.NoError(t, err)
	assert.EqualValues(t, 64<<20, base.Capacity)
	// And from a URL, into the node only.
	web, err := c.CreateImage(ctx, api.ImageBody{Name: "blank-web", OSType: "linux", Source: files.URL + "/blank.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err = c.ImportImage(ctx, web.ID, api.ImageImportBody{NodeID: node.ID})
	succeeded(t, c, tk, err)
	_, err = pool.Volume(ctx, flow.ImageVolume(web.ID))
	require.NoError(t, err)

	vm, task, err := c.CreateVM(ctx, api.VMCreateBody{Name: "e2e-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "e2e-1")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = drv.Stop(context.Background(), flow.DomainName(vm.ID))
		_ = drv.Delete(context.Background(), flow.DomainName(vm.ID))
	})
	task, err = c.WaitTask(ctx, task.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(task))
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, vm.State)
	assert.Equal(t, node.ID, vm.NodeID)
	require.Len(t, vm.Addresses, 1)
	assert.True(t, netip.MustParsePrefix("198.51.100.0/28").Contains(netip.MustParseAddr(vm.Addresses[0])), vm.Addresses[0])

	dom, err := drv.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State, "QEMU runs the domain")
	vol, err := pool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "the disk is a linked clone of the image")
	assert.EqualValues(t, 1<<30, vol.Capacity)

	// Grow the disk while QEMU runs the domain (QEMU grows the file), then
	// while it is stopped (qemu-img grows it).
	tk, err = c.ResizeVM(ctx, vm.ID, 0, 0, 2)
	succeeded(t, c, tk, err)
	vol, err = pool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.EqualValues(t, 2<<30, vol.Capacity, "QEMU grew the running domain's disk")
	assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "still a linked clone")

	for _, step := range []func() (api.TaskView, error){
		func() (api.TaskView, error) { return c.VMAction(ctx, vm.ID, "stop") },
		func() (api.TaskView, error) { return c.ResizeVM(ctx, vm.ID, 0, 0, 3) },
		func() (api.TaskView, error) { return c.Snapshot(ctx, vm.ID, "s1") },
	} {
		tk, err := step()
		require.NoError(t, err)
		tk, err = c.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		require.NoError(t, client.TaskError(tk))
	}
	dom, err = drv.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateStopped, dom.State)
	vol, err = pool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.EqualValues(t, 3<<30, vol.Capacity, "qemu-img grew the stopped domain's disk")
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.EqualValues(t, 3, vm.DiskGiB)

	del, err := c.DeleteVM(ctx, vm.ID)
	require.NoError(t, err)
	del, err = c.WaitTask(ctx, del.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(del))

	_, err = drv.Get(ctx, flow.DomainName(vm.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left behind")
	_, err = pool.Volume(ctx, flow.VolumeName(vm.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "volume left behind")
	allocs, err := srv.IPAM.LookupOwner(ctx, ipam.Owner{VM: vm.ID})
	require.NoError(t, err)
	assert.Empty(t, allocs, "address left behind")
	vols, err := pool.List(ctx)
	require.NoError(t, err)
	assert.Len(t, vols, 2, "only the images' base volumes stay")

	// Deleting the images removes their bases and the fetched file.
	for _, id := range []string{img.ID, web.ID} {
		tk, err := c.DeleteImage(ctx, id)
		succeeded(t, c, tk, err)
	}
	vols, err = pool.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, vols, "volumes left behind")
	cache, err := os.ReadDir(filepath.Join(dir, "data", "image-cache"))
	require.NoError(t, err)
	assert.Empty(t, cache, "fetched images left behind")
}
