package daemon_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/store/postgres"
)

// startDaemon runs a daemon named instance on its own connection to the
// PostgreSQL database dsn and returns its API URL.
func startDaemon(t *testing.T, dsn, instance string) (*daemon.Server, string) {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	srv, err := daemon.New(daemon.Config{Store: st, Instance: instance, DataDir: t.TempDir(), SimInMemory: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() }) // after serve's cleanup, which stops srv
	return srv, serve(t, srv)
}

// Two daemons share one PostgreSQL database and take orders for VMs at
// once, more than the cluster holds: the VMs placed never overfill a node,
// because only the placement leader places and its view is the whole truth.
// Each daemon placing from its own view would place up to twice the room.
func TestTwoDaemonsNeverOverfillANode(t *testing.T) {
	ctx := t.Context()
	dsn := dbtest.PostgresDSN(t)
	d1, url1 := startDaemon(t, dsn, "d1")
	_, url2 := startDaemon(t, dsn, "d2")
	token, err := d1.Bootstrap(ctx, "admin-password")
	require.NoError(t, err)
	c1, c2 := client.New(url1, token), client.New(url2, token)
	c1.Poll, c2.Poll = 20*time.Millisecond, 20*time.Millisecond

	cl, err := c1.CreateCluster(ctx, api.ClusterBody{Name: "tight", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	// Two nodes of 2 cores: room for four 1-CPU VMs.
	var nodes []string
	for i := range 2 {
		n, err := c2.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: fmt.Sprintf("sim%d", i), Address: "sim", Cores: 2, MemoryMiB: 8192, DiskGiB: 100})
		require.NoError(t, err)
		nodes = append(nodes, n.ID)
	}
	pool, err := c1.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/24", Gateway: "192.0.2.1"}}})
	require.NoError(t, err)
	img, err := c1.CreateImage(ctx, api.ImageBody{Name: "debian", OSType: "linux", Source: "/images/debian.qcow2", Format: "qcow2", SizeMiB: 1024})
	require.NoError(t, err)

	const orders = 10
	tasks := make([]api.TaskView, orders)
	var wg sync.WaitGroup
	for i := range orders {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		wg.Go(func() {
			_, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: fmt.Sprintf("vm%d", i), ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5}, fmt.Sprintf("order-%d", i))
			assert.NoError(t, err)
			tasks[i] = tk
		})
	}
	wg.Wait()
	placed := map[string]int{}
	succeeded := 0
	for i, tk := range tasks {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		done, err := c.WaitTask(wctx, tk.ID)
		cancel()
		require.NoError(t, err)
		switch done.State {
		case "succeeded":
			succeeded++
			vm, err := c.GetVM(ctx, done.Target[len("vm/"):])
			require.NoError(t, err)
			placed[vm.NodeID]++
		case "failed":
			assert.Equal(t, virtplane.ErrResourceExhausted.Error(), done.ErrorClass, "order %d: %s", i, done.Error)
		default:
			t.Fatalf("order %d ended %s", i, done.State)
		}
	}
	assert.Equal(t, 4, succeeded, "the cluster holds four")
	for _, n := range nodes {
		assert.LessOrEqual(t, placed[n], 2, "node %s overfilled", n)
	}
}
