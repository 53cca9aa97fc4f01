package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// BenchmarkLiveMigrationDowntimeAgentNodes: the downtime of a live
// migration between two ssh:// nodes through the API (the daemon's flow,
// the agents, the relay that carries libvirt's peer-to-peer control
// connection) beside the bare library call (vmm/libvirt's Migrate, the
// same libvirt call with the same flags, made straight to the target's
// libvirtd socket, with the target's volume, seed and port set up by hand
// beforehand) of the same running guest between the same two nodes, in
// the same run. Downtime is what libvirt reports for the completed job on
// the target (virsh domjobinfo --completed: "Total downtime"). Each round
// moves the guest through the API and back and forth bare, so both
// directions count on both sides.
//
//	CI=true go test ./daemon/ -run '^$' -bench LiveMigrationDowntime -benchtime 2x
func BenchmarkLiveMigrationDowntimeAgentNodes(b *testing.B) {
	lv := testenv.RequireLibvirt(b)
	guest := testenv.RequireGuest(b)
	u := testenv.NewUnderlay(b)
	priv, pub := testenv.NewSSHKey(b)
	login := testenv.WithSSH(testenv.SSHLogin{AuthorizedKeys: []string{pub}})
	hosts := []*testenv.LibvirtHost{
		testenv.StartLibvirtHost(b, "vpt-md-a", "", 0, testenv.OnUnderlay(u), login),
		testenv.StartLibvirtHost(b, "vpt-md-b", "", 1, testenv.OnUnderlay(u), login),
	}
	ctx := context.Background()
	dir := hostTempDir(b, "vpt-md-")
	bin := buildAgent(b, dir)
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(b), Instance: "md", DataDir: filepath.Join(dir, "data"), AgentBinary: bin, DomainType: lv.DomainType})
	require.NoError(b, err)
	c := serveAdmin(b, srv)
	drivers := make([]*libvirt.Driver, len(hosts))
	for i, h := range hosts {
		d, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: filepath.Join(dir, "inspect")}, libvirt.WithValues(h.Values()))
		require.NoError(b, err)
		b.Cleanup(func() { _ = d.Close() })
		drivers[i] = d
	}
	nodeLib := func(h *testenv.LibvirtHost, elem ...string) string {
		return filepath.Join(append([]string{h.Dir, "vpt-lib"}, elem...)...)
	}

	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "md", VirtType: "kvm", Strategy: "even", CPUOvercommit: 8, RAMOvercommit: 2, DiskOvercommit: 2, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(b, err)
	nodes := make([]model.Node, len(hosts))
	for i, h := range hosts {
		nodes[i], err = c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: h.Name, Address: "ssh://root@" + h.SSH.Addr, SSHPrivateKey: priv, HostKeyFingerprint: h.SSH.HostKeyFingerprint})
		require.NoError(b, err, h.Name)
	}
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "md", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(b, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: guest.Disk, Format: "qcow2"})
	require.NoError(b, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	doneB(b, c, tk, err)
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "md-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1}, "")
	require.NoError(b, err)
	dom := flow.DomainName(vm.ID)
	b.Cleanup(func() {
		for _, d := range drivers {
			_ = d.Stop(context.Background(), dom)
			_ = d.Delete(context.Background(), dom)
		}
	})
	doneB(b, c, tk, err)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(b, err)
	at := 0
	if vm.NodeID == nodes[1].ID {
		at = 1
	}
	_, err = testenv.WaitConsole(ctx, nodeLib(hosts[at], "agent", "vmm", dom, "console.log"), guest.Marker, 3*time.Minute)
	require.NoError(b, err, "the guest did not boot")

	// bare moves the guest from host src to dst with the library call the
	// node's driver makes, having done by hand what the flow does around
	// it: the target's volume, seed and port before, the source's after.
	bare := func(src, dst int) (time.Duration, float64) {
		srcPool, err := srv.Flow.NodePool(ctx, nodes[src].ID)
		require.NoError(b, err)
		dstPool, err := srv.Flow.NodePool(ctx, nodes[dst].ID)
		require.NoError(b, err)
		vol, err := srcPool.Volume(ctx, flow.VolumeName(vm.ID))
		require.NoError(b, err)
		target, err := dstPool.Create(ctx, storage.VolumeSpec{Name: vol.Name, Size: vol.Capacity, Format: vol.Format})
		require.NoError(b, err)
		seed, err := os.ReadFile(nodeLib(hosts[src], "agent", "vmm", dom, "seed.iso"))
		require.NoError(b, err)
		require.NoError(b, os.MkdirAll(nodeLib(hosts[dst], "agent", "vmm", dom), 0o755))
		require.NoError(b, os.WriteFile(nodeLib(hosts[dst], "agent", "vmm", dom, "seed.iso"), seed, 0o644))
		srcPorts, err := srv.Flow.NodePorts(ctx, nodes[src].ID)
		require.NoError(b, err)
		dstPorts, err := srv.Flow.NodePorts(ctx, nodes[dst].ID)
		require.NoError(b, err)
		specs, err := srcPorts.List(ctx)
		require.NoError(b, err)
		for _, s := range specs {
			if s.Name == flow.PortName(vm.ID) {
				require.NoError(b, dstPorts.Setup(ctx, s))
			}
		}
		t0 := time.Now()
		err = drivers[src].Migrate(ctx, dom, vmm.MigrationTarget{URI: "qemu+unix:///system?socket=" + hosts[dst].Socket, Address: hostOf(b, hosts[dst].SSH.Addr),
			Disks: map[string]vmm.DiskSource{"vda": vmm.DiskSource(target.Attachment)}}, nil)
		took := time.Since(t0)
		require.NoError(b, err, "bare migration %s → %s", hosts[src].Name, hosts[dst].Name)
		down := downtimeMs(b, hosts[dst], dom)
		require.NoError(b, srcPorts.Teardown(ctx, flow.PortName(vm.ID)))
		require.NoError(b, srcPool.Delete(ctx, vol.Name))
		return took, down
	}

	var apiTook, bareTook time.Duration
	var apiDown, bareDown, apiPeak, barePeak float64
	var apiN, bareN int
	for b.Loop() {
		to := 1 - at
		t0 := time.Now()
		tk, err := c.MigrateVM(ctx, vm.ID, nodes[to].ID)
		doneB(b, c, tk, err)
		apiTook += time.Since(t0)
		d := downtimeMs(b, hosts[to], dom)
		apiDown, apiPeak, apiN = apiDown+d, max(apiPeak, d), apiN+1
		for _, leg := range [][2]int{{to, at}, {at, to}} {
			took, d := bare(leg[0], leg[1])
			bareTook += took
			bareDown, barePeak, bareN = bareDown+d, max(barePeak, d), bareN+1
		}
		at = to
	}
	b.ReportMetric(apiDown/float64(apiN), "downtime-ms")
	b.ReportMetric(apiPeak, "downtime-peak-ms")
	b.ReportMetric(bareDown/float64(bareN), "bare-downtime-ms")
	b.ReportMetric(barePeak, "bare-downtime-peak-ms")
	b.ReportMetric((apiDown/float64(apiN))/(bareDown/float64(bareN)), "downtime/bare")
	b.ReportMetric(apiTook.Seconds()/float64(apiN), "migrate-s")
	b.ReportMetric(bareTook.Seconds()/float64(bareN), "bare-migrate-s")
	b.ReportMetric((apiTook.Seconds()/float64(apiN))/(bareTook.Seconds()/float64(bareN)), "migrate/bare")
}

// doneB waits for a task of a benchmark's setup or round to succeed.
func doneB(b *testing.B, c *client.Client, tk api.TaskView, err error) {
	b.Helper()
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(b, err, "task %s (%s) did not end in 5 minutes", tk.ID, tk.Kind)
	require.NoError(b, client.TaskError(tk))
}

var totalDowntime = regexp.MustCompile(`(?m)^Total downtime:\s+(\d+)\s+ms`)

// downtimeMs reads libvirt's downtime of the last completed migration of
// domain dom on host h (the target).
func downtimeMs(b *testing.B, h *testenv.LibvirtHost, dom string) float64 {
	b.Helper()
	out, err := exec.Command("virsh", "-c", "qemu+unix:///system?socket="+h.Socket, "domjobinfo", dom, "--completed").CombinedOutput()
	require.NoError(b, err, "domjobinfo on %s: %s", h.Name, out)
	m := totalDowntime.FindSubmatch(out)
	require.NotNil(b, m, "no downtime in the completed job on %s:\n%s", h.Name, out)
	ms, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(b, err)
	return ms
}

func hostOf(b *testing.B, hostPort string) string {
	host, _, err := net.SplitHostPort(hostPort)
	require.NoError(b, err)
	return host
}
