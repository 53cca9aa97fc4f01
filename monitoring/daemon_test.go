package monitoring_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
)

// liveDaemon is a daemon on two simulated nodes with VMs, a migration
// and a failed create behind it, kept busy (API calls, reboots) until the
// test ends, so that rates and latency quantiles have something to show.
type liveDaemon struct {
	url string // http://127.0.0.1:PORT
	c   *client.Client
}

func startLiveDaemon(t *testing.T) liveDaemon {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "virtplane.db"))
	require.NoError(t, err)
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "monitoring", DataDir: t.TempDir()})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx) }()
	hs := httptest.NewServer(srv.Handler())
	busy := make(chan struct{})
	t.Cleanup(func() {
		close(busy)
		hs.Close()
		stop()
		<-done
		_ = srv.Close()
		_ = st.Close()
	})
	token, err := srv.Bootstrap(ctx, "admin-password")
	require.NoError(t, err)
	c := client.New(hs.URL, token)

	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "fra1", VirtType: "kvm", Strategy: "even", CPUOvercommit: 4, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	var nodes []string
	for _, name := range []string{"n1", "n2"} {
		n, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: name, Address: "sim", Cores: 8, MemoryMiB: 16384, DiskGiB: 200})
		require.NoError(t, err)
		nodes = append(nodes, n.ID)
	}
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "public", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/28", Gateway: "192.0.2.1"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "debian-12", OSType: "linux", Source: "/var/lib/virtplane/images/debian-12.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	var vms []string
	for _, name := range []string{"web1", "web2", "db1"} {
		vm, tv, err := c.CreateVM(ctx, api.VMCreateBody{Name: name, ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 2, MemoryMiB: 1024, DiskGiB: 10}, "")
		require.NoError(t, err)
		require.NoError(t, c.Task(tv).Wait(ctx))
		vms = append(vms, vm.ID)
	}
	vm, err := c.GetVM(ctx, vms[0])
	require.NoError(t, err)
	target := nodes[0]
	if vm.NodeID == target {
		target = nodes[1]
	}
	tv, err := c.MigrateVM(ctx, vms[0], target)
	require.NoError(t, err)
	require.NoError(t, c.Task(tv).Wait(ctx))
	_, tv, err = c.CreateVM(ctx, api.VMCreateBody{Name: "huge", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 200, MemoryMiB: 1024, DiskGiB: 10}, "")
	require.NoError(t, err)
	require.Error(t, c.Task(tv).Wait(ctx), "a VM no node can take fails")

	go func() {
		for {
			select {
			case <-busy:
				return
			case <-time.After(200 * time.Millisecond):
			}
			bctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = c.ListVMs(bctx, client.VMListOptions{})
			if tv, err := c.RebootVM(bctx, vms[1]); err == nil {
				_ = c.Task(tv).Wait(bctx)
			}
			cancel()
		}
	}()
	return liveDaemon{url: hs.URL, c: c}
}

func clientVMList() client.VMListOptions { return client.VMListOptions{} }
