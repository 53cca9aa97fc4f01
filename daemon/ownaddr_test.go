package daemon_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/storage"
)

// TestNodeOwnAddressesNeverHandedOut: a node whose facts list addresses
// inside a pool (a node on the VMs' own network, as a host at 192.0.2.2
// with a pool of 192.0.2.0/24 is) never has one given to a VM on it: met
// on the way, each is excluded from the pool for good, in IPAM and in the
// pool's record; asking for one is refused.
func TestNodeOwnAddressesNeverHandedOut(t *testing.T) {
	st := dbtest.SQLite(t)
	// A simulated node whose facts say it holds 198.51.100.2 and .3.
	kind := node.Kind{
		Name: "simaddr", Forms: "simaddr",
		Parse: func(_, raw string) (any, string, bool, error) { return nil, "", raw == "simaddr", nil },
		Prepare: func(context.Context, string, node.Address, string, node.Credentials) (node.Facts, error) {
			return node.Facts{Cores: 8, MemoryMiB: 16384, DiskGiB: 100, Addresses: []string{"198.51.100.2", "198.51.100.3", "10.0.0.9"}}, nil
		},
		Open: func(ctx context.Context, t node.Target) (*node.Backend, error) {
			drv, err := simnode.Open(ctx, st, t.Node.ID)
			if err != nil {
				return nil, err
			}
			pool, err := simnode.OpenStorage(ctx, st, t.Node.ID)
			if err != nil {
				return nil, err
			}
			ports, err := simnode.OpenPorts(ctx, st, t.Node.ID)
			if err != nil {
				return nil, err
			}
			return &node.Backend{Simulated: true, VMM: drv, Ports: ports, Exec: simnode.Executor{},
				OwnPool: func(context.Context) (storage.Pool, error) { return pool, nil }}, nil
		},
	}
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "own", DataDir: t.TempDir(), NodeKinds: []node.Kind{kind}})
	require.NoError(t, err)
	c := serveAdmin(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, err := c.CreateCluster(ctx, clusterBody("own", "bridge"))
	require.NoError(t, err)
	n, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "n1", Address: "simaddr"})
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.2", "198.51.100.3", "10.0.0.9"}, n.Addresses, "the node's addresses, from its facts")
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "lan", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "198.51.100.0/29", Gateway: "198.51.100.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "img", OSType: "linux", Source: "/x.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	create := func(name, address string) (model.VM, api.TaskView, error) {
		vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: name, ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 256, DiskGiB: 1, Address: address}, "")
		if err != nil {
			return vm, tk, err
		}
		tk, err = c.WaitTask(ctx, tk.ID)
		require.NoError(t, err)
		if err := client.TaskError(tk); err != nil {
			return vm, tk, err
		}
		vm, err = c.GetVM(ctx, vm.ID)
		return vm, tk, err
	}
	vm, tk, err := create("first", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.4"}, vm.Addresses, "past the gateway and the node's .2 and .3")
	lines, err := c.GetTaskLog(ctx, tk.ID)
	require.NoError(t, err)
	var log []string
	for _, l := range lines {
		log = append(log, l.Line)
	}
	assert.Contains(t, strings.Join(log, "\n"), "address 198.51.100.2 is node n1's own: excluded from pool")
	got, err := c.GetPool(ctx, pool.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.2", "198.51.100.3"}, got.Blocks[0].Excluded, "the pool's record shows the exclusions")
	for _, a := range []string{"198.51.100.2", "198.51.100.3"} {
		_, err := srv.IPAM.Allocate(ctx, pool.ID, ipam.Request{Owner: ipam.Owner{VM: "probe"}, Addr: netip.MustParseAddr(a)})
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%s is out of the pool for good", a)
	}
	// Asking for one is refused at once, as an excluded address is.
	_, _, err = create("asked", "198.51.100.2")
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	assert.Equal(t, "body.address", p.Field(), p.Error())
	vm, _, err = create("second", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"198.51.100.5"}, vm.Addresses)
	assert.True(t, netip.MustParsePrefix("198.51.100.0/29").Contains(netip.MustParseAddr(vm.Addresses[0])))
}
