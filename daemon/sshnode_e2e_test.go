package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

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

// TestEndToEndSSHNode drives a node reached over SSH through the API. The
// "remote machine" is this one over the loopback sshd: a libvirtd of its
// own (its own mount, UTS and network namespaces, as testenv starts for
// migrations), whose socket the daemon reaches through the SSH connection,
// qemu-img run over SSH, and the VM's network port made by the virtplaned
// binary (built by the test) in that libvirtd's network namespace, named
// by the address. The root namespace gets nothing. A VM is created from an
// imported image, runs on QEMU, and is deleted with nothing left: no
// domain, no volume, no port, no bridge.
func TestEndToEndSSHNode(t *testing.T) {
	sshd := testenv.RequireSSH(t)
	peer := testenv.StartLibvirtHost(t, "vpt-ssh-node", "10.234", 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := hostTempDir(t, "vpt-ssh-e2e-")
	agent := filepath.Join(dir, "bin", "virtplaned")
	build := exec.Command("go", "build", "-o", agent, "github.com/virtplane/virtplane/daemon/cmd/virtplaned")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	nodeDir := filepath.Join(dir, "node")
	srv, err := daemon.New(daemon.Config{Store: dbtest.SQLite(t), Instance: "ssh-e2e", DataDir: filepath.Join(dir, "data"),
		SSHKeyFile: sshd.KeyFile, SSHKnownHostsFile: sshd.KnownHosts, SSHNodeDir: nodeDir, DomainType: peer.DomainType})
	require.NoError(t, err)
	c := serveAdmin(t, srv)

	// The node's libvirtd as the test sees it, directly.
	host, err := libvirt.New(libvirt.Config{Socket: peer.Socket, StateDir: filepath.Join(dir, "inspect")}, libvirt.WithValues(peer.Values()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = host.Close() })
	// ip and nft in the node's namespace, or in the root one.
	inNode := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", peer.NS.Name}, args...)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}

	bridge := "vpt-br-" + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, rand.Uint32()))
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "ssh", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge})
	require.NoError(t, err)
	q := url.Values{"socket": {peer.Socket}, "agent": {agent}, "netns": {peer.NS.Name}}
	address := "ssh://" + sshd.User + "@" + sshd.Addr + "?" + q.Encode()
	node, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "remote1", Address: address, Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
	require.NoError(t, err)
	ipPool, err := c.CreatePool(ctx, api.PoolBody{Name: "ssh", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/28", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)

	guest := testenv.RequireGuest(t)
	src := guest.Disk
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "guest", OSType: "linux", Source: src, Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err := c.ImportImage(ctx, img.ID, api.ImageImportBody{ClusterID: cl.ID})
	succeeded(t, c, tk, err)
	pool, err := srv.Flow.NodePool(ctx, node.ID)
	require.NoError(t, err)
	base, err := pool.Volume(ctx, flow.ImageVolume(img.ID))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(base.Attachment.Path, filepath.Join(nodeDir, "images")+"/"), "the image is in the node's directory: %s", base.Attachment.Path)

	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "ssh-vm", ClusterID: cl.ID, ImageID: img.ID, PoolID: ipPool.ID, CPUs: 1, MemoryMiB: 192, DiskGiB: 1,
		Limits: model.Limits{NetMbit: 10}}, "ssh-1")
	require.NoError(t, err)
	tap := flow.PortName(vm.ID)
	t.Cleanup(func() {
		_ = host.Stop(context.Background(), flow.DomainName(vm.ID))
		_ = host.Delete(context.Background(), flow.DomainName(vm.ID))
	})
	succeeded(t, c, tk, err)
	vm, err = c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, model.VMRunning, vm.State)
	assert.Equal(t, node.ID, vm.NodeID)

	dom, err := host.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State, "QEMU runs the domain on the node's libvirtd")
	// The guest boots on the node and reads its seed, written by the daemon
	// into the node's directory.
	console, err := testenv.WaitConsole(ctx, filepath.Join(nodeDir, "vmm", flow.DomainName(vm.ID), "console.log"), "VPT-SEED end", 2*time.Minute)
	require.NoError(t, err, "the guest did not boot and read its seed")
	assert.Contains(t, testenv.GuestSeed(console, "meta-data"), "local-hostname: ssh-vm")
	vol, err := pool.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, flow.ImageVolume(img.ID), vol.Parent, "the disk is a linked clone of the image")
	require.Len(t, dom.Spec.Disks, 1)
	assert.Equal(t, vol.Attachment.Path, dom.Spec.Disks[0].Source.Path)
	// The port, made by the agent in the node's namespace.
	assert.Contains(t, inNode(t, "ip", "link", "show", tap), "master "+bridge)
	table := inNode(t, "nft", "list", "table", "netdev", "vpt-"+tap)
	assert.Contains(t, table, vm.Addresses[0])
	assert.Contains(t, inNode(t, "tc", "class", "show", "dev", tap), "rate 10Mbit")
	rootLinks := run(t, "ip", "-br", "link")
	for _, l := range []string{tap, shaping.IFBName(tap), bridge} {
		assert.NotContains(t, rootLinks, l, "the root namespace got a link")
	}
	assert.NotContains(t, run(t, "nft", "list", "tables"), "vpt-"+tap, "the root namespace got a table")

	// Stop and start again over the tunnel.
	for _, action := range []string{"stop", "start"} {
		tk, err := c.VMAction(ctx, vm.ID, action)
		succeeded(t, c, tk, err)
	}
	dom, err = host.Get(ctx, flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State)

	tk, err = c.DeleteVM(ctx, vm.ID)
	succeeded(t, c, tk, err)
	_, err = host.Get(ctx, flow.DomainName(vm.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left behind")
	_, err = pool.Volume(ctx, flow.VolumeName(vm.ID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "volume left behind")
	links := inNode(t, "ip", "-br", "link")
	for _, l := range []string{tap, shaping.IFBName(tap), bridge} {
		assert.NotContains(t, links, l, "link left behind in the node")
	}
	assert.NotContains(t, inNode(t, "nft", "list", "tables"), "vpt-"+tap, "firewall left behind")
	records, err := filepath.Glob(filepath.Join(nodeDir, "nodes", node.ID, "ports", "*.json"))
	require.NoError(t, err)
	assert.Empty(t, records, "port record left behind")

	tk, err = c.DeleteImage(ctx, img.ID)
	succeeded(t, c, tk, err)
	vols, err := pool.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, vols, "volumes left behind")

	// A node whose SSH server does not answer: unavailable, by name.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	down, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "down1", Address: "ssh://root@" + closed, Cores: 2, MemoryMiB: 2048, DiskGiB: 20})
	require.NoError(t, err)
	img2, err := c.CreateImage(ctx, api.ImageBody{Name: "blank2", OSType: "linux", Source: src, Format: "qcow2"})
	require.NoError(t, err)
	_, tk, err = c.ImportImage(ctx, img2.ID, api.ImageImportBody{NodeID: down.ID})
	err = taskFailed(t, c, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrUnavailable)
	assert.Contains(t, err.Error(), "down1")
}

// TestAddNodeOverSSH: ssh:// addresses are taken by the API, a malformed
// one names the field; a daemon without SSH credentials refuses such a
// node as not implemented, and one with them finds a node whose SSH
// server does not answer unavailable, by name.
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
	n, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "far1", Address: "ssh://root@" + closed + "?netns=vms", Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
	require.NoError(t, err)
	_, err = e.srv.Flow.NodeDriver(ctx, n.ID)
	require.ErrorIs(t, err, virtplane.ErrNotImplemented, "no SSH key configured")
	assert.Contains(t, err.Error(), "far1")

	// A daemon with a key, over the same store.
	_, key, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(key, "")
	require.NoError(t, err)
	dir := t.TempDir()
	keyFile, known := filepath.Join(dir, "key"), filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600))
	require.NoError(t, os.WriteFile(known, nil, 0o600))
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "ssh-keyed", SSHKeyFile: keyFile, SSHKnownHostsFile: known})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	for name, open := range map[string]func() error{
		"driver":  func() error { _, err := srv.Flow.NodeDriver(ctx, n.ID); return err },
		"storage": func() error { _, err := srv.Flow.NodePool(ctx, n.ID); return err },
	} {
		err := open()
		require.ErrorIs(t, err, virtplane.ErrUnavailable, name)
		assert.Contains(t, err.Error(), "node far1", name)
	}
}
