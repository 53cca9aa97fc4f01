package agent_test

import (
	"context"
	"testing"

	"github.com/google/nftables"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane/agent"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/nettest"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/port/porttest"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/lvm"
	"github.com/virtplane/virtplane/storage/storagetest"
)

// TestPortsConformanceKernel runs the port suite through the agent against
// the kernel's ports (bridges, nftables, tc, routes, VxLAN) in a network
// namespace of the test's own, as network/port's own kernel test does.
func TestPortsConformanceKernel(t *testing.T) {
	porttest.Run(t, func(t *testing.T) porttest.Harness {
		ns := testenv.NewNetns(t)
		fd, err := netns.GetFromName(ns.Name)
		require.NoError(t, err)
		t.Cleanup(func() { _ = fd.Close() })
		nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = nft.CloseLasting() })
		h, err := netport.NewKernelHost(t.TempDir(), nettest.Handle(t, ns.Name), nft)
		require.NoError(t, err)
		return porttest.Harness{
			Ports: serve(t, agent.Node{Ports: h}).client.Ports(),
			// The hypervisor's tap, made on the node.
			Plug: func(t *testing.T, name string) {
				ns.Run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", "vpp"+name[len(name)-8:])
				ns.Run(t, "ip", "link", "set", name, "up")
			},
			Unplug: func(t *testing.T, name string) { ns.Run(t, "ip", "link", "del", name) },
		}
	})
}

// TestStorageConformanceLVM runs the storage suite through the agent
// against a real LVM volume group, opened by the controller with the lvm
// opener the agent's binary registers (metadata only: no device-mapper
// here).
func TestStorageConformanceLVM(t *testing.T) {
	env := testenv.RequireLVM(t)
	opener := func(_ context.Context, spec agent.PoolSpec, ex storage.Executor) (storage.Pool, error) {
		if err := agent.NoOptions(spec); err != nil {
			return nil, err
		}
		return lvm.New(lvm.Config{Name: spec.Name, VG: spec.Path, Tags: spec.Tags, Exec: ex, Env: env.Env(), NoActivation: true})
	}
	storagetest.Run(t, func(t *testing.T) storage.Pool {
		c := serve(t, agent.Node{Exec: storage.LocalExecutor{}, PoolOpeners: map[string]agent.PoolOpener{"lvm": opener}}).client
		p, err := c.OpenPool(t.Context(), agent.PoolSpec{Name: "lvm", Driver: "lvm", Path: env.VG, Tags: map[string]string{"tier": "hdd"}})
		require.NoError(t, err)
		return p
	})
}
