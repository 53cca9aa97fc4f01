package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/lxd"
)

// TestEndToEndLXD drives the real LXD through the API: a cluster of
// virt_type lxd with this host's node, an image that is an alias in LXD's
// image store, a container created with an address from the pool and a
// network port on the cluster's bridge, which runs and answers exec; a
// snapshot, stop, start, delete; nothing left in LXD.
func TestEndToEndLXD(t *testing.T) {
	env := testenv.RequireLXD(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-lxd-e2e-")
	drv, err := lxd.New(lxd.Config{Socket: env.Socket, Pool: env.Pool})
	require.NoError(t, err)
	ports, closePorts, err := netport.OpenKernelHost(filepath.Join(dir, "ports"), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = closePorts() })
	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })

	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "lxd-e2e", DataDir: filepath.Join(dir, "data"),
		LocalLXD:   func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalPorts: func(context.Context) (netport.Ports, error) { return ports, nil },
		// No LocalStorage: containers need no disk from the daemon, their
		// root comes from LXD.
	})
	require.NoError(t, err)
	c := serveAdmin(t, srv)

	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "lxd", VirtType: "lxd", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "lxd1", Address: daemon.LocalAddress})
	require.NoError(t, err)
	assert.Positive(t, node.Cores, "capacity read from the host")
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "lxd", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "busybox", OSType: "linux", Format: "raw", LXDAlias: env.Image})
	require.NoError(t, err)

	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "ct1", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "lxd-1")
	require.NoError(t, err)
	name := flow.DomainName(vm.ID)
	t.Cleanup(func() {
		_ = drv.Stop(context.Background(), name)
		_ = drv.Delete(context.Background(), name)
	})
	succeeded(t, c, tk, err)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, vm.State)
	require.Len(t, vm.Addresses, 1)

	ct, err := drv.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, ct.State, "LXD runs the container")
	assert.Equal(t, 1, ct.Spec.VCPUs)
	res, err := drv.GuestExec(ctx, name, []string{"/bin/sh", "-c", "echo hello from $(hostname)"})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "hello from "+name, strings.TrimSpace(string(res.Stdout)), "the container answers exec")
	// Its NIC is the port: on the cluster's bridge, firewalled with the VM's address.
	tap := flow.PortName(vm.ID)
	assert.Contains(t, run(t, "ip", "link", "show", tap), "master "+bridge)
	assert.Contains(t, run(t, "nft", "list", "table", "netdev", "vpt-"+tap), vm.Addresses[0])

	for _, step := range []func() (api.TaskView, error){
		func() (api.TaskView, error) { return c.Snapshot(ctx, vm.ID, "s1") },
		func() (api.TaskView, error) { return c.VMAction(ctx, vm.ID, "stop") },
		func() (api.TaskView, error) { return c.VMAction(ctx, vm.ID, "start") },
	} {
		tk, err := step()
		succeeded(t, c, tk, err)
	}
	ct, err = drv.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, ct.State)
	snaps, err := drv.ListSnapshots(ctx, name)
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	require.Len(t, vm.Snapshots, 1)
	// LXD here cannot checkpoint (no CRIU): the API says it took the disks.
	assert.Equal(t, model.SnapshotDisk, vm.Snapshots[0].Kind)

	tk, err = c.DeleteVM(ctx, vm.ID)
	succeeded(t, c, tk, err)
	_, err = drv.Get(ctx, name)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "container left behind")
	assert.NotContains(t, run(t, "ip", "-br", "link"), tap, "link left behind")
	left, err := ports.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, left)

	// An image without an alias cannot make containers, and says why.
	plain, err := c.CreateImage(ctx, api.ImageBody{Name: "plain", OSType: "linux", Format: "qcow2", Source: "/nonexistent/x.qcow2"})
	require.NoError(t, err)
	bad, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "ct2", ClusterID: cl.ID, ImageID: plain.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "")
	err = taskFailed(t, c, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "lxd_alias")
	tk, err = c.DeleteVM(ctx, bad.ID)
	succeeded(t, c, tk, err)
}
