package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestEndToEndLibvirt drives real libvirtd/QEMU through the API: cluster,
// local node, IP pool, image; a VM on a linked clone of the image, with an
// address from the pool and a network port (on a bridge of its own, with
// anti-spoofing and a bandwidth limit); stop, snapshot, delete; nothing
// left behind.
//
// libvirtd runs in this host's root network namespace, so the port is
// made there: a bridge named vpt-br-* without uplink or address (traffic
// goes nowhere but between the test's VM and the bridge), the VM's tap,
// one nftables netdev table and the tc qdiscs of that tap. All carry vpt
// names and are removed by the delete the test checks, or at cleanup.
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
	nl, err := netlink.NewHandle()
	require.NoError(t, err)
	t.Cleanup(nl.Close)
	nft, err := nftables.New()
	require.NoError(t, err)
	portsDir := filepath.Join(dir, "ports")
	ports, err := netport.NewKernelHost(portsDir, nl, nft)
	require.NoError(t, err)
	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))

	srv, err := daemon.New(daemon.Config{Store: st, Instance: "e2e",
		LocalDriver:  func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalStorage: func(context.Context) (storage.Pool, error) { return pool, nil },
		LocalPorts:   func(context.Context) (netport.Ports, error) { return ports, nil },
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

	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "e2e", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	require.NoError(t, err)
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "e2e", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "blank", OSType: "linux", Source: filepath.Join(imagesDir, "blank.qcow2"), Format: "qcow2", SizeMiB: 64})
	require.NoError(t, err)
	// The image imported into the node's pool (what storage.Importer does).
	_, err = pool.Create(ctx, storage.VolumeSpec{Name: flow.ImageVolume(img.ID), Size: 64 << 20, Format: storage.FormatQcow2})
	require.NoError(t, err)

	vm, task, err := c.CreateVM(ctx, api.VMCreateBody{Name: "e2e-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1,
		Limits: model.Limits{NetMbit: 10}}, "e2e-1")
	require.NoError(t, err)
	tap := flow.PortName(vm.ID)
	t.Cleanup(func() {
		_ = drv.Stop(context.Background(), flow.DomainName(vm.ID))
		_ = drv.Delete(context.Background(), flow.DomainName(vm.ID))
		// What a failed run may have left in the root namespace: only
		// names this test made.
		_ = exec.Command("nft", "delete", "table", "netdev", "vpt-"+tap).Run()
		for _, l := range []string{tap, shaping.IFBName(tap), bridge} {
			_ = exec.Command("ip", "link", "del", l).Run()
		}
	})
	task, err = c.WaitTask(ctx, task.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(task))
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, vm.State)
	assert.Equal(t, node.ID, vm.NodeID)
	require.Len(t, vm.Addresses, 1)
	assert.Equal(t, "198.51.100.2", vm.Addresses[0])

	dom, err := drv.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State, "QEMU runs the domain")
	require.Len(t, dom.Spec.NICs, 1)
	assert.Equal(t, tap, dom.Spec.NICs[0].Tap)
	assert.Equal(t, netport.MAC(vm.ID), dom.Spec.NICs[0].MAC)

	// The port: the tap libvirt made is on the bridge the flow made, the
	// firewall holds the VM's MAC and address, tc shapes it to 10 Mbit/s.
	assert.Contains(t, run(t, "ip", "-d", "link", "show", bridge), "alias "+netport.OwnerTagPrefix)
	assert.Contains(t, run(t, "ip", "link", "show", tap), "master "+bridge)
	table := run(t, "nft", "list", "table", "netdev", "vpt-"+tap)
	assert.Contains(t, table, "198.51.100.2")
	assert.Contains(t, table, "0x"+strings.TrimLeft(strings.ReplaceAll(netport.MAC(vm.ID), ":", ""), "0"))
	assert.Contains(t, run(t, "tc", "class", "show", "dev", tap), "rate 10Mbit")
	assert.Contains(t, run(t, "tc", "qdisc", "show", "dev", shaping.IFBName(tap)), "rate 10Mbit")
	vol, err := pool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "the disk is a linked clone of the image")
	assert.EqualValues(t, 1<<30, vol.Capacity)

	for _, step := range []func() (api.TaskView, error){
		func() (api.TaskView, error) { return c.VMAction(ctx, vm.ID, "stop") },
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
	assert.Len(t, vols, 1, "only the image's base volume stays")
	links := run(t, "ip", "-br", "link")
	for _, l := range []string{tap, shaping.IFBName(tap), bridge} {
		assert.NotContains(t, links, l, "link left behind")
	}
	assert.NotContains(t, run(t, "nft", "list", "tables"), "vpt-"+tap, "firewall left behind")
	left, err := ports.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, left, "port record left behind")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}
