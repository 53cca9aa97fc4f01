package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestEndToEndLibvirt drives real libvirtd/QEMU through the API: cluster,
// local node, IP pool, image (the test guest's bootable disk); a VM on a
// linked clone of the image, with an address from the pool and a network
// port (on a bridge of its own, with anti-spoofing and a bandwidth limit)
// that boots: its console shows the guest's marker and the cloud-init seed
// the guest read (its name and address); stop, snapshot, delete; nothing
// left behind.
//
// libvirtd runs in this host's root network namespace, so the port is
// made there: a bridge named vpt-br-* without uplink or address (traffic
// goes nowhere but between the test's VM and the bridge), the VM's tap,
// one nftables netdev table and the tc qdiscs of that tap. All carry vpt
// names and are removed by the delete the test checks, or at cleanup.
func TestEndToEndLibvirt(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	guest := testenv.RequireGuest(t)
	t.Run("sqlite", func(t *testing.T) { endToEnd(t, lv, guest, dbtest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { endToEnd(t, lv, guest, dbtest.Postgres(t)) })
}

func endToEnd(t *testing.T, lv testenv.Libvirt, guest testenv.Guest, st store.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-e2e-")
	imagesDir, stateDir := filepath.Join(dir, "images"), filepath.Join(dir, "vmm")
	require.NoError(t, os.MkdirAll(imagesDir, 0o755))
	require.NoError(t, os.MkdirAll(stateDir, 0o755))
	drv, err := libvirt.New(libvirt.Config{Socket: lv.Socket, URI: lv.URI, StateDir: stateDir}, libvirt.WithValues(lv.Values()))
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

	srv, err := daemon.New(daemon.Config{Store: st, Instance: "e2e", DataDir: filepath.Join(dir, "data"),
		LocalDriver:  func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalStorage: func(context.Context) (storage.Pool, error) { return pool, nil },
		LocalPorts:   func(context.Context) (netport.Ports, error) { return ports, nil },
	})
	require.NoError(t, err)
	c := serveAdmin(t, srv)

	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "e2e", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	require.NoError(t, err)
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "e2e", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}, {Range: "2001:db8:e2e::/64", Gateway: "2001:db8:e2e::1"}}})
	require.NoError(t, err)
	// The OS image: the test guest's bootable disk on the daemon's host,
	// and a blank disk served over HTTP on loopback.
	srcDir := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(srcDir, 0o755))
	src := guest.Disk
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(srcDir, "blank.qcow2"), "64M").CombinedOutput()
	require.NoError(t, err, string(out))
	files := httptest.NewServer(http.FileServer(http.Dir(srcDir)))
	t.Cleanup(files.Close)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: src, Format: "qcow2"})
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
	assert.EqualValues(t, 48, img.SizeMiB)
	base, err := pool.Volume(ctx, flow.ImageVolume(img.ID))
	require.NoError(t, err)
	assert.EqualValues(t, 48<<20, base.Capacity)
	// And from a URL, into the node only.
	web, err := c.CreateImage(ctx, api.ImageBody{Name: "blank-web", OSType: "linux", Source: files.URL + "/blank.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err = c.ImportImage(ctx, web.ID, api.ImageImportBody{NodeID: node.ID})
	succeeded(t, c, tk, err)
	_, err = pool.Volume(ctx, flow.ImageVolume(web.ID))
	require.NoError(t, err)

	vm, task, err := c.CreateVM(ctx, api.VMCreateBody{Name: "e2e-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1,
		DualStack: true, Limits: model.Limits{NetMbit: 10, BlockInPorts: []string{"23/tcp"}, BlockOutPorts: []string{"25/tcp", "6000-6010/udp"}}}, "e2e-1")
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
	require.Len(t, vm.Addresses, 2, "dual stack")
	assert.True(t, netip.MustParsePrefix("198.51.100.0/28").Contains(netip.MustParseAddr(vm.Addresses[0])), vm.Addresses[0])
	assert.True(t, netip.MustParsePrefix("2001:db8:e2e::/64").Contains(netip.MustParseAddr(vm.Addresses[1])), vm.Addresses[1])

	dom, err := drv.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State, "QEMU runs the domain")
	// The guest booted from its linked clone and read its seed.
	console, err := testenv.WaitConsole(ctx, drv.ConsoleLog(flow.DomainName(vm.ID)), "VPT-SEED end", 2*time.Minute)
	require.NoError(t, err, "the guest did not boot and read its seed")
	assert.Contains(t, console, guest.Marker)
	assert.Contains(t, testenv.GuestSeed(console, "meta-data"), "local-hostname: e2e-vm")
	netcfg := strings.Join(testenv.GuestSeed(console, "network-config"), "\n")
	assert.Contains(t, netcfg, "addresses: ["+vm.Addresses[0]+"/28, "+vm.Addresses[1]+"/64]", "the addresses the guest was given, both families")
	assert.Contains(t, netcfg, "gateway4: 198.51.100.1")
	assert.Contains(t, netcfg, "gateway6: 2001:db8:e2e::1")
	require.Len(t, dom.Spec.NICs, 1)
	assert.Equal(t, tap, dom.Spec.NICs[0].Tap)
	assert.Equal(t, netport.MAC(vm.ID), dom.Spec.NICs[0].MAC)

	// The port: the tap libvirt made is on the bridge the flow made, the
	// firewall holds the VM's MAC and address, tc shapes it to 10 Mbit/s.
	assert.Contains(t, run(t, "ip", "-d", "link", "show", bridge), "alias "+netport.OwnerTagPrefix)
	assert.Contains(t, run(t, "ip", "link", "show", tap), "master "+bridge)
	table := run(t, "nft", "list", "table", "netdev", "vpt-"+tap)
	assert.Contains(t, table, vm.Addresses[0])
	assert.Contains(t, table, vm.Addresses[1], "the VM may send from its IPv6 address")
	assert.Contains(t, table, "0x"+strings.TrimLeft(strings.ReplaceAll(netport.MAC(vm.ID), ":", ""), "0"))
	// The port policy: blocked ports from the VM (its ingress chain) and
	// towards it (egress), as nft lists them.
	fromVM, toVM, ok := strings.Cut(table, "chain to-vm")
	require.True(t, ok, table)
	assert.Contains(t, fromVM, "tcp dport 25-25 drop")
	assert.Contains(t, fromVM, "udp dport 6000-6010 drop")
	assert.Contains(t, toVM, "tcp dport 23-23 drop")
	assert.NotContains(t, toVM, "dport 25", table)
	assert.Contains(t, run(t, "tc", "class", "show", "dev", tap), "rate 10Mbit")
	assert.Contains(t, run(t, "tc", "qdisc", "show", "dev", shaping.IFBName(tap)), "rate 10Mbit")
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
	links := run(t, "ip", "-br", "link")
	for _, l := range []string{tap, shaping.IFBName(tap), bridge} {
		assert.NotContains(t, links, l, "link left behind")
	}
	assert.NotContains(t, run(t, "nft", "list", "tables"), "vpt-"+tap, "firewall left behind")
	left, err := ports.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, left, "port record left behind")

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

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}
