//go:build ceph

package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/ceph"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// problemAt requires err to be an API problem naming location, and
// returns its message.
func problemAt(t *testing.T, err error, location string) string {
	t.Helper()
	var p *client.Problem
	require.ErrorAs(t, err, &p, "want a problem at %s", location)
	var locs []string
	for _, e := range p.Errors {
		locs = append(locs, e.Location)
		if e.Location == location {
			return e.Message
		}
	}
	require.Failf(t, "the problem names another field", "%s: fields %v, want %s", p.Error(), locs, location)
	return ""
}

// iscsiTarget makes a tgt target of the test's own on the environment's
// tgtd (its shared target and LUNs are not touched), removed at the end.
func iscsiTarget(t *testing.T, env testenv.ISCSI) (tid int, iqn string) {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(9000))
	require.NoError(t, err)
	tid = 10000 + int(n.Int64())
	iqn = "iqn.2026-12.io.virtplane:e2e-" + strconv.Itoa(tid)
	cp := env.ControlPort
	if cp == "" {
		cp = "0"
	}
	tgtadm := func(args ...string) {
		out, err := exec.Command("tgtadm", append([]string{"-C", cp, "--lld", "iscsi"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
	}
	tgtadm("--op", "new", "--mode", "target", "--tid", strconv.Itoa(tid), "-T", iqn)
	t.Cleanup(func() {
		_ = exec.Command("tgtadm", "-C", cp, "--lld", "iscsi", "--op", "delete", "--force", "--mode", "target", "--tid", strconv.Itoa(tid)).Run()
	})
	tgtadm("--op", "bind", "--mode", "target", "--tid", strconv.Itoa(tid), "-I", "ALL")
	return tid, iqn
}

// TestStoragesEndToEnd drives cluster storages of every driver through the
// API on real components: this host's libvirtd and QEMU, the environment's
// Ceph, LVM volume group and tgt. A VM with its root disk on Ceph (a linked
// clone of the image copied into RBD) and one on an iSCSI LUN (a full
// copy: LUNs do not clone) boot and print their marker; bad settings are
// refused naming the field with nothing changed; tags place disks; a disk
// no storage can hold fails saying why of each; everything goes on delete.
func TestStoragesEndToEnd(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	guest := testenv.RequireGuest(t)
	cph := testenv.RequireCeph(t)
	lvmEnv := testenv.RequireLVM(t)
	san := testenv.RequireISCSI(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	dir := hostTempDir(t, "vpt-storages-")
	stateDir, ownDir, lunDir := filepath.Join(dir, "vmm"), filepath.Join(dir, "own"), filepath.Join(dir, "luns")
	for _, d := range []string{stateDir, ownDir, lunDir} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	drv, err := libvirt.New(libvirt.Config{Socket: lv.Socket, URI: lv.URI, StateDir: stateDir}, libvirt.WithValues(lv.Values()))
	require.NoError(t, err)
	own, err := file.New(file.Config{Name: "own", Dir: ownDir})
	require.NoError(t, err)
	nl, err := netlink.NewHandle()
	require.NoError(t, err)
	t.Cleanup(nl.Close)
	nft, err := nftables.New()
	require.NoError(t, err)
	ports, err := netport.NewKernelHost(filepath.Join(dir, "ports"), nl, nft)
	require.NoError(t, err)
	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, randUint32(t)))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })

	faulty := &failingCreate{Driver: drv}
	st := dbtest.SQLite(t)
	// start starts the daemon on the test's store and data directory (again
	// after a stop).
	start := restartableWith(t, func() daemon.Config {
		return daemon.Config{Store: st, Instance: "storages", DataDir: filepath.Join(dir, "data"),
			LocalDriver:  func(context.Context) (vmm.Driver, error) { return faulty, nil },
			LocalStorage: func(context.Context) (storage.Pool, error) { return own, nil },
			LocalPorts:   func(context.Context) (netport.Ports, error) { return ports, nil },
		}
	})
	srv, c, stop := start()

	drivers, err := c.StorageDrivers(ctx)
	require.NoError(t, err)
	shared := map[string]bool{}
	for _, d := range drivers {
		shared[d.Name] = d.Shared
	}
	assert.Equal(t, map[string]bool{"file": false, "lvm": false, "ceph": true, "san-lvm": true, "san-iscsi": true}, shared, "the drivers the API lists")

	tid, iqn := iscsiTarget(t, san)
	files := model.StorageRef{Name: "local", Driver: "file", Path: filepath.Join(dir, "files"), Default: true, Tags: []string{"bulk"}}
	rbd := model.StorageRef{Name: "rbd", Driver: "ceph", Path: cph.Pool, Tags: []string{"ssd", "shared"}, DiskOvercommit: 16,
		Options: map[string]string{"conf": cph.Conf, "user": cph.User, "monitors": cph.Monitors}}
	lun := model.StorageRef{Name: "lun", Driver: "san-iscsi", Path: iqn, Tags: []string{"shared"},
		Options: map[string]string{"portal": san.Portal, "tid": strconv.Itoa(tid), "dir": lunDir, "control_port": orZero(san.ControlPort)}}
	vg := model.StorageRef{Name: "vg", Driver: "lvm", Path: lvmEnv.VG, Tags: []string{"bulk"},
		// lvm2 here is metadata only (no device-mapper): LVs are records,
		// so no VM boots from this storage; it is checked, not used.
		Options: map[string]string{"env": strings.Join(lvmEnv.Env(), ","), "no_activation": "true"}}
	body := func(st ...model.StorageRef) api.ClusterBody {
		return api.ClusterBody{Name: "stor", VirtType: "kvm", CPUOvercommit: 4, NetworkMode: "bridge", Bridge: bridge, Storages: st}
	}

	// Bad settings: refused naming the field; no cluster is made.
	missingPool := rbd
	missingPool.Path = "vpt-no-such-pool"
	injected := lun
	injected.Options = map[string]string{"portal": san.Portal + "/" + iqn + "/1?x=y", "tid": "1", "dir": lunDir}
	badVG := vg
	badVG.Path = "/dev/" + lvmEnv.VG
	for _, bad := range []struct {
		st       model.StorageRef
		location string
	}{
		{model.StorageRef{Name: "z", Driver: "zfs", Path: "tank"}, "body.storages[1].driver"},
		{missingPool, "body.storages[1].path"},
		{injected, "body.storages[1].options.portal"},
		{badVG, "body.storages[1].path"},
	} {
		_, err := c.CreateCluster(ctx, body(files, bad.st))
		msg := problemAt(t, err, bad.location)
		t.Logf("refused %s: %s", bad.st.Name, msg)
	}
	_, err = c.CreateCluster(ctx, body(files, rbd, model.StorageRef{Name: "rbd2", Driver: "file", Path: dir + "/x", Default: true}))
	problemAt(t, err, "body.storages[2].default")
	list, err := c.ListClusters(ctx, client.ListOptions{})
	require.NoError(t, err)
	for _, cl := range list.Items {
		assert.NotEqual(t, "stor", cl.Name, "a refused cluster was made")
	}

	cl, err := c.CreateCluster(ctx, body(files, rbd, lun))
	require.NoError(t, err)
	nd, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	require.NoError(t, err)
	// A local storage is checked on every node: a VG that is not there is
	// refused, the real one taken.
	missingVG := vg
	missingVG.Path = "vpt-no-such-vg"
	_, err = c.UpdateCluster(ctx, cl.ID, body(files, rbd, lun, missingVG))
	t.Logf("refused missing VG: %s", problemAt(t, err, "body.storages[3].path"))
	got, err := c.GetCluster(ctx, cl.ID)
	require.NoError(t, err)
	require.Len(t, got.Storages, 3, "a refused change changed the cluster")
	cl, err = c.UpdateCluster(ctx, cl.ID, body(files, rbd, lun, vg))
	require.NoError(t, err)
	require.Len(t, cl.Storages, 4)
	// A cluster without nodes takes a local storage unchecked; a node that
	// does not have it is refused and not added.
	lonely := body(missingVG)
	lonely.Name = "stor-lonely"
	lc, err := c.CreateCluster(ctx, lonely)
	require.NoError(t, err)
	_, err = c.AddNode(ctx, api.NodeBody{ClusterID: lc.ID, Name: "local2", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	t.Logf("refused node: %s", problemAt(t, err, "body.cluster_id"))
	lnodes, err := c.ListNodes(ctx, client.NodeListOptions{})
	require.NoError(t, err)
	for _, ln := range lnodes.Items {
		assert.NotEqual(t, lc.ID, ln.ClusterID, "a refused node was added")
	}

	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "stor", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.16/28", Gateway: "198.51.100.17"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: guest.Disk, Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	succeeded(t, c, tk, err)

	// Storage requests a create refuses at once.
	vmBody := func(name string, storageName string, tags ...string) api.VMCreateBody {
		return api.VMCreateBody{Name: name, ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1,
			Storage: storageName, StorageTags: tags, Console: "none"}
	}
	_, _, err = c.CreateVM(ctx, vmBody("nope", "nope"), "")
	problemAt(t, err, "body.storage")
	_, _, err = c.CreateVM(ctx, vmBody("nvme", "", "nvme"), "")
	msg := problemAt(t, err, "body.storage_tags")
	for _, name := range []string{"local", "rbd", "lun", "vg"} {
		assert.Contains(t, msg, name+": lacks tags", "the refusal says why of storage %s", name)
	}
	// A disk no storage has room for fails its task, saying why of each.
	// (Ceph here reports no capacity and tgt LUNs none: such storages
	// take any disk; the file system and the VG know theirs.)
	huge := vmBody("huge", "", "bulk")
	huge.DiskGiB = 60000
	hv, tk, err := c.CreateVM(ctx, huge, "")
	err = taskFailed(t, c, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
	assert.Contains(t, err.Error(), "local: ")
	assert.Contains(t, err.Error(), "vg: ")
	assert.Contains(t, err.Error(), "rbd: lacks tags [bulk]")
	t.Logf("no room: %v", err)
	tk, err = c.DeleteVM(ctx, hv.ID)
	succeeded(t, c, tk, err)

	rbdPool, err := ceph.New(ctx, ceph.Config{Name: "check", Pool: cph.Pool, Conf: cph.Conf, User: cph.User})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rbdPool.Close() })

	// The tag ssd places the disk on Ceph: a linked clone of the image's
	// base, which the create copied into RBD.
	boot := func(body api.VMCreateBody) model.VM {
		t.Helper()
		vm, tk, err := c.CreateVM(ctx, body, "")
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = drv.Stop(context.Background(), flow.DomainName(vm.ID))
			_ = drv.Delete(context.Background(), flow.DomainName(vm.ID))
			_ = exec.Command("ip", "link", "del", flow.PortName(vm.ID)).Run()
		})
		succeeded(t, c, tk, nil)
		vm, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		console, err := testenv.WaitConsole(ctx, drv.ConsoleLog(flow.DomainName(vm.ID)), guest.Marker, 2*time.Minute)
		require.NoError(t, err, "the guest on storage %s did not boot", vm.Storage)
		assert.Contains(t, console, guest.Marker)
		return vm
	}
	onCeph := boot(vmBody("on-ceph", "", "ssd"))
	assert.Equal(t, "rbd", onCeph.Storage, "the disk asking for ssd is on the storage tagged ssd")
	vol, err := rbdPool.Volume(ctx, flow.VolumeName(onCeph.ID))
	require.NoError(t, err)
	assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "a linked clone of the image in RBD")
	children := run(t, "rbd", "-c", cph.Conf, "children", cph.Pool+"/"+flow.ImageVolume(img.ID)+"@.clone-"+flow.VolumeName(onCeph.ID))
	assert.Contains(t, children, flow.VolumeName(onCeph.ID), "rbd children shows the clone")
	dom, err := drv.Get(ctx, flow.DomainName(onCeph.ID))
	require.NoError(t, err)
	require.NotEmpty(t, dom.Spec.Disks)
	assert.Equal(t, "rbd", dom.Spec.Disks[0].Source.Kind, "QEMU reads the RBD image itself")

	// The iSCSI storage by name: a full copy into a LUN of its own.
	onLUN := boot(vmBody("on-lun", "lun"))
	assert.Equal(t, "lun", onLUN.Storage)
	dom, err = drv.Get(ctx, flow.DomainName(onLUN.ID))
	require.NoError(t, err)
	assert.Equal(t, "iscsi", dom.Spec.Disks[0].Source.Kind)
	assert.Contains(t, dom.Spec.Disks[0].Source.URL, iqn)
	luns, err := os.ReadDir(lunDir)
	require.NoError(t, err)
	require.Len(t, luns, 1, "one LUN: the VM's disk (no base: LUNs do not clone)")

	// Usage per storage: the shared ones once, the local ones per node,
	// with the VMs on each; the same in /metrics.
	usage, err := c.StorageUsage(ctx, cl.ID)
	require.NoError(t, err)
	byName := map[string]model.StorageUsage{}
	for _, u := range usage {
		assert.Empty(t, u.Error, "storage %s", u.Storage)
		byName[u.Storage] = u
	}
	require.Len(t, byName, 4)
	assert.Equal(t, "", byName["rbd"].Node, "a shared storage is listed once, for no node")
	assert.Equal(t, nd.ID, byName["local"].Node)
	assert.Equal(t, 1, byName["rbd"].VMs)
	assert.Equal(t, 1, byName["lun"].VMs)
	assert.Positive(t, byName["vg"].CapacityBytes, "the VG's size")
	assert.Positive(t, byName["local"].CapacityBytes, "the file system's size")
	assert.GreaterOrEqual(t, byName["rbd"].AllocatedBytes, int64(1<<30), "the VM's 1 GiB disk counts in RBD")
	metricsSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(metricsSrv.Close)
	text := scrape(t, metricsSrv.URL)
	assert.EqualValues(t, 1, sample(t, text, `virtplane_storage_vms{cluster="stor",driver="ceph",node="",storage="rbd"}`))
	assert.EqualValues(t, 1, sample(t, text, `virtplane_storage_up{cluster="stor",driver="lvm",node="`+nd.ID+`",storage="vg"}`))
	assert.EqualValues(t, byName["vg"].CapacityBytes, sample(t, text, `virtplane_storage_capacity_bytes{cluster="stor",driver="lvm",node="`+nd.ID+`",storage="vg"}`))

	// Neither may go while it holds disks; disabling takes no disk away.
	_, err = c.UpdateCluster(ctx, cl.ID, body(files, lun, vg))
	t.Logf("refused removal: %s", problemAt(t, err, "body.storages"))
	off := false
	rbdOff := rbd
	rbdOff.Enabled = &off
	_, err = c.UpdateCluster(ctx, cl.ID, body(files, rbdOff, lun, vg))
	require.NoError(t, err)
	_, _, err = c.CreateVM(ctx, vmBody("to-disabled", "rbd"), "")
	problemAt(t, err, "body.storage")

	// A disk moves file → Ceph → file with its bytes, and the VM boots
	// from it again.
	_, err = c.UpdateCluster(ctx, cl.ID, body(files, rbd, lun, vg))
	require.NoError(t, err)
	mover := boot(vmBody("mover", "local"))
	localPool, err := file.New(file.Config{Name: "local", Dir: files.Path})
	require.NoError(t, err)
	// Live, the guest running: the disk mirrored into RBD by libvirt's
	// block copy and back, with its bytes (the guest does not write it).
	fv, err := localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	liveBefore := filepath.Join(dir, "live-before.raw")
	run(t, "qemu-img", "convert", "-U", "-O", "raw", fv.Attachment.Path, liveBefore)
	tk, err = c.MoveVMDisk(ctx, mover.ID, "rbd")
	succeeded(t, c, tk, err)
	moved, err := c.GetVM(ctx, mover.ID)
	require.NoError(t, err)
	assert.Equal(t, "rbd", moved.Storage)
	assert.Equal(t, model.VMRunning, moved.State)
	moverDom := flow.DomainName(mover.ID)
	assert.Contains(t, run(t, "virsh", "-c", lv.URI, "domblklist", moverDom), cph.Pool+"/"+flow.VolumeName(mover.ID), "the running domain reads RBD")
	assert.Contains(t, run(t, "virsh", "-c", lv.URI, "dumpxml", "--inactive", moverDom), cph.Pool+"/"+flow.VolumeName(mover.ID), "and boots from it next time")
	assert.NoFileExists(t, fv.Attachment.Path, "the old disk stays after the live move")
	run(t, "qemu-img", "compare", "-U", "-f", "raw", "-F", "raw", liveBefore, "rbd:"+cph.Pool+"/"+flow.VolumeName(mover.ID)+":conf="+cph.Conf)
	d0, err := drv.Get(ctx, moverDom)
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, d0.State, "the guest ran through the move")
	tk, err = c.MoveVMDisk(ctx, mover.ID, "local")
	succeeded(t, c, tk, err)
	_, err = rbdPool.Volume(ctx, flow.VolumeName(mover.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the RBD copy stays after the live move back")
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	run(t, "qemu-img", "compare", "-U", "-f", "raw", "-F", fv.Attachment.Format, liveBefore, fv.Attachment.Path)

	tk, err = c.VMAction(ctx, mover.ID, "stop")
	succeeded(t, c, tk, err)
	_, err = c.MoveVMDisk(ctx, mover.ID, "local")
	problemAt(t, err, "body.storage")
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	filePath := fv.Attachment.Path
	before := filepath.Join(dir, "before.raw")
	run(t, "qemu-img", "convert", "-O", "raw", filePath, before)
	rbdSpec := "rbd:" + cph.Pool + "/" + flow.VolumeName(mover.ID) + ":conf=" + cph.Conf
	// A failure in the middle (the domain cannot be defined on the copy)
	// leaves the VM on its old disk, defined as it was, and no copy.
	faulty.fail.Store(true)
	tk, err = c.MoveVMDisk(ctx, mover.ID, "rbd")
	assert.ErrorContains(t, taskFailed(t, c, tk, err), "injected")
	unmoved, err := c.GetVM(ctx, mover.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", unmoved.Storage, "a failed move changed the VM's storage")
	_, err = rbdPool.Volume(ctx, flow.VolumeName(mover.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "a failed move left its copy")
	dom, err = drv.Get(ctx, flow.DomainName(mover.ID))
	require.NoError(t, err, "a failed move left the VM undefined")
	assert.Equal(t, filePath, dom.Spec.Disks[0].Source.Path, "the VM is defined on its old disk again")
	run(t, "qemu-img", "compare", "-f", "raw", before, filePath)
	// A daemon stopped in the middle (the define on the copy hangs) rolls
	// the move back when it starts again.
	faulty.hang.Store(true)
	tk, err = c.MoveVMDisk(ctx, mover.ID, "rbd")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cur, err := c.GetTask(ctx, tk.ID)
		return err == nil && strings.HasPrefix(cur.Message, "define with the disk on storage")
	}, time.Minute, 20*time.Millisecond, "the move reaches its define")
	_, err = rbdPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err, "the copy is there when the daemon stops")
	stop()
	srv, c, stop = start()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "failed", tk.State, "a move is not run again after a restart")
	unmoved, err = c.GetVM(ctx, mover.ID)
	require.NoError(t, err)
	assert.Equal(t, "local", unmoved.Storage)
	_, err = rbdPool.Volume(ctx, flow.VolumeName(mover.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the interrupted move's copy is gone")
	dom, err = drv.Get(ctx, flow.DomainName(mover.ID))
	require.NoError(t, err, "the interrupted move left the VM undefined")
	assert.Equal(t, filePath, dom.Spec.Disks[0].Source.Path)
	run(t, "qemu-img", "compare", "-f", "raw", before, filePath)

	tk, err = c.MoveVMDisk(ctx, mover.ID, "rbd")
	succeeded(t, c, tk, err)
	mover, err = c.GetVM(ctx, mover.ID)
	require.NoError(t, err)
	assert.Equal(t, "rbd", mover.Storage)
	assert.NoFileExists(t, filePath, "the old disk stays after the move")
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", before, rbdSpec)
	tk, err = c.MoveVMDisk(ctx, mover.ID, "local")
	succeeded(t, c, tk, err)
	_, err = rbdPool.Volume(ctx, flow.VolumeName(mover.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the RBD copy stays after the move back")
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	run(t, "qemu-img", "compare", "-f", "raw", "-F", fv.Attachment.Format, before, fv.Attachment.Path)
	// The console log of the domain defined again may be a new one: the
	// boot is looked for past what it held before the start.
	consoleLog := drv.ConsoleLog(flow.DomainName(mover.ID))
	old, _ := os.ReadFile(consoleLog)
	tk, err = c.VMAction(ctx, mover.ID, "start")
	succeeded(t, c, tk, err)
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(consoleLog)
		return len(b) >= len(old) && strings.Contains(string(b[len(old):]), guest.Marker)
	}, 2*time.Minute, 250*time.Millisecond, "the VM boots from its moved disk (%s)", consoleLog)

	// Backups: taken into Ceph from the stopped VM, restored over a disk
	// written since with the bytes checked; never over a running VM; a
	// second one, in the file storage, goes with the VM.
	tk, err = c.BackupVM(ctx, mover.ID, "rbd")
	problemAt(t, err, "path.id") // running
	tk, err = c.VMAction(ctx, mover.ID, "stop")
	succeeded(t, c, tk, err)
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	taken := filepath.Join(dir, "taken.raw")
	run(t, "qemu-img", "convert", "-f", fv.Attachment.Format, "-O", "raw", fv.Attachment.Path, taken)
	tk, err = c.BackupVM(ctx, mover.ID, "rbd")
	succeeded(t, c, tk, err)
	backups, err := c.ListBackups(ctx, mover.ID)
	require.NoError(t, err)
	require.Len(t, backups, 1)
	bk := backups[0]
	assert.Equal(t, "rbd", bk.Storage)
	assert.Empty(t, bk.NodeID, "a backup in a shared storage is no node's")
	run(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", taken, "rbd:"+cph.Pool+"/"+bk.Volume+":conf="+cph.Conf)
	run(t, "qemu-io", "-f", fv.Attachment.Format, "-c", "write -P 0xab 0 1M", fv.Attachment.Path)
	assert.Error(t, exec.Command("qemu-img", "compare", "-q", "-f", "raw", "-F", fv.Attachment.Format, taken, fv.Attachment.Path).Run(), "the disk was written since the backup")
	tk, err = c.RestoreBackup(ctx, mover.ID, bk.ID)
	succeeded(t, c, tk, err)
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err)
	run(t, "qemu-img", "compare", "-f", "raw", "-F", fv.Attachment.Format, taken, fv.Attachment.Path)
	tk, err = c.VMAction(ctx, mover.ID, "start")
	succeeded(t, c, tk, err)
	_, err = c.RestoreBackup(ctx, mover.ID, bk.ID)
	t.Logf("refused restore over a running VM: %s", problemAt(t, err, "path.id"))
	tk, err = c.VMAction(ctx, mover.ID, "stop")
	succeeded(t, c, tk, err)
	tk, err = c.DeleteBackup(ctx, mover.ID, bk.ID)
	succeeded(t, c, tk, err)
	_, err = rbdPool.Volume(ctx, bk.Volume)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "a deleted backup's RBD image stays")
	tk, err = c.BackupVM(ctx, mover.ID, "local")
	succeeded(t, c, tk, err)
	backups, err = c.ListBackups(ctx, mover.ID)
	require.NoError(t, err)
	require.Len(t, backups, 1, "the deleted backup is gone, the new one listed")
	assert.Equal(t, nd.ID, backups[0].NodeID, "a backup in a local storage is its node's")
	// A restore that fails half-way (its backup's volume vanished behind
	// the daemon's back) puts the disk it set aside back: nothing lost,
	// nothing left.
	lost, err := localPool.Volume(ctx, backups[0].Volume)
	require.NoError(t, err)
	require.NoError(t, os.Remove(lost.Attachment.Path))
	tk, err = c.RestoreBackup(ctx, mover.ID, backups[0].ID)
	assert.ErrorIs(t, taskFailed(t, c, tk, err), virtplane.ErrNotFound)
	fv, err = localPool.Volume(ctx, flow.VolumeName(mover.ID))
	require.NoError(t, err, "the failed restore lost the VM's disk")
	run(t, "qemu-img", "compare", "-f", "raw", "-F", fv.Attachment.Format, taken, fv.Attachment.Path)
	vols, err := localPool.List(ctx)
	require.NoError(t, err)
	for _, v := range vols {
		assert.NotContains(t, v.Name, "aside", "the failed restore left the disk it set aside")
	}

	// A template from a VM: an image of the stopped VM's disk, which a new
	// VM is a linked clone of and boots from.
	tpl, tk, err := c.ImageFromVM(ctx, mover.ID, "tpl")
	succeeded(t, c, tk, err)
	tpl, err = c.GetImage(ctx, tpl.ID)
	require.NoError(t, err)
	assert.Equal(t, model.ImageReady, tpl.State)
	assert.Equal(t, []string{nd.ID}, tpl.Nodes)
	assert.Equal(t, mover.ID, tpl.FromVM)
	fromTpl := vmBody("from-tpl", "local")
	fromTpl.ImageID = tpl.ID
	clone := boot(fromTpl)
	cv, err := localPool.Volume(ctx, flow.VolumeName(clone.ID))
	require.NoError(t, err)
	assert.Equal(t, flow.ImageVolume(tpl.ID), cv.Parent, "a linked clone of the template")

	// A full clone of the stopped VM: its own disk, a copy of the source's
	// (no backing image), on the source's node and storage; it boots.
	_, _, err = c.CloneVM(ctx, clone.ID, "twin-of-running", "")
	problemAt(t, err, "path.id")
	twin, tk, err := c.CloneVM(ctx, mover.ID, "twin", "")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = drv.Stop(context.Background(), flow.DomainName(twin.ID))
		_ = drv.Delete(context.Background(), flow.DomainName(twin.ID))
		_ = exec.Command("ip", "link", "del", flow.PortName(twin.ID)).Run()
	})
	succeeded(t, c, tk, nil)
	twin, err = c.GetVM(ctx, twin.ID)
	require.NoError(t, err)
	assert.Equal(t, mover.ID, twin.CloneOf)
	assert.Equal(t, "local", twin.Storage)
	assert.Equal(t, nd.ID, twin.NodeID)
	tv, err := localPool.Volume(ctx, flow.VolumeName(twin.ID))
	require.NoError(t, err)
	assert.Empty(t, tv.Parent, "a full clone reads through nothing")
	_, err = testenv.WaitConsole(ctx, drv.ConsoleLog(flow.DomainName(twin.ID)), guest.Marker, 2*time.Minute)
	require.NoError(t, err, "the clone did not boot")

	// Data disks on the running VM on Ceph: an RBD disk hotplugged (QEMU
	// opens the image; the live domain lists it), grown live, unplugged
	// (the guest's kernel releases it) and deleted; a file disk that stays
	// until the VM's delete. Then, stopped, a disk on the VG: lvm2 here is
	// metadata only (no device-mapper, no /dev node), so the LV is made
	// and put in the domain's definition, checked with lvs and the
	// inactive XML, and not booted from.
	cephDom := flow.DomainName(onCeph.ID)
	liveDisks := func() string { return run(t, "virsh", "-c", lv.URI, "domblklist", cephDom) }
	tk, err = c.AttachVMDisk(ctx, onCeph.ID, api.DiskRequest{SizeGiB: 1, StorageTags: []string{"ssd"}})
	succeeded(t, c, tk, err)
	rbdData := flow.DataVolumeName(onCeph.ID, "vdb")
	dv, err := rbdPool.Volume(ctx, rbdData)
	require.NoError(t, err, "the data disk's RBD image")
	assert.EqualValues(t, 1<<30, dv.Capacity)
	assert.Contains(t, liveDisks(), cph.Pool+"/"+rbdData, "the running domain has the RBD disk")
	tk, err = c.ResizeVMDisk(ctx, onCeph.ID, "vdb", 2)
	succeeded(t, c, tk, err)
	dv, err = rbdPool.Volume(ctx, rbdData)
	require.NoError(t, err)
	assert.EqualValues(t, 2<<30, dv.Capacity, "QEMU grew the RBD image of the running guest")
	tk, err = c.AttachVMDisk(ctx, onCeph.ID, api.DiskRequest{SizeGiB: 1, Storage: "local"})
	succeeded(t, c, tk, err)
	fileData, err := localPool.Volume(ctx, flow.DataVolumeName(onCeph.ID, "vdc"))
	require.NoError(t, err, "the file data disk")
	assert.Contains(t, liveDisks(), fileData.Attachment.Path)
	tk, err = c.DetachVMDisk(ctx, onCeph.ID, "vdb")
	succeeded(t, c, tk, err)
	assert.NotContains(t, liveDisks(), rbdData, "the guest released the unplugged disk")
	_, err = rbdPool.Volume(ctx, rbdData)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "a detached disk's RBD image stays")
	_, err = testenv.WaitConsole(ctx, drv.ConsoleLog(cephDom), guest.Marker, time.Minute)
	require.NoError(t, err, "the guest runs on")
	tk, err = c.VMAction(ctx, onCeph.ID, "stop")
	succeeded(t, c, tk, err)
	tk, err = c.AttachVMDisk(ctx, onCeph.ID, api.DiskRequest{SizeGiB: 1, Storage: "vg"})
	succeeded(t, c, tk, err)
	lvNames := func() string {
		lvs := exec.Command("lvs", "--noheadings", "-o", "lv_name", lvmEnv.VG)
		lvs.Env = append(os.Environ(), lvmEnv.Env()...)
		out, err := lvs.CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	lvData := flow.DataVolumeName(onCeph.ID, "vdb")
	assert.Contains(t, lvNames(), lvData, "the data disk's LV")
	inactive := run(t, "virsh", "-c", lv.URI, "dumpxml", "--inactive", cephDom)
	assert.Contains(t, inactive, "/dev/"+lvmEnv.VG+"/"+lvData, "the definition has the LV")
	withLV, err := c.GetVM(ctx, onCeph.ID)
	require.NoError(t, err)
	require.Len(t, withLV.Disks, 2)
	assert.Equal(t, "vg", withLV.Disks[1].Storage)
	tk, err = c.DetachVMDisk(ctx, onCeph.ID, "vdb")
	succeeded(t, c, tk, err)
	assert.NotContains(t, lvNames(), lvData, "a detached disk's LV stays")
	assert.NotContains(t, run(t, "virsh", "-c", lv.URI, "dumpxml", "--inactive", cephDom), lvData)

	// Everything goes on delete: domains, RBD image, LUN, backups, data
	// disks, and the bases with the images.
	for _, vm := range []model.VM{onCeph, onLUN, mover, clone, twin} {
		tk, err := c.DeleteVM(ctx, vm.ID)
		succeeded(t, c, tk, err)
		_, err = drv.Get(ctx, flow.DomainName(vm.ID))
		assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left behind")
	}
	_, err = rbdPool.Volume(ctx, flow.VolumeName(onCeph.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "RBD image left behind")
	luns, err = os.ReadDir(lunDir)
	require.NoError(t, err)
	assert.Empty(t, luns, "LUN backing file left behind")
	assert.NotContains(t, run(t, "tgtadm", "-C", orZero(san.ControlPort), "--lld", "iscsi", "--op", "show", "--mode", "target"), filepath.Join(lunDir, flow.VolumeName(onLUN.ID)), "LUN left on the target")
	for _, id := range []string{img.ID, tpl.ID} {
		tk, err = c.DeleteImage(ctx, id)
		succeeded(t, c, tk, err)
	}
	_, err = rbdPool.Volume(ctx, flow.ImageVolume(img.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the image's base left in RBD")
	left, err := os.ReadDir(filepath.Join(dir, "files"))
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
		assert.Empty(t, left, "files left in the file storage")
	}
	lvs := exec.Command("lvs", "--noheadings", "-o", "lv_name", lvmEnv.VG)
	lvs.Env = append(os.Environ(), lvmEnv.Env()...)
	out, err := lvs.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.NotContains(t, string(out), "vpt-", "an LV of a VM in the volume group")
}

// failingCreate is a hypervisor whose next Create fails when fail is set,
// or hangs until its caller gives up when hang is.
type failingCreate struct {
	*libvirt.Driver // every optional interface of the real driver
	fail, hang      atomic.Bool
}

func (d *failingCreate) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	if d.hang.CompareAndSwap(true, false) {
		<-ctx.Done()
		return vmm.VM{}, ctx.Err()
	}
	if d.fail.CompareAndSwap(true, false) {
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrUnavailable, "injected: define %s", spec.Name)
	}
	return d.Driver.Create(ctx, spec)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func randUint32(t *testing.T) uint32 {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<32))
	require.NoError(t, err)
	return uint32(n.Int64())
}
