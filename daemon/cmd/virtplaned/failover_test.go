package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/postgres"
	"github.com/virtplane/virtplane/vmm"
)

// TestLeaderFailoverUnderLoad: two daemons on one PostgreSQL database take
// 1,000 orders through both APIs; the placement leader is killed with
// SIGKILL a third of the way in. Every order completes through the other
// daemon (the orders the dead one had accepted, and the creates it was
// running, rolled back and run again), the nodes are filled exactly to
// their capacity and none past it, by the daemon's records and by the
// nodes' own.
func TestLeaderFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 creates on PostgreSQL and a failover; runs without -short")
	}
	const (
		orders = 1000
		nodes  = 10
		cores  = orders / nodes // the cluster holds exactly the orders
	)
	dsn := dbtest.PostgresDSN(t)
	ctx, cancel := context.WithTimeout(t.Context(), 9*time.Minute)
	defer cancel()
	args := func(instance string) string {
		return "serve --store postgres --dsn " + dsn + " --data " + t.TempDir() + " --listen 127.0.0.1:0 --node none --instance " + instance +
			" --admin-password admin-password --task-lease 3s"
	}
	procs := map[string]*daemonProc{}
	for _, name := range []string{"f1", "f2"} {
		p := startDaemonArgs(t, "", args(name))
		t.Cleanup(p.kill)
		procs[name] = p
	}
	st, err := postgres.Open(ctx, dsn)
	require.NoError(t, err)
	defer st.Close()
	leader := func() string {
		o, err := st.GetObject(ctx, store.KindLease, "placement")
		if err != nil {
			return ""
		}
		var l struct {
			Holder string `json:"holder"`
		}
		_ = json.Unmarshal(o.Data, &l)
		return l.Holder
	}
	require.Eventually(t, func() bool { return leader() != "" }, 30*time.Second, 20*time.Millisecond, "no daemon took the placement lead")
	lead := leader()
	other := map[string]string{"f1": "f2", "f2": "f1"}[lead]
	t.Logf("placement leader %s", lead)

	token, err := client.New(procs["f1"].url, "").Login(ctx, "admin", "admin-password")
	require.NoError(t, err)
	admin := client.New(procs[lead].url, token)
	cl, err := admin.CreateCluster(ctx, api.ClusterBody{Name: "failover"})
	require.NoError(t, err)
	var nodeIDs []string
	for i := range nodes {
		n, err := admin.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: fmt.Sprintf("sim%02d", i), Address: "sim", Cores: cores, MemoryMiB: cores * 256, DiskGiB: cores})
		require.NoError(t, err)
		nodeIDs = append(nodeIDs, n.ID)
	}
	pool, err := admin.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "10.40.0.0/21", Gateway: "10.40.0.1"}}})
	require.NoError(t, err)
	img, err := admin.CreateImage(ctx, api.ImageBody{Name: "debian", Source: "/images/debian.qcow2", SizeMiB: 1024})
	require.NoError(t, err)

	var mu sync.Mutex
	dead := ""
	url := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		name := []string{"f1", "f2"}[i%2]
		if name == dead {
			name = other
		}
		return procs[name].url
	}
	taskIDs := make([]string, orders)
	var next, accepted atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= orders {
					return
				}
				body := api.VMCreateBody{Name: fmt.Sprintf("vm-%04d", i), ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 256, DiskGiB: 1}
				for try := 0; ctx.Err() == nil; try++ {
					_, tk, err := client.New(url(i+try), token).CreateVM(ctx, body, fmt.Sprintf("order-%04d", i))
					if err == nil {
						taskIDs[i] = tk.ID
						accepted.Add(1)
						break
					}
					if !errors.Is(err, virtplane.ErrUnavailable) {
						t.Errorf("order %d: %v", i, err)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	// The kill, a third of the way in.
	for accepted.Load() < orders/3 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	procs[lead].kill()
	dead = lead
	mu.Unlock()
	killedAt := accepted.Load()
	wg.Wait()
	require.EqualValues(t, orders, accepted.Load())

	c := client.New(procs[other].url, token)
	retried := 0
	for i, id := range taskIDs {
		tk, err := c.WaitTask(ctx, id)
		require.NoError(t, err, "order %d", i)
		if !assert.Equal(t, "succeeded", tk.State, "order %d: %s", i, tk.Error) {
			continue
		}
		if tk.Attempt > 1 {
			retried++
		}
	}
	assert.Equal(t, other, leader(), "the survivor leads")
	t.Logf("killed %s after %d orders; %d creates ran again after the kill", lead, killedAt, retried)

	// The daemon's records: every VM running, once per node's core.
	perNode := map[string]int{}
	addrs := map[string]bool{}
	after := ""
	total := 0
	for {
		page, err := c.ListVMs(ctx, client.VMListOptions{ListOptions: client.ListOptions{After: after, Limit: 1000}})
		require.NoError(t, err)
		for _, vm := range page.Items {
			total++
			assert.Equal(t, model.VMRunning, vm.State, vm.ID)
			perNode[vm.NodeID]++
			for _, a := range vm.Addresses {
				assert.False(t, addrs[a], "address %s given twice", a)
				addrs[a] = true
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	assert.Equal(t, orders, total)
	for _, n := range nodeIDs {
		assert.LessOrEqual(t, perNode[n], cores, "node %s over capacity by the daemon's records", n)
	}
	// The nodes' own: their machines, running, never past their cores.
	for _, n := range nodeIDs {
		objs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: n})
		require.NoError(t, err)
		vcpus := 0
		for _, o := range objs {
			var rec struct {
				Spec  vmm.Spec  `json:"spec"`
				State vmm.State `json:"state"`
			}
			require.NoError(t, json.Unmarshal(o.Data, &rec))
			assert.Equal(t, vmm.StateRunning, rec.State, rec.Spec.Name)
			vcpus += rec.Spec.VCPUs
		}
		assert.LessOrEqual(t, vcpus, cores, "node %s holds %d vCPUs of %d", n, vcpus, cores)
		assert.Equal(t, perNode[n], len(objs), "node %s: machines and VM records differ", n)
	}
}
