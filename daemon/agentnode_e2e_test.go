package daemon_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// buildAgent builds virtplaned into dir: the agent the daemon under test
// installs on its ssh:// nodes.
func buildAgent(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "virtplaned")
	build := exec.Command("go", "build", "-o", bin, "github.com/virtplane/virtplane/daemon/cmd/virtplaned")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build virtplaned: %s", out)
	return bin
}

// TestEndToEndAgentNodes drives three ssh:// nodes through the API, as an
// operator adds machines to VMmanager or Proxmox. Each node is a host of
// its own (network, mount and UTS namespaces, its own libvirtd and sshd,
// its own /root, /var/lib/virtplane and /run/virtplane: nothing shared
// with the daemon), on one underlay. The operator gives a password for one
// and a key with the host key's fingerprint for the others; the daemon
// pins the host key, installs its own key and binary and starts the node
// agent, which serves the node's libvirtd, file pool, ports and commands.
// VMs boot on every node from linked clones of an image the daemon
// uploaded through the agent, read their seeds, and one migrates live
// between two nodes while its guest keeps ticking; the web console of a VM
// opens through the daemon's proxy; an agent killed with SIGKILL comes back
// on the next call, also when killed in the middle of creates; deleting
// everything leaves nothing.
func TestEndToEndAgentNodes(t *testing.T) {
	lv := testenv.RequireLibvirt(t)
	guest := testenv.RequireGuest(t)
	u := testenv.NewUnderlay(t)
	priv, pub := testenv.NewSSHKey(t)
	hosts := []*testenv.LibvirtHost{
		testenv.StartLibvirtHost(t, "vpt-an-a", "", 0, testenv.OnUnderlay(u), testenv.WithSSH(testenv.SSHLogin{Password: "pw-node-a"})),
		testenv.StartLibvirtHost(t, "vpt-an-b", "", 1, testenv.OnUnderlay(u), testenv.WithSSH(testenv.SSHLogin{AuthorizedKeys: []string{pub}})),
		testenv.StartLibvirtHost(t, "vpt-an-c", "", 2, testenv.OnUnderlay(u), testenv.WithSSH(testenv.SSHLogin{AuthorizedKeys: []string{pub}})),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-agent-e2e-")
	bin := buildAgent(t, dir)
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "agent-e2e", DataDir: filepath.Join(dir, "data"),
		AgentBinary: bin, DomainType: lv.DomainType})
	require.NoError(t, err)
	c := serveAdmin(t, srv)

	// Each host's libvirtd as the test sees it, directly.
	drivers := make([]*libvirt.Driver, len(hosts))
	for i, h := range hosts {
		d, err := libvirt.New(libvirt.Config{Socket: h.Socket, StateDir: filepath.Join(dir, "inspect")}, libvirt.WithValues(h.Values()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close() })
		drivers[i] = d
	}
	inNode := func(t *testing.T, h *testenv.LibvirtHost, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS.Name}, args...)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	// A host's /var/lib/virtplane, seen from here.
	nodeLib := func(h *testenv.LibvirtHost, elem ...string) string {
		return filepath.Join(append([]string{h.Dir, "vpt-lib"}, elem...)...)
	}
	consoleLog := func(h *testenv.LibvirtHost, vm model.VM) string {
		return nodeLib(h, "agent", "vmm", flow.DomainName(vm.ID), "console.log")
	}

	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "agents", VirtType: "kvm", Strategy: "even", CPUOvercommit: 8, RAMOvercommit: 2, DiskOvercommit: 2, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)

	// Bad credentials first: refused, by name, and nothing recorded.
	address := func(h *testenv.LibvirtHost) string { return "ssh://root@" + h.SSH.Addr }
	for name, body := range map[string]api.NodeBody{
		"wrong password":    {SSHPassword: "not-the-password"},
		"key not taken":     {SSHPassword: "pw-node-a", HostKeyFingerprint: hosts[1].SSH.HostKeyFingerprint},
		"other fingerprint": {SSHPassword: "pw-node-a", HostKeyFingerprint: hosts[1].SSH.HostKeyFingerprint},
	} {
		body.ClusterID, body.Name, body.Address = cl.ID, "bad-a", address(hosts[0])
		if name == "key not taken" {
			body.SSHPassword, body.HostKeyFingerprint, body.SSHPrivateKey = "", "", priv // a's root takes no key
		}
		_, err := c.AddNode(ctx, body)
		var p *client.Problem
		require.ErrorAs(t, err, &p, name)
		assert.Equal(t, 403, p.Status, "%s: %s", name, p.Error())
		assert.Contains(t, p.Error(), "bad-a", name)
		assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, name)
	}
	page, err := c.ListNodes(ctx, client.NodeListOptions{ClusterID: cl.ID})
	require.NoError(t, err)
	assert.Empty(t, page.Items, "a refused node is not recorded")
	_, err = os.Stat(nodeLib(hosts[0], "bin", "virtplaned"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing installed on a node that was refused")

	// The nodes: a by password (host key pinned on first use), b and c by
	// key with the fingerprint given.
	// c's hostname does not resolve on c while it is added (its /etc/hosts
	// is the host's hosts file): the node is taken, with a warning.
	hostsFile := filepath.Join(hosts[2].Dir, "hosts")
	resolving := readFile(t, hostsFile)
	require.NoError(t, os.WriteFile(hostsFile, []byte("127.0.0.1 localhost\n"), 0o644))
	nodes := make([]model.Node, len(hosts))
	for i, h := range hosts {
		body := api.NodeBody{ClusterID: cl.ID, Name: h.Name, Address: address(h)}
		if i == 0 {
			body.SSHPassword = "pw-node-a"
		} else {
			body.SSHPrivateKey, body.HostKeyFingerprint = priv, h.SSH.HostKeyFingerprint
		}
		n, err := c.AddNode(ctx, body)
		require.NoError(t, err, h.Name)
		nodes[i] = n
		assert.Equal(t, h.SSH.HostKeyFingerprint, n.HostKeyFingerprint, "the pinned host key is the node's")
		assert.NotEmpty(t, n.AgentVersion)
		assert.Positive(t, n.Cores, "capacity read from the node")
		assert.Positive(t, n.MemoryMiB)
		assert.Positive(t, n.DiskGiB)
		keys := readFile(t, filepath.Join(h.Dir, "root", ".ssh", "authorized_keys"))
		assert.Contains(t, keys, "virtplaned", "the daemon's key is installed on %s", h.Name)
		assert.FileExists(t, nodeLib(h, "bin", "virtplaned"), "the agent is installed on %s", h.Name)
	}
	require.NoError(t, os.WriteFile(hostsFile, []byte(resolving), 0o644))
	assert.Empty(t, nodes[0].Warnings)
	assert.Empty(t, nodes[1].Warnings)
	require.Len(t, nodes[2].Warnings, 1, "c's hostname did not resolve")
	assert.Contains(t, nodes[2].Warnings[0], `hostname "`+hosts[2].Name+`" does not resolve`)
	_, err = os.Stat(filepath.Join(dir, "data", "ssh", "id_ed25519"))
	require.NoError(t, err, "the daemon made its key in its data directory")

	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "agents", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: guest.Disk, Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	succeeded(t, c, tk, err)
	for _, h := range hosts {
		m, _ := filepath.Glob(nodeLib(h, "agent", "images", flow.ImageVolume(img.ID)+".*"))
		assert.Len(t, m, 1, "the image was uploaded to %s", h.Name)
	}

	// One VM per node (even placement), each booting from a linked clone.
	vms := make([]model.VM, len(hosts))
	where := map[string]int{} // node ID → host index
	for i, n := range nodes {
		where[n.ID] = i
	}
	for i := range vms {
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "agent-vm-" + strconv.Itoa(i), ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID,
			CPUs: 1, MemoryMiB: 192, DiskGiB: 1, Limits: model.Limits{NetMbit: 10}}, "agent-vm-"+strconv.Itoa(i))
		require.NoError(t, err)
		t.Cleanup(func() {
			for _, d := range drivers {
				_ = d.Stop(context.Background(), flow.DomainName(vm.ID))
				_ = d.Delete(context.Background(), flow.DomainName(vm.ID))
			}
		})
		succeeded(t, c, tk, err)
		vms[i], err = c.GetVM(ctx, vm.ID)
		require.NoError(t, err)
		require.Equal(t, model.VMRunning, vms[i].State)
	}
	seen := map[string]bool{}
	for _, vm := range vms {
		seen[vm.NodeID] = true
	}
	require.Len(t, seen, len(hosts), "even placement put one VM on each node")
	for _, vm := range vms {
		i := where[vm.NodeID]
		h := hosts[i]
		dom, err := drivers[i].Get(ctx, flow.DomainName(vm.ID))
		require.NoError(t, err, "the domain is on %s's libvirtd", h.Name)
		assert.Equal(t, vmm.StateRunning, dom.State)
		console, err := testenv.WaitConsole(ctx, consoleLog(h, vm), "VPT-SEED end", 3*time.Minute)
		require.NoError(t, err, "the guest on %s did not boot and read its seed", h.Name)
		assert.Contains(t, testenv.GuestSeed(console, "meta-data"), "local-hostname: "+vm.Name)
		pool, err := srv.Flow.NodePool(ctx, vm.NodeID)
		require.NoError(t, err)
		vol, err := pool.Volume(ctx, flow.VolumeName(vm.ID))
		require.NoError(t, err)
		assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "the disk is a linked clone of the image")
		assert.True(t, strings.HasPrefix(vol.Attachment.Path, "/var/lib/virtplane/agent/images/"), vol.Attachment.Path)
		assert.FileExists(t, nodeLib(h, "agent", "images", filepath.Base(vol.Attachment.Path)), "the disk is on the node's own disk")
		// The port, made by the agent in the node's namespace.
		tap := flow.PortName(vm.ID)
		assert.Contains(t, inNode(t, h, "ip", "link", "show", tap), "master "+bridge)
		assert.Contains(t, inNode(t, h, "tc", "class", "show", "dev", tap), "rate 10Mbit")
	}
	rootLinks := run(t, "ip", "-br", "link")
	for _, vm := range vms {
		assert.NotContains(t, rootLinks, flow.PortName(vm.ID), "the root namespace got a link")
	}

	// The web console of a VM on an agent node: the daemon's proxy reaches
	// the VNC server QEMU opened on the node's loopback through its SSH
	// connection; the customer gets a ticket, never the node's address.
	tkt, err := c.ConsoleTicket(ctx, vms[0].ID)
	require.NoError(t, err)
	assert.NotContains(t, tkt.PageURL+tkt.WebSocketURL, hosts[where[vms[0].NodeID]].SSH.Addr)
	desktop, err := rfbClient(ctx, c.Base(), tkt.WebSocketURL)
	require.NoError(t, err, "the console of a VM on an ssh:// node")
	assert.Contains(t, desktop, flow.DomainName(vms[0].ID), "QEMU's VNC server of that VM answered")

	// An agent killed with SIGKILL: the next call starts it again.
	first := hosts[where[vms[0].NodeID]]
	pid := agentPID(t, nodeLib(first, "agent.pid"))
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil }, 10*time.Second, 50*time.Millisecond, "the killed agent is gone")
	tk, err = c.VMAction(ctx, vms[0].ID, "stop")
	succeeded(t, c, tk, err)
	tk, err = c.VMAction(ctx, vms[0].ID, "start")
	succeeded(t, c, tk, err)
	assert.NotEqual(t, pid, agentPID(t, nodeLib(first, "agent.pid")), "a new agent serves the node")
	got, err := c.GetVM(ctx, vms[0].ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, got.State)

	// Agents killed with SIGKILL in the middle of creates, each at another
	// step: every create finishes or rolls back, a rolled-back one leaves
	// nothing on its node, and three more creates then succeed.
	points := []string{"clone image", "prepare network port", "start domain"}
	type killed struct {
		vm    model.VM
		task  api.TaskView
		point string
	}
	var ks []killed
	for i, point := range points {
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "agent-kill-" + strconv.Itoa(i), ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID,
			CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "agent-kill-"+strconv.Itoa(i))
		require.NoError(t, err)
		t.Cleanup(func() {
			for _, d := range drivers {
				_ = d.Stop(context.Background(), flow.DomainName(vm.ID))
				_ = d.Delete(context.Background(), flow.DomainName(vm.ID))
			}
		})
		ks = append(ks, killed{vm: vm, task: tk, point: point})
	}
	kills := make(chan string, len(ks))
	for _, k := range ks {
		go func() {
			// The kill lands once the task's live message names the step
			// (its calls to the agent are then about to start, under way
			// or just done).
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				tk, err := c.GetTask(ctx, k.task.ID)
				at := err == nil && strings.Contains(tk.Message, k.point)
				vm, err := c.GetVM(ctx, k.vm.ID)
				if at && err == nil && vm.NodeID != "" {
					h := hosts[where[vm.NodeID]]
					b, _ := os.ReadFile(nodeLib(h, "agent.pid"))
					pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
					if pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
						kills <- fmt.Sprintf("%s: agent %d of %s killed at %q", k.vm.Name, pid, h.Name, k.point)
					} else {
						kills <- fmt.Sprintf("%s: agent of %s already gone at %q", k.vm.Name, h.Name, k.point)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			kills <- k.vm.Name + ": the task never reached " + strconv.Quote(k.point)
		}()
	}
	for range ks {
		t.Log(<-kills)
	}
	for _, k := range ks {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		tk, err := c.WaitTask(wctx, k.task.ID)
		cancel()
		require.NoError(t, err, "%s: the create did not end in 3 minutes after its agent was killed", k.vm.Name)
		vm, err := c.GetVM(ctx, k.vm.ID)
		require.NoError(t, err)
		i := where[vm.NodeID]
		_, derr := drivers[i].Get(ctx, flow.DomainName(vm.ID))
		if lines, err := c.GetTaskLog(ctx, k.task.ID); err == nil {
			for _, l := range lines {
				t.Logf("%s task: %s", vm.Name, l.Line)
			}
		}
		if terr := client.TaskError(tk); terr != nil {
			t.Logf("%s (killed at %q): rolled back: %v", vm.Name, k.point, terr)
			assert.Equal(t, model.VMFailed, vm.State)
			assert.ErrorIs(t, derr, virtplane.ErrNotFound, "%s: a rolled-back create left its domain on %s", vm.Name, hosts[i].Name)
			assert.NotContains(t, inNode(t, hosts[i], "ip", "-br", "link"), flow.PortName(vm.ID), "%s: a rolled-back create left its port", vm.Name)
			pool, err := srv.Flow.NodePool(ctx, vm.NodeID)
			require.NoError(t, err)
			_, err = pool.Volume(ctx, flow.VolumeName(vm.ID))
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "%s: a rolled-back create left its volume", vm.Name)
		} else {
			t.Logf("%s (killed at %q): finished", vm.Name, k.point)
			assert.Equal(t, model.VMRunning, vm.State)
			assert.NoError(t, derr, "%s: the domain of a finished create is on %s", vm.Name, hosts[i].Name)
		}
		vms = append(vms, vm)
	}
	for i := range hosts {
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "agent-after-" + strconv.Itoa(i), ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID,
			CPUs: 1, MemoryMiB: 128, DiskGiB: 1}, "agent-after-"+strconv.Itoa(i))
		require.NoError(t, err)
		succeeded(t, c, tk, err)
		vms = append(vms, vm)
	}

	// Live migration between two agent nodes: the disk is mirrored into
	// the target's own pool, the guest keeps ticking without a reboot.
	mv := vms[1]
	from := where[mv.NodeID]
	to := (from + 1) % len(hosts)
	tick := guestBooted(t, consoleLog(hosts[from], mv), guest.Marker, 1)
	tk, err = c.MigrateVM(ctx, mv.ID, nodes[to].ID)
	require.NoError(t, err)
	// A few seconds here (BenchmarkLiveMigrationDowntimeAgentNodes); the
	// deadline leaves room for a loaded machine.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	tk, err = c.WaitTask(wctx, tk.ID)
	cancel()
	require.NoError(t, err, "the migration did not end in 3 minutes")
	require.NoError(t, client.TaskError(tk))
	got, err = c.GetVM(ctx, mv.ID)
	require.NoError(t, err)
	assert.Equal(t, nodes[to].ID, got.NodeID)
	assert.Equal(t, model.VMRunning, got.State)
	dom, err := drivers[to].Get(ctx, flow.DomainName(mv.ID))
	require.NoError(t, err, "the domain runs on the target's libvirtd")
	assert.Equal(t, vmm.StateRunning, dom.State)
	_, err = drivers[from].Get(ctx, flow.DomainName(mv.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the domain left the source")
	// The target's QEMU writes its own console log: the guest goes on
	// counting where it was, with no boot in between.
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(consoleLog(hosts[to], mv))
		boots, last := testenv.GuestProgress(string(b), guest.Marker)
		return boots == 0 && last > tick
	}, time.Minute, 250*time.Millisecond, "the guest ticks on, on the target, past heartbeat %d without rebooting", tick)
	assert.NotContains(t, inNode(t, hosts[from], "ip", "-br", "link"), flow.PortName(mv.ID), "the port left the source")
	assert.Contains(t, inNode(t, hosts[to], "ip", "link", "show", flow.PortName(mv.ID)), "master "+bridge)
	srcPool, err := srv.Flow.NodePool(ctx, nodes[from].ID)
	require.NoError(t, err)
	_, err = srcPool.Volume(ctx, flow.VolumeName(mv.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "the source's disk is gone")

	// Delete everything: nothing is left on the nodes.
	for _, vm := range vms {
		tk, err := c.DeleteVM(ctx, vm.ID)
		succeeded(t, c, tk, err)
	}
	tk, err = c.DeleteImage(ctx, img.ID)
	succeeded(t, c, tk, err)
	for i, h := range hosts {
		for _, vm := range vms {
			_, err := drivers[i].Get(ctx, flow.DomainName(vm.ID))
			assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left on %s", h.Name)
			tap := flow.PortName(vm.ID)
			links := inNode(t, h, "ip", "-br", "link")
			assert.NotContains(t, links, tap, "tap left on %s", h.Name)
			assert.NotContains(t, links, shaping.IFBName(tap), "ifb left on %s", h.Name)
			assert.NotContains(t, inNode(t, h, "nft", "list", "tables"), "vpt-"+tap, "firewall left on %s", h.Name)
		}
		pool, err := srv.Flow.NodePool(ctx, nodes[i].ID)
		require.NoError(t, err)
		vols, err := pool.List(ctx)
		require.NoError(t, err)
		assert.Empty(t, vols, "volumes left on %s", h.Name)
		records, err := filepath.Glob(nodeLib(h, "agent", "ports", "*"))
		require.NoError(t, err)
		assert.Empty(t, records, "port records left on %s", h.Name)
	}
}

func agentPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}

// TestAddNodeOverSSH: ssh:// addresses are read by the API, a malformed
// one names the field; a daemon without an agent binary refuses such a
// node as not implemented, and one with it finds a node whose SSH server
// does not answer unavailable, by name; neither records it.
func TestAddNodeOverSSH(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx := t.Context()
	for _, bad := range []string{
		"ssh://node1", "ssh://root:pw@node1", "ssh://root@node1:0", "ssh://root@node1?agent=relative",
		"ssh://root@node1?netns=../x", "ssh://root@node1?migration_address=10.0.0.1", "ssh://root@node1/path",
	} {
		_, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "bad", Address: bad, Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
		var p *client.Problem
		require.ErrorAs(t, err, &p, bad)
		assert.Equal(t, 422, p.Status, p.Error())
		assert.Equal(t, "body.address", p.Field(), p.Error())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	body := api.NodeBody{ClusterID: e.cluster.ID, Name: "far1", Address: "ssh://root@" + closed, SSHPassword: "x"}
	_, err = e.admin.AddNode(ctx, body)
	require.ErrorIs(t, err, virtplane.ErrNotImplemented, "no agent binary configured")
	assert.Contains(t, err.Error(), "far1")

	// A daemon with an agent binary, over the same store.
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "ssh-keyed", DataDir: t.TempDir(), AgentBinary: "/bin/true", AgentVersion: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	c := serveAdmin(t, srv)
	_, err = c.AddNode(ctx, body)
	require.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "far1")
	page, err := c.ListNodes(ctx, client.NodeListOptions{ClusterID: e.cluster.ID})
	require.NoError(t, err)
	for _, n := range page.Items {
		assert.NotEqual(t, "far1", n.Name, "a node that could not be prepared is not recorded")
	}
}
