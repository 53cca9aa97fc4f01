package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	"github.com/virtplane/virtplane/vmm"
)

// nodeMachine is one machine as a node itself holds it.
type nodeMachine struct {
	Node  string
	Spec  vmm.Spec
	State vmm.State
}

// nodeView reads what the nodes hold, from the nodes' side: not the
// daemon's VM records. The simulated nodes of `--node sim` keep their
// durable records in the daemon's data directory (simnode), read here once
// the daemon is gone; when the simulated nodes are served by an agent
// process of their own (`virtplaned agent`), this becomes a call to it.
type nodeView func(ctx context.Context, nodeIDs []string) ([]nodeMachine, error)

// simNodeRecords is the nodeView of the simulated nodes of a stopped
// daemon whose data directory is data.
func simNodeRecords(data string) nodeView {
	return func(ctx context.Context, nodeIDs []string) ([]nodeMachine, error) {
		st, err := sqlite.Open(ctx, filepath.Join(data, "virtplane.db"))
		if err != nil {
			return nil, err
		}
		defer st.Close()
		var out []nodeMachine
		for _, id := range nodeIDs {
			objs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: id})
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				var rec struct {
					Spec  vmm.Spec  `json:"spec"`
					State vmm.State `json:"state"`
				}
				if err := json.Unmarshal(o.Data, &rec); err != nil {
					return nil, fmt.Errorf("node %s machine %s: %w", id, o.Name, err)
				}
				out = append(out, nodeMachine{Node: id, Spec: rec.Spec, State: rec.State})
			}
		}
		return out, nil
	}
}

// order is one VM a billing system sells: a key, and what it learnt.
type order struct {
	key string
	mu  sync.Mutex
	vm  string
	tk  string
}

// sendOrder sends an order the way a billing system does: with its key,
// again and again while the daemon does not answer. Every answer must name
// the same VM and task.
func sendOrder(ctx context.Context, t *testing.T, url func() string, token string, o *order, body api.VMCreateBody) {
	for ctx.Err() == nil {
		vm, tk, err := client.New(url(), token).CreateVM(ctx, body, o.key)
		if err == nil {
			o.mu.Lock()
			if o.vm == "" {
				o.vm, o.tk = vm.ID, tk.ID
			} else if o.vm != vm.ID || o.tk != tk.ID {
				t.Errorf("order %s: answered VM %s task %s, before VM %s task %s", o.key, vm.ID, tk.ID, o.vm, o.tk)
			}
			o.mu.Unlock()
			if tk.State == "failed" || tk.State == "canceled" {
				t.Errorf("order %s: its task is %s (%s)", o.key, tk.State, tk.Error)
			}
			return
		}
		if !errors.Is(err, virtplane.ErrUnavailable) {
			t.Errorf("order %s: %v", o.key, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOrdersSurviveDaemonKills is the billing integration's scenario over
// HTTP: 50 orders, each sent twice at once with its idempotency key; the
// daemon killed with SIGKILL (once in the middle, or at 20 random moments),
// restarted, and every order sent twice again. In the end every order has
// exactly one VM, running, with an address of its own, and none failed: an
// accepted order interrupted by the kill is rolled back and run again. What
// the nodes themselves hold is checked too: one running machine per order,
// on the VM's node, with the VM's MAC and address.
func TestOrdersSurviveDaemonKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the daemon; runs without -short")
	}
	for name, kills := range map[string]int{"one kill": 1, "20 kills": 20} {
		t.Run(name, func(t *testing.T) { ordersSurviveKills(t, kills) })
	}
}

func ordersSurviveKills(t *testing.T, kills int) {
	maxKills := kills + 4
	const orders = 50
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	var mu sync.Mutex
	d := startDaemon(t, data)
	t.Cleanup(func() { mu.Lock(); defer mu.Unlock(); d.kill() })
	url := func() string { mu.Lock(); defer mu.Unlock(); return d.url }

	token, err := client.New(d.url, "").Login(ctx, "admin", "admin-password")
	require.NoError(t, err)
	admin := client.New(d.url, token)
	var clusters client.Page[model.Cluster]
	require.NoError(t, admin.Do(ctx, "GET", "/v1/clusters", nil, &clusters))
	require.Len(t, clusters.Items, 1)
	cluster := clusters.Items[0]
	for i := range 3 {
		_, err := admin.AddNode(ctx, api.NodeBody{ClusterID: cluster.ID, Name: fmt.Sprintf("sim-extra%d", i), Address: "sim", Cores: 64, MemoryMiB: 262144, DiskGiB: 1000})
		require.NoError(t, err)
	}
	var nodes client.Page[model.Node]
	require.NoError(t, admin.Do(ctx, "GET", "/v1/nodes", nil, &nodes))
	pool, err := admin.CreatePool(ctx, api.PoolBody{Name: "orders", ClusterIDs: []string{cluster.ID}, Blocks: []api.BlockBody{{Range: "10.30.0.0/24", Gateway: "10.30.0.1"}}})
	require.NoError(t, err)
	var images client.Page[model.Image]
	require.NoError(t, admin.Do(ctx, "GET", "/v1/images", nil, &images))
	body := func(i int) api.VMCreateBody {
		return api.VMCreateBody{Name: fmt.Sprintf("order-vm-%02d", i), ClusterID: cluster.ID, ImageID: images.Items[0].ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 256, DiskGiB: 1}
	}
	ords := make([]*order, orders)
	for i := range ords {
		ords[i] = &order{key: fmt.Sprintf("billing-order-%02d", i)}
	}
	// With many kills the orders come over the time the kills take, as a
	// shop's do, so that the kills land while orders are worked on.
	spread := time.Duration(kills) * 200 * time.Millisecond
	sendAll := func(spread time.Duration) {
		var wg sync.WaitGroup
		for i, o := range ords {
			wait := time.Duration(rand.Int64N(int64(spread) + 1))
			for range 2 {
				wg.Go(func() {
					time.Sleep(wait)
					sendOrder(ctx, t, url, token, o, body(i))
				})
			}
		}
		wg.Wait()
	}

	// The killer: the first kill soon after the first orders, then at
	// random moments while the orders are sent, resent and worked on.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 22))
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		// A kill can land between two tasks (each takes milliseconds on
		// simulated nodes): until one has interrupted an order, the last
		// kill is made again, a few times at most.
		interrupted := func() bool {
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				var all client.Page[api.TaskView]
				if err := client.New(url(), token).Do(ctx, "GET", "/v1/tasks?limit=1000", nil, &all); err == nil {
					for _, tk := range all.Items {
						if tk.Attempt > 1 {
							return true
						}
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			return false
		}
		for k := 0; k < kills; k++ {
			delay := time.Duration(50+rng.IntN(300)) * time.Millisecond
			if k == 0 {
				delay = time.Duration(20+rng.IntN(150)) * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			// Into the middle of an order: once a task runs (for a while
			// at most: the orders may all be done).
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				var running client.Page[api.TaskView]
				if err := client.New(url(), token).Do(ctx, "GET", "/v1/tasks?state=running&limit=1", nil, &running); err == nil && len(running.Items) > 0 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			d.kill()
			d = startDaemon(t, data)
			mu.Unlock()
			if k == kills-1 && kills < maxKills && !interrupted() {
				kills++
				t.Logf("kill %d interrupted no order: one more", k+1)
			}
		}
	}()
	sendAll(spread)
	<-killerDone
	// Every order again, twice, with the same keys, as the billing system
	// does once it has an answer to all.
	sendAll(0)

	// Follow each order to its end.
	c := client.New(url(), token)
	vmIDs := map[string]bool{}
	for _, o := range ords {
		require.NotEmpty(t, o.tk, "order %s was never accepted", o.key)
		tk, err := c.WaitTask(ctx, o.tk)
		require.NoError(t, err)
		assert.Equal(t, "succeeded", tk.State, "order %s: %s (%s), attempt %d of %d", o.key, tk.State, tk.Error, tk.Attempt, tk.Attempts)
		vmIDs[o.vm] = true
	}
	require.Len(t, vmIDs, orders, "one VM per order")
	vms := map[string]model.VM{}
	addrs := map[string]string{}
	var retried int
	for _, o := range ords {
		vm, err := c.GetVM(ctx, o.vm)
		require.NoError(t, err)
		assert.Equal(t, model.VMRunning, vm.State, "order %s: VM %s", o.key, vm.ID)
		require.Len(t, vm.Addresses, 1)
		prev, dup := addrs[vm.Addresses[0]]
		assert.False(t, dup, "address %s given to %s and %s", vm.Addresses[0], prev, vm.ID)
		addrs[vm.Addresses[0]] = vm.ID
		vms[vm.ID] = vm
		tk, err := c.GetTask(ctx, o.tk)
		require.NoError(t, err)
		if tk.Attempt > 1 {
			retried++
		}
	}
	assert.Len(t, addrs, orders, "50 distinct addresses")
	var all client.Page[model.VM]
	require.NoError(t, c.Do(ctx, "GET", "/v1/vms?limit=1000", nil, &all))
	assert.Len(t, all.Items, orders, "no VM besides the orders'")
	t.Logf("%d kills; %d of %d orders ran more than once", kills, retried, orders)
	assert.Positive(t, retried, "no kill interrupted an order: the test showed nothing")

	mu.Lock()
	d.stop()
	mu.Unlock()

	// The nodes' own view.
	var nodeIDs []string
	for _, n := range nodes.Items {
		nodeIDs = append(nodeIDs, n.ID)
	}
	machines, err := simNodeRecords(data)(ctx, nodeIDs)
	require.NoError(t, err)
	byDomain := map[string]model.VM{}
	for _, vm := range vms {
		byDomain[flow.DomainName(vm.ID)] = vm
	}
	onNodes := map[string]int{}
	for _, m := range machines {
		vm, known := byDomain[m.Spec.Name]
		if !assert.True(t, known, "node %s holds machine %s of no order", m.Node, m.Spec.Name) {
			continue
		}
		id := vm.ID
		onNodes[id]++
		assert.Equal(t, vmm.StateRunning, m.State, "machine %s", m.Spec.Name)
		assert.Equal(t, vm.NodeID, m.Node, "machine %s is not on its VM's node", m.Spec.Name)
		require.Len(t, m.Spec.NICs, 1)
		if assert.NotNil(t, m.Spec.CloudInit) {
			assert.Contains(t, m.Spec.CloudInit.NetworkConfig, vm.Addresses[0]+"/", "machine %s is configured with its VM's address", m.Spec.Name)
		}
	}
	for id := range vms {
		assert.Equal(t, 1, onNodes[id], "VM %s has %d machines on the nodes", id, onNodes[id])
	}
}
