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
	"regexp"
	"strconv"
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
	"github.com/virtplane/virtplane/internal/browser"
	"github.com/virtplane/virtplane/internal/testenv"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// realNode is a daemon whose local node is the shared libvirtd, with a
// file pool and kernel network ports of its own (a vpt-br-* bridge without
// uplink), and a first cluster, node and IP pool.
type realNode struct {
	srv     *daemon.Server
	admin   *client.Client
	drv     *libvirt.Driver
	cluster model.Cluster
	node    model.Node
	pool    model.IPPool
	bridge  string
}

func newRealNode(t *testing.T) *realNode {
	lv := testenv.RequireLibvirt(t)
	ctx := t.Context()
	dir := hostTempDir(t, "vpt-vmf-")
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
	r := &realNode{drv: drv, bridge: "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))}
	r.srv, err = daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "vmf", DataDir: filepath.Join(dir, "data"),
		LocalDriver:       func(context.Context) (vmm.Driver, error) { return drv, nil },
		LocalStorage:      func(context.Context) (storage.Pool, error) { return pool, nil },
		LocalPorts:        func(context.Context) (netport.Ports, error) { return ports, nil },
		OverrideDiskRoots: []string{imagesDir},
		ConsoleTicketTTL:  10 * time.Second,
	})
	require.NoError(t, err)
	r.admin = serveAdmin(t, r.srv)
	r.cluster, err = r.admin.CreateCluster(ctx, api.ClusterBody{Name: "real", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: r.bridge})
	require.NoError(t, err)
	r.node, err = r.admin.AddNode(ctx, api.NodeBody{ClusterID: r.cluster.ID, Name: "local1", Address: "local", Cores: 2, MemoryMiB: 4096, DiskGiB: 20})
	require.NoError(t, err)
	r.pool, err = r.admin.CreatePool(ctx, api.PoolBody{Name: "real", ClusterIDs: []string{r.cluster.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.16/28", Gateway: "198.51.100.17"}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", r.bridge).Run() })
	return r
}

// cleanupVM removes what a failed run left of a VM: its domain, port
// devices and firewall table (names of this test only).
func (r *realNode) cleanupVM(t *testing.T, vmID string) {
	t.Cleanup(func() {
		ctx := context.Background()
		_ = r.drv.Stop(ctx, flow.DomainName(vmID))
		_ = r.drv.Delete(ctx, flow.DomainName(vmID))
		tap := flow.PortName(vmID)
		_ = exec.Command("nft", "delete", "table", "netdev", "vpt-"+tap).Run()
		for _, l := range []string{tap, shaping.IFBName(tap)} {
			_ = exec.Command("ip", "link", "del", l).Run()
		}
	})
}

// serial follows a domain's serial console log.
type serial struct {
	path string
}

func (s serial) text() string {
	b, _ := os.ReadFile(s.path)
	return string(b)
}

func (s serial) offset() int { return len(s.text()) }

// waitFor waits until the log after offset contains want, and returns
// that part of the log.
func (s serial) waitFor(t *testing.T, from int, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		txt := s.text()
		if len(txt) >= from && strings.Contains(txt[from:], want) {
			return txt[from:]
		}
		if time.Now().After(deadline) {
			tail := txt
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			t.Fatalf("no %q on the serial console within %s; the log ends:\n%s", want, within, tail)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var tickRE = regexp.MustCompile(`VPT-TICK (\d+)`)

// ticks are the heartbeat numbers in a piece of the log, in order.
func ticks(s string) []int {
	var out []int
	for _, m := range tickRE.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// TestRealVMFeatures drives a VM booted from the demo image on the shared
// libvirtd (QEMU/TCG) through the daemon: a domain template whose override
// changes the XML, the web console in headless Chromium showing the
// guest's screen (and refusing a used ticket), limits in the live XML and
// in tc, a memory snapshot whose revert resumes the guest's counter, and
// rescue into the rescue kernel and back.
func TestRealVMFeatures(t *testing.T) {
	demo := testenv.RequireDemoImage(t)
	guest := testenv.RequireGuest(t)
	chromium := testenv.RequireChromium(t)
	r := newRealNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	c := r.admin

	img, err := c.CreateImage(ctx, api.ImageBody{Name: "demo", OSType: "linux", Source: demo.Path, Format: demo.Format})
	require.NoError(t, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: r.cluster.ID})
	done(t, c, tk, err)
	tpl, err := c.CreateTemplate(ctx, api.TemplateBody{Name: "tablet", Video: "vga",
		Override: `<domain><on_crash>restart</on_crash><devices><input type='tablet' bus='usb'/></devices></domain>`})
	require.NoError(t, err)

	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "demo-1", ClusterID: r.cluster.ID, ImageID: img.ID, PoolID: r.pool.ID,
		CPUs: 1, MemoryMiB: 192, DiskGiB: 1, TemplateID: tpl.ID}, "")
	require.NoError(t, err)
	r.cleanupVM(t, vm.ID)
	done(t, c, tk, err)
	name := flow.DomainName(vm.ID)
	con := serial{path: r.drv.ConsoleLog(name)}
	con.waitFor(t, 0, demo.Banner, 3*time.Minute)

	t.Run("TemplateOverride", func(t *testing.T) {
		live := run(t, "virsh", "-c", "qemu:///system", "dumpxml", name)
		assert.Contains(t, live, "<on_crash>restart</on_crash>", "the override's element")
		assert.Contains(t, live, "<input type='tablet' bus='usb'>", "the override's device, beside the rendered ones")
		assert.Contains(t, live, "<model type='vga'", "the template's video value")
		assert.Contains(t, live, "<graphics type='vnc'", "the create flow asked for a console")
	})

	t.Run("BrowserConsole", func(t *testing.T) {
		tkt, err := c.ConsoleTicket(ctx, vm.ID)
		require.NoError(t, err)
		dir := t.TempDir()
		b, err := browser.Start(ctx, chromium.Bin, chromium.Flags, dir)
		require.NoError(t, err)
		defer b.Close()
		p, err := b.NewPage(ctx)
		require.NoError(t, err)
		require.NoError(t, p.SetViewport(ctx, 1024, 768))
		require.NoError(t, p.Navigate(ctx, c.Base()+tkt.PageURL))
		// The guest's screen: the console connects and the canvas shows
		// the demo's text (lit pixels on the black text-mode screen).
		var state string
		lit := 0
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) && lit < 500 {
			_ = p.Eval(ctx, `window.vptConsole ? window.vptConsole.state : "loading"`, &state)
			_ = p.Eval(ctx, `(() => { const c = document.querySelector("#screen canvas"); if (!c || !c.width) return 0;
				const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
				for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 96) n++; return n; })()`, &lit)
			time.Sleep(500 * time.Millisecond)
		}
		shot, err := p.Screenshot(ctx)
		require.NoError(t, err)
		shotPath := filepath.Join(os.TempDir(), "vpt-console-"+vm.ID+".png")
		require.NoError(t, os.WriteFile(shotPath, shot, 0o644))
		t.Logf("console state %q, %d lit pixels; screenshot %s", state, lit, shotPath)
		require.Equal(t, "connected", state)
		assert.Greater(t, lit, 500, "the canvas shows the guest's screen")
		var w, h int
		require.NoError(t, p.Eval(ctx, `document.querySelector("#screen canvas").width`, &w))
		require.NoError(t, p.Eval(ctx, `document.querySelector("#screen canvas").height`, &h))
		assert.Equal(t, [2]int{720, 400}, [2]int{w, h}, "QEMU's VGA text mode, 720x400")

		// The same ticket again, in a second tab: refused.
		p2, err := b.NewPage(ctx)
		require.NoError(t, err)
		require.NoError(t, p2.Navigate(ctx, c.Base()+tkt.PageURL))
		for time.Now().Before(deadline.Add(30*time.Second)) && state != "disconnected" {
			_ = p2.Eval(ctx, `window.vptConsole ? window.vptConsole.state : "loading"`, &state)
			time.Sleep(250 * time.Millisecond)
		}
		assert.Equal(t, "disconnected", state, "a used ticket opens nothing")
		_, err = rfbClient(ctx, c.Base(), tkt.WebSocketURL)
		assert.ErrorIs(t, err, virtplane.ErrPermissionDenied)

		// An expired ticket (10 s here) opens nothing either.
		late, err := c.ConsoleTicket(ctx, vm.ID)
		require.NoError(t, err)
		time.Sleep(11 * time.Second)
		p3, err := b.NewPage(ctx)
		require.NoError(t, err)
		require.NoError(t, p3.Navigate(ctx, c.Base()+late.PageURL))
		state = ""
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && state != "disconnected"; {
			_ = p3.Eval(ctx, `window.vptConsole ? window.vptConsole.state : "loading"`, &state)
			time.Sleep(250 * time.Millisecond)
		}
		assert.Equal(t, "disconnected", state, "an expired ticket opens nothing")

		// Another user gets no ticket for the VM.
		_, err = c.CreateUser(ctx, "mallory", "mallory-password", model.RoleUser)
		require.NoError(t, err)
		tok, err := client.New(c.Base(), "").Login(ctx, "mallory", "mallory-password")
		require.NoError(t, err)
		_, err = client.New(c.Base(), tok).ConsoleTicket(ctx, vm.ID)
		assert.ErrorIs(t, err, virtplane.ErrNotFound, "another user's VM")
	})

	t.Run("LiveLimits", func(t *testing.T) {
		tk, err := c.SetLimits(ctx, vm.ID, model.Limits{CPUPercent: 50, CPUWeight: 200, NetInMbit: 20, NetOutMbit: 10,
			Disks: map[string]model.DiskLimits{"vda": {ReadIOPS: 200, WriteBytesSec: 8 << 20}}})
		done(t, c, tk, err)
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, "live", got.LimitsApplied)
		live := run(t, "virsh", "-c", "qemu:///system", "dumpxml", name)
		for _, want := range []string{"<global_quota>50000</global_quota>", "<global_period>100000</global_period>", "<shares>200</shares>",
			"<read_iops_sec>200</read_iops_sec>", "<write_bytes_sec>8388608</write_bytes_sec>"} {
			assert.Contains(t, live, want)
		}
		tap := flow.PortName(vm.ID)
		assert.Contains(t, run(t, "tc", "class", "show", "dev", tap), "rate 20Mbit", "what the VM receives")
		assert.Contains(t, run(t, "tc", "qdisc", "show", "dev", shaping.IFBName(tap)), "rate 10Mbit", "what the VM sends")
	})

	t.Run("MemorySnapshotRevert", func(t *testing.T) {
		tk, err := c.CreateSnapshot(ctx, vm.ID, "warm", nil)
		done(t, c, tk, err)
		at := ticks(con.text())
		require.NotEmpty(t, at)
		taken := at[len(at)-1] // the snapshot holds a tick at most this
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		require.Len(t, got.Snapshots, 1)
		assert.Equal(t, model.SnapshotMemory, got.Snapshots[0].Kind)
		off := con.offset()
		con.waitFor(t, off, fmt.Sprintf("VPT-TICK %d", taken+5), time.Minute)
		off = con.offset()
		tk, err = c.RevertSnapshot(ctx, vm.ID, "warm")
		done(t, c, tk, err)
		con.waitFor(t, off, "VPT-TICK", time.Minute)
		time.Sleep(3 * time.Second)
		after := con.text()[off:]
		assert.NotContains(t, after, demo.Banner, "the revert resumed the guest; it did not boot")
		n := ticks(after)
		require.GreaterOrEqual(t, len(n), 2, after)
		// Ticks written after the snapshot but before the revert reached
		// the log may repeat; the counter goes on from the snapshot.
		i := 0
		for i < len(n) && n[i] > taken+1 {
			i++ // lines of the old run flushed late
		}
		require.Less(t, i, len(n), "ticks after the revert: %v (snapshot at ≤ %d)", n, taken)
		t.Logf("snapshot at tick ≤ %d; before the revert the guest reached %d; after it: %v", taken, taken+5, n)
		assert.LessOrEqual(t, n[i], taken+1, "the counter resumes from the snapshot: %v", n)
		assert.Greater(t, n[i], 0)
		assert.Greater(t, n[len(n)-1], n[i], "and keeps counting")
		got, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, model.VMRunning, got.State)
		tk, err = c.DeleteSnapshot(ctx, vm.ID, "warm")
		done(t, c, tk, err)
	})

	t.Run("Rescue", func(t *testing.T) {
		_, err := c.SetClusterRescue(ctx, r.cluster.ID, model.RescueImage{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 vpt.rescue=1"})
		require.NoError(t, err)
		off := con.offset()
		tk, err := c.Rescue(ctx, vm.ID, true)
		done(t, c, tk, err)
		con.waitFor(t, off, guest.Marker, 2*time.Minute)
		got, err := c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, model.VMRescue, got.State)
		d, err := r.drv.Get(ctx, name)
		require.NoError(t, err)
		assert.True(t, d.Rescue)
		assert.Len(t, d.Spec.Disks, 1, "the VM's disk stays attached")

		off = con.offset()
		tk, err = c.Rescue(ctx, vm.ID, false)
		done(t, c, tk, err)
		con.waitFor(t, off, demo.Banner, 2*time.Minute)
		got, err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		assert.Equal(t, model.VMRunning, got.State)
	})

	t.Run("GuestAgentUnavailable", func(t *testing.T) {
		// The demo guest runs no agent: the daemon says so, it does not hang.
		_, err := c.GuestExec(ctx, vm.ID, api.GuestExecBody{Argv: []string{"true"}, TimeoutSec: 60})
		assert.ErrorIs(t, err, virtplane.ErrUnavailable)
	})

	t.Run("StoppedVMHasNoConsole", func(t *testing.T) {
		tk, err := c.Shutdown(ctx, vm.ID, "shutdown", &api.ShutdownBody{TimeoutSec: 2})
		done(t, c, tk, err) // busybox ignores ACPI: forced after 2 s
		_, err = c.ConsoleTicket(ctx, vm.ID)
		assert.ErrorIs(t, err, virtplane.ErrConflict)
	})
	del, err := c.DeleteVM(ctx, vm.ID)
	done(t, c, del, err)
}
