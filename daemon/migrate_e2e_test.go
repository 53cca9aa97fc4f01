package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
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
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// TestMigrateLibvirt moves VMs between two real libvirtd "hosts" through
// the API: the local libvirtd and a second one in its own namespaces, both
// added as nodes by their sockets. In a cluster whose nodes keep their
// disks apart, a running VM moves live with its disk mirrored to the other
// host's volume, then, stopped, back cold (qemu-img copies the disk) and
// boots; in a cluster whose nodes share a file storage directory, a running
// VM moves live with memory only (libvirt peer-to-peer migration).
// Nothing is left behind afterwards.
func TestMigrateLibvirt(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	peer := testenv.StartLibvirtHost(t, "vpt-daemon-peer", "10.233", 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-migrate-")
	data := filepath.Join(dir, "data")

	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "migrate", DataDir: data, DomainType: lv.DomainType})
	require.NoError(t, err)
	c := serveAdmin(t, srv)

	// The two hosts as the test sees them.
	hosts := map[string]*libvirt.Driver{}
	for name, sock := range map[string]string{"here": lv.Socket, "peer": peer.Socket} {
		d, err := libvirt.New(libvirt.Config{Socket: sock, StateDir: filepath.Join(dir, "inspect")}, libvirt.WithValues(lv.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		hosts[name] = d
	}
	here := "qemu+unix:///system?socket=" + lv.Socket
	// The peer's libvirtd, its taps and so the VMs' ports live in its own
	// network namespace.
	there := "qemu+unix:///system?socket=" + peer.Socket + "&migration_address=" + peer.Addr + "&netns=" + peer.NS.Name
	// ip runs a command in the root namespace, or in the peer's.
	ip := func(t *testing.T, inPeer bool, args ...string) string {
		t.Helper()
		if inPeer {
			args = append([]string{"-n", peer.NS.Name}, args...)
		}
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %v: %s", args, out)
		return string(out)
	}
	nft := func(t *testing.T, inPeer bool) string {
		t.Helper()
		cmd := exec.Command("nft", "list", "tables")
		if inPeer {
			cmd = exec.Command("ip", "netns", "exec", peer.NS.Name, "nft", "list", "tables")
		}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}

	// The image boots the test guest and holds a marker, which VMs read
	// through their linked clones and which every copy of their disks must
	// carry.
	guest := testenv.RequireGuest(t)
	const marker, offset = "VIRTPLANE-MIGRATED-DATA", 56 << 20
	src := filepath.Join(dir, "marked.qcow2")
	testenv.MarkedGuestDisk(t, guest, src, marker, offset)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "marked", OSType: "linux", Source: src, Format: "qcow2"})
	require.NoError(t, err)

	// setup makes a cluster with a node on this host's libvirtd, an IP pool
	// and the image, then a running VM there; then the peer joins.
	var bridges []string
	setup := func(t *testing.T, name string, storages []model.StorageRef) (model.VM, model.Node, model.Node) {
		// A bridge of the test's own: made in a namespace when a port there
		// needs it, removed with its last port.
		bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
		bridges = append(bridges, bridge)
		cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: name, VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge, Storages: storages})
		require.NoError(t, err)
		n1, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "here", Address: here, Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
		require.NoError(t, err)
		ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: name, ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
		require.NoError(t, err)
		_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
		succeeded(t, c, tk, err)
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: name + "-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1}, "")
		require.NoError(t, err)
		t.Cleanup(func() {
			for _, h := range hosts {
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
		n2, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "peer", Address: there, Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
		require.NoError(t, err)
		_, tk, err = c.ImportImage(ctx, img.ID, api.ImageImportBody{NodeID: n2.ID})
		succeeded(t, c, tk, err)
		vm, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		require.Equal(t, n1.ID, vm.NodeID)
		return vm, n1, n2
	}
	// on checks where the domain is and in what state, and that its
	// network port (firewall table; the tap on the bridge while it runs)
	// is in that host's namespace only.
	on := func(t *testing.T, vm model.VM, host string, state vmm.State) {
		t.Helper()
		tap := flow.PortName(vm.ID)
		for name, h := range hosts {
			d, err := h.Get(ctx, flow.DomainName(vm.ID))
			tables := nft(t, name == "peer")
			if name != host {
				assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left on %s", name)
				assert.NotContains(t, tables, "vpt-"+tap, "firewall left on %s", name)
				assert.NotContains(t, ip(t, name == "peer", "-br", "link"), tap, "tap left on %s", name)
				continue
			}
			require.NoError(t, err, "domain on %s", name)
			assert.Equal(t, state, d.State, "on %s", name)
			assert.Contains(t, tables, "vpt-"+tap, "the firewall is on %s", name)
			if state == vmm.StateRunning {
				require.Len(t, d.Spec.NICs, 1)
				assert.Contains(t, ip(t, name == "peer", "link", "show", tap), "master "+d.Spec.NICs[0].Bridge, "the tap on %s is on the bridge", name)
			}
		}
	}
	// The daemon's libvirt nodes on this host keep their machines' files
	// (the serial console log) in its data directory: one log per VM, which
	// QEMU on either host appends to.
	consoleLog := func(vm model.VM) string {
		return filepath.Join(data, "vmm", flow.DomainName(vm.ID), "console.log")
	}
	booted := func(t *testing.T, vm model.VM, n int) int { return guestBooted(t, consoleLog(vm), guest.Marker, n) }
	keptRunning := func(t *testing.T, vm model.VM, boots, before int) {
		guestKeptRunning(t, consoleLog(vm), guest.Marker, boots, before)
	}
	volume := func(node string, vmID string) string {
		p, err := srv.Flow.NodePool(ctx, node)
		require.NoError(t, err)
		v, err := p.Volume(ctx, flow.VolumeName(vmID))
		if err != nil {
			return ""
		}
		return v.Attachment.Path
	}

	t.Run("storage apart: live with the disk mirrored, then cold back", func(t *testing.T) {
		vm, n1, n2 := setup(t, "apart", nil)
		on(t, vm, "here", vmm.StateRunning)
		srcDisk := volume(n1.ID, vm.ID)
		require.NotEmpty(t, srcDisk)
		tick := booted(t, vm, 1)

		// Live: libvirt mirrors the disk into a volume made on the peer.
		tk, err := c.MigrateVM(ctx, vm.ID, n2.ID)
		succeeded(t, c, tk, err)
		on(t, vm, "peer", vmm.StateRunning)
		keptRunning(t, vm, 1, tick)
		assert.Empty(t, volume(n1.ID, vm.ID), "the source's disk is gone")
		dstDisk := volume(n2.ID, vm.ID)
		require.NotEmpty(t, dstDisk)
		assert.NotEqual(t, srcDisk, dstDisk)
		d, err := hosts["peer"].Get(ctx, flow.DomainName(vm.ID))
		require.NoError(t, err)
		assert.Equal(t, dstDisk, d.Spec.Disks[0].Source.Path, "QEMU on the peer runs on the peer's volume")
		assert.True(t, testenv.DiskHolds(t, dstDisk, marker, offset), "the disk was mirrored, the image's data with it")
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, n2.ID, got.NodeID)
		assert.Equal(t, model.VMRunning, got.State)

		// Cold: qemu-img copies the disk back; the VM boots here again.
		tk, err = c.VMAction(ctx, vm.ID, "stop")
		succeeded(t, c, tk, err)
		tk, err = c.MigrateVM(ctx, vm.ID, n1.ID)
		succeeded(t, c, tk, err)
		on(t, vm, "here", vmm.StateStopped)
		assert.Empty(t, volume(n2.ID, vm.ID), "the peer's disk is gone")
		backDisk := volume(n1.ID, vm.ID)
		require.NotEmpty(t, backDisk)
		assert.True(t, testenv.DiskHolds(t, backDisk, marker, offset), "qemu-img copied the data back")
		b, _ := os.ReadFile(consoleLog(vm)) // the cold move may have started a new log
		boots, _ := testenv.GuestProgress(string(b), guest.Marker)
		tk, err = c.VMAction(ctx, vm.ID, "start")
		succeeded(t, c, tk, err)
		on(t, vm, "here", vmm.StateRunning)
		booted(t, vm, boots+1) // the copied disk boots
		d, err = hosts["here"].Get(ctx, flow.DomainName(vm.ID))
		require.NoError(t, err)
		assert.Equal(t, backDisk, d.Spec.Disks[0].Source.Path)
		got, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, n1.ID, got.NodeID)

		tk, err = c.DeleteVM(ctx, vm.ID)
		succeeded(t, c, tk, err)
		on(t, vm, "", "")
		assert.Empty(t, volume(n1.ID, vm.ID))
	})
	t.Run("live, shared storage", func(t *testing.T) {
		shared := filepath.Join(dir, "shared")
		vm, n1, n2 := setup(t, "shared", []model.StorageRef{{Name: "nfs", Driver: "file", Path: shared}})
		on(t, vm, "here", vmm.StateRunning)
		disk := volume(n1.ID, vm.ID)
		require.Equal(t, disk, volume(n2.ID, vm.ID), "both nodes see the one disk")
		tick := booted(t, vm, 1)
		tk, err := c.MigrateVM(ctx, vm.ID, "")
		succeeded(t, c, tk, err)
		on(t, vm, "peer", vmm.StateRunning)
		keptRunning(t, vm, 1, tick)
		assert.Equal(t, disk, volume(n2.ID, vm.ID), "the disk stayed where it was")
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, n2.ID, got.NodeID)

		tk, err = c.DeleteVM(ctx, vm.ID)
		succeeded(t, c, tk, err)
		on(t, vm, "", "")
		assert.Empty(t, volume(n2.ID, vm.ID))
	})
	t.Run("nothing left", func(t *testing.T) {
		tk, err := c.DeleteImage(ctx, img.ID)
		succeeded(t, c, tk, err)
		for _, d := range []string{filepath.Join(dir, "shared"), filepath.Join(data, "vmm"), filepath.Join(data, "image-cache")} {
			entries, err := os.ReadDir(d)
			require.NoError(t, err)
			assert.Empty(t, entries, d)
		}
		nodes, err := filepath.Glob(filepath.Join(data, "nodes", "*", "images", "*"))
		require.NoError(t, err)
		assert.Empty(t, nodes)
		for _, inPeer := range []bool{false, true} {
			links := ip(t, inPeer, "-br", "link")
			for _, b := range bridges {
				assert.NotContains(t, links, b, "bridge left behind (peer: %v)", inPeer)
			}
		}
	})
}
