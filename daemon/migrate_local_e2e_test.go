package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestMigrateLocalNode moves a running VM live from the node "local" (the
// daemon's own libvirtd, opened through Config.LocalDriver) to a second
// libvirtd on this host named by its socket, and live back: the local node
// counts as the libvirtd at Config.LocalLibvirtSocket. Nothing of the VM
// is left afterwards.
func TestMigrateLocalNode(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	peer := testenv.StartLibvirtHost(t, "vpt-local-peer", "10.234", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-migrate-local-")
	data, images := filepath.Join(dir, "data"), filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(images, 0o755))
	// The local driver keeps its files where the daemon's host drivers do,
	// as virtplaned sets it up: a moved machine finds them.
	local, err := libvirt.New(libvirt.Config{Socket: lv.Socket, StateDir: filepath.Join(data, "vmm")}, libvirt.WithValues(lv.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close() })
	pool, err := file.New(file.Config{Name: "local", Dir: images})
	require.NoError(t, err)
	nl, err := netlink.NewHandle()
	require.NoError(t, err)
	t.Cleanup(nl.Close)
	nft, err := nftables.New()
	require.NoError(t, err)
	ports, err := netport.NewKernelHost(filepath.Join(dir, "ports"), nl, nft)
	require.NoError(t, err)

	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "migrate-local", DataDir: data, DomainType: lv.DomainType,
		// The peer libvirtd has a /run/libvirt of its own (its mount
		// namespace): it reaches this one's socket through the root of a
		// process in the root mount namespace, this test's.
		LocalLibvirtSocket: "/proc/" + strconv.Itoa(os.Getpid()) + "/root" + lv.Socket,
		// And its QEMU reaches this one's over the link between them.
		LocalMigrationAddress: peer.Gateway,
		LocalDriver:           func(context.Context) (vmm.Driver, error) { return local, nil },
		LocalStorage:          func(context.Context) (storage.Pool, error) { return pool, nil },
		LocalPorts:            func(context.Context) (netport.Ports, error) { return ports, nil },
	})
	require.NoError(t, err)
	c := serveAdmin(t, srv)
	there, err := libvirt.New(libvirt.Config{Socket: peer.Socket, StateDir: filepath.Join(dir, "inspect")}, libvirt.WithValues(peer.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = there.Close() })

	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "ml", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)
	n1, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
	require.NoError(t, err)
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "ml", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	guest := testenv.RequireGuest(t)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: guest.Disk, Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	succeeded(t, c, tk, err)
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "ml-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1}, "")
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, h := range []*libvirt.Driver{local, there} {
			_ = h.Stop(context.Background(), flow.DomainName(vm.ID))
			_ = h.Delete(context.Background(), flow.DomainName(vm.ID))
		}
		tap := flow.PortName(vm.ID)
		_ = exec.Command("nft", "delete", "table", "netdev", "vpt-"+tap).Run()
		for _, l := range []string{tap, shaping.IFBName(tap)} {
			_ = exec.Command("ip", "link", "del", l).Run()
		}
	})
	succeeded(t, c, tk, err)
	n2, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "peer", Address: "qemu+unix:///system?socket=" + peer.Socket + "&migration_address=" + peer.Addr + "&netns=" + peer.NS.Name, Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
	require.NoError(t, err)
	_, tk, err = c.ImportImage(ctx, img.ID, api.ImageImportBody{NodeID: n2.ID})
	succeeded(t, c, tk, err)

	// on checks which libvirtd runs the domain.
	on := func(t *testing.T, want *libvirt.Driver, node string) {
		t.Helper()
		for _, h := range []*libvirt.Driver{local, there} {
			d, err := h.Get(ctx, flow.DomainName(vm.ID))
			if h != want {
				assert.ErrorIs(t, err, virtplane.ErrNotFound)
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, vmm.StateRunning, d.State)
		}
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, node, got.NodeID)
	}
	// Both drivers keep the machine's files, its console log with them, in
	// the data directory: QEMU on either host appends to one log.
	console := local.ConsoleLog(flow.DomainName(vm.ID))
	on(t, local, n1.ID)
	tick := guestBooted(t, console, guest.Marker, 1)
	tk, err = c.MigrateVM(ctx, vm.ID, n2.ID)
	succeeded(t, c, tk, err)
	on(t, there, n2.ID)
	guestKeptRunning(t, console, guest.Marker, 1, tick)
	_, tick = testenv.GuestProgress(readFile(t, console), guest.Marker)
	tk, err = c.MigrateVM(ctx, vm.ID, n1.ID)
	succeeded(t, c, tk, err)
	on(t, local, n1.ID)
	guestKeptRunning(t, console, guest.Marker, 1, tick)

	tk, err = c.DeleteVM(ctx, vm.ID)
	succeeded(t, c, tk, err)
	tk, err = c.DeleteImage(ctx, img.ID)
	succeeded(t, c, tk, err)
	vols, err := pool.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, vols)
}
