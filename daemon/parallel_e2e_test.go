package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// libvirtNode is a daemon with one node, this host's libvirtd (the domain
// type testenv recorded), disks in a file pool, ports on a bridge of its
// own in the root namespace, and an image imported: the test guest's disk,
// or (bootable false) a blank disk, on which the firmware finds nothing to
// boot and idles.
type libvirtNode struct {
	c       *client.Client
	drv     *libvirt.Driver
	cluster model.Cluster
	pool    model.IPPool
	image   model.Image
	mu      sync.Mutex
	vms     []string // every VM made, for the cleanup
}

func newLibvirtNode(t testing.TB, bootable bool) *libvirtNode {
	lv := testenv.RequireLibvirt(t)
	source := ""
	if bootable {
		source = testenv.RequireGuest(t).Disk
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-par-")
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
	ports, err := netport.NewKernelHost(filepath.Join(dir, "ports"), nl, nft)
	require.NoError(t, err)
	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	if !bootable {
		source = filepath.Join(dir, "blank.qcow2")
		out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", source, "64M").CombinedOutput()
		require.NoError(t, err, string(out))
	}

	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "par", DataDir: filepath.Join(dir, "data"),
		LocalDriver:  func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalStorage: func(context.Context) (storage.Pool, error) { return pool, nil },
		LocalPorts:   func(context.Context) (netport.Ports, error) { return ports, nil },
	})
	require.NoError(t, err)
	n := &libvirtNode{c: serveAdmin(t, srv), drv: drv}
	n.c.Poll = 20 * time.Millisecond
	t.Cleanup(func() {
		// What a failed run may have left: only names this test made.
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, id := range n.vms {
			_ = drv.Stop(context.Background(), flow.DomainName(id))
			_ = drv.Delete(context.Background(), flow.DomainName(id))
			tap := flow.PortName(id)
			_ = exec.Command("nft", "delete", "table", "netdev", "vpt-"+tap).Run()
			for _, l := range []string{tap, shaping.IFBName(tap)} {
				_ = exec.Command("ip", "link", "del", l).Run()
			}
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	n.cluster, err = n.c.CreateCluster(ctx, api.ClusterBody{Name: "par", CPUOvercommit: 16, Bridge: bridge})
	require.NoError(t, err)
	_, err = n.c.AddNode(ctx, api.NodeBody{ClusterID: n.cluster.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 8192, DiskGiB: 100})
	require.NoError(t, err)
	n.pool, err = n.c.CreatePool(ctx, api.PoolBody{Name: "par", ClusterIDs: []string{n.cluster.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/24", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	n.image, err = n.c.CreateImage(ctx, api.ImageBody{Name: "guest", Source: source})
	require.NoError(t, err)
	_, tk, err := n.c.ImportImage(ctx, n.image.ID, api.ImageImportBody{ClusterID: n.cluster.ID})
	require.NoError(t, err)
	tk, err = n.c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
	return n
}

// create sends k creates at once and waits for them all; it returns the
// VMs and each create's end.
func (n *libvirtNode) create(ctx context.Context, prefix string, k int) ([]model.VM, []error) {
	vms, errs := make([]model.VM, k), make([]error, k)
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			vm, tk, err := n.c.CreateVM(ctx, api.VMCreateBody{Name: fmt.Sprintf("%s-%02d", prefix, i), ClusterID: n.cluster.ID, ImageID: n.image.ID, PoolID: n.pool.ID, CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "")
			if err != nil {
				errs[i] = err
				return
			}
			n.mu.Lock()
			n.vms = append(n.vms, vm.ID)
			n.mu.Unlock()
			if tk, err = n.c.WaitTask(ctx, tk.ID); err == nil {
				err = client.TaskError(tk)
			}
			vms[i], errs[i] = vm, err
		})
	}
	wg.Wait()
	return vms, errs
}

// deleteAll deletes the VMs at once and waits.
func (n *libvirtNode) deleteAll(ctx context.Context, vms []model.VM) []error {
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i, vm := range vms {
		wg.Go(func() {
			tk, err := n.c.DeleteVM(ctx, vm.ID)
			if err == nil {
				if tk, err = n.c.WaitTask(ctx, tk.ID); err == nil {
					err = client.TaskError(tk)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

// TestParallelCreatesOnOneLibvirtNode: 20 creates sent at once for one real
// libvirt node all succeed (linked clones of one image, ports on one
// bridge, domains defined and started side by side): no lock or timeout
// error; every domain runs with its own address; deleted at once, they
// all go.
func TestParallelCreatesOnOneLibvirtNode(t *testing.T) {
	n := newLibvirtNode(t, true)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	vms, errs := n.create(ctx, "par", 20)
	addrs := map[string]bool{}
	for i, err := range errs {
		if !assert.NoError(t, err, "create %d", i) {
			continue
		}
		dom, err := n.drv.Get(ctx, flow.DomainName(vms[i].ID))
		require.NoError(t, err)
		assert.Equal(t, vmm.StateRunning, dom.State, "create %d", i)
		vm, err := n.c.GetVM(ctx, vms[i].ID)
		require.NoError(t, err)
		require.Len(t, vm.Addresses, 1)
		assert.False(t, addrs[vm.Addresses[0]], "address %s twice", vm.Addresses[0])
		addrs[vm.Addresses[0]] = true
	}
	for i, err := range n.deleteAll(ctx, vms) {
		assert.NoError(t, err, "delete %d", i)
		_, err := n.drv.Get(ctx, flow.DomainName(vms[i].ID))
		assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain %d left", i)
	}
}

// BenchmarkParallelCreatesLibvirt: on the real local libvirtd (TCG here),
// the wall time of 20 creates sent at once (linked clone, port, define,
// start: until every task ended) against one create alone, in the same
// run; 20-vs-1 is their ratio (20 creates one after another would be 20).
// The VMs boot no OS (a blank disk, the firmware idles): what is measured
// is the creates, not 20 guest kernels sharing two cores of software
// emulation, which alone take tens of seconds here.
func BenchmarkParallelCreatesLibvirt(b *testing.B) {
	n := newLibvirtNode(b, false)
	ctx := context.Background()
	var one, twenty time.Duration
	round := 0
	for b.Loop() {
		round++
		t0 := time.Now()
		vms, errs := n.create(ctx, fmt.Sprintf("one%d", round), 1)
		one += time.Since(t0)
		require.NoError(b, errs[0])
		for _, err := range n.deleteAll(ctx, vms) {
			require.NoError(b, err)
		}
		t0 = time.Now()
		vms, errs = n.create(ctx, fmt.Sprintf("twenty%d", round), 20)
		twenty += time.Since(t0)
		for i, err := range errs {
			require.NoError(b, err, "create %d of 20", i)
		}
		for _, err := range n.deleteAll(ctx, vms) {
			require.NoError(b, err)
		}
	}
	b.ReportMetric(one.Seconds()/float64(round), "one-create-s")
	b.ReportMetric(twenty.Seconds()/float64(round), "twenty-creates-s")
	b.ReportMetric(twenty.Seconds()/one.Seconds(), "20-vs-1")
}
