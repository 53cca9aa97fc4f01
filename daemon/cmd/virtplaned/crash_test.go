package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
)

// The test binary doubles as the daemon: with VIRTPLANED_CHILD set it runs
// `virtplaned` with the arguments in VIRTPLANED_ARGS, so the crash test can
// kill a real daemon process without building a binary first.
func TestMain(m *testing.M) {
	if os.Getenv("VIRTPLANED_CHILD") == "1" {
		cmd := rootCommand(os.Stdout)
		cmd.SetArgs(strings.Fields(os.Getenv("VIRTPLANED_ARGS")))
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemonProc is one run of the daemon as a child process.
type daemonProc struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startDaemon(t *testing.T, data string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, "", data)
}

// startDaemonIn starts the daemon in the working directory workdir ("":
// the test's).
func startDaemonIn(t *testing.T, workdir, data string) *daemonProc {
	t.Helper()
	return startDaemonArgs(t, workdir, "serve --data "+data+" --listen 127.0.0.1:0 --node sim --instance crash-test --admin-password admin-password")
}

// startDaemonArgs starts `virtplaned ARGS` in workdir and waits until it
// listens.
func startDaemonArgs(t *testing.T, workdir, args string) *daemonProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = workdir
	cmd.Env = append(os.Environ(), "VIRTPLANED_CHILD=1", "VIRTPLANED_ARGS="+args)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = nil
	require.NoError(t, cmd.Start())
	p := &daemonProc{cmd: cmd, done: make(chan struct{})}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "virtplaned listening on "); ok {
				urlCh <- strings.Fields(u)[0]
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	select {
	case p.url = <-urlCh:
	case <-p.done:
		t.Fatal("the daemon exited before listening")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the daemon did not start listening")
	}
	return p
}

func (p *daemonProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *daemonProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// TestCrashDuringCreates kills the daemon with SIGKILL at random moments
// while clients create VMs on simulated nodes, restarts it each time, and
// then checks that nothing is lost or doubled: every task terminal, every
// order (idempotency key) gave exactly one VM, every running VM has exactly
// one domain, one root volume, one network port and one address, failed
// VMs hold none of them, and no address, volume, port or domain belongs to
// nobody.
func TestCrashDuringCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the daemon many times; runs without -short")
	}
	creates := 1000
	if v, err := strconv.Atoi(os.Getenv("VIRTPLANE_CRASH_CREATES")); err == nil && v > 0 {
		creates = v
	}
	data := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	var mu sync.Mutex
	d := startDaemon(t, data)
	t.Cleanup(func() { d.kill() })
	current := func() *daemonProc { mu.Lock(); defer mu.Unlock(); return d }

	token, err := client.New(d.url, "").Login(ctx, "admin", "admin-password")
	require.NoError(t, err)
	admin := client.New(d.url, token)
	var clusters client.Page[model.Cluster]
	require.NoError(t, admin.Do(ctx, "GET", "/v1/clusters", nil, &clusters))
	require.Len(t, clusters.Items, 1)
	cluster := clusters.Items[0]
	for i := range 9 {
		_, err := admin.AddNode(ctx, api.NodeBody{ClusterID: cluster.ID, Name: fmt.Sprintf("sim-extra%d", i), Address: "sim", Cores: 64, MemoryMiB: 262144, DiskGiB: 1000})
		require.NoError(t, err)
	}
	pool, err := admin.CreatePool(ctx, api.PoolBody{Name: "crash", ClusterIDs: []string{cluster.ID}, Blocks: []api.BlockBody{{Range: "10.20.0.0/20", Gateway: "10.20.0.1"}}})
	require.NoError(t, err)
	var images client.Page[model.Image]
	require.NoError(t, admin.Do(ctx, "GET", "/v1/images", nil, &images))
	body := func(i int) api.VMCreateBody {
		return api.VMCreateBody{Name: fmt.Sprintf("vm-%04d", i), ClusterID: cluster.ID, ImageID: images.Items[0].ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 256, DiskGiB: 1}
	}

	// Clients: each order is retried with its key until the daemon accepts it.
	var next, accepted atomic.Int64
	taskIDs := make([]string, creates)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= creates {
					return
				}
				for ctx.Err() == nil {
					c := client.New(current().url, token)
					_, task, err := c.CreateVM(ctx, body(i), fmt.Sprintf("order-%04d", i))
					if err == nil {
						if taskIDs[i] == "" {
							taskIDs[i] = task.ID
							accepted.Add(1)
						} else if taskIDs[i] != task.ID {
							t.Errorf("order %d: a retry with the same key got task %s, the first %s", i, task.ID, taskIDs[i])
						}
						// Follow the order to its end, like a billing system
						// would, so the kills land while tasks run.
						task, err = c.WaitTask(ctx, task.ID)
						if err == nil {
							break
						}
					}
					if !errors.Is(err, virtplane.ErrUnavailable) {
						t.Errorf("order %d: %v", i, err)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	// The killer.
	kills := 0
	stopKilling := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for {
			select {
			case <-stopKilling:
				return
			case <-time.After(time.Duration(100+rng.IntN(600)) * time.Millisecond):
			}
			mu.Lock()
			d.kill()
			kills++
			d = startDaemon(t, data)
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(stopKilling)
	<-killerDone
	require.EqualValues(t, creates, accepted.Load())
	t.Logf("%d creates accepted across %d kills", creates, kills)
	require.Positive(t, kills)

	// Wait for every task to end on the last daemon.
	c := client.New(current().url, token)
	for _, id := range taskIDs {
		tk, err := c.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Contains(t, []string{"succeeded", "failed", "canceled"}, tk.State)
	}
	current().stop()

	st, err := sqlite.Open(ctx, filepath.Join(data, "virtplane.db"))
	require.NoError(t, err)
	defer st.Close()
	checkConsistent(t, ctx, st, creates, pool.ID)
}

func checkConsistent(t *testing.T, ctx context.Context, st interface {
	store.Reader
	IPAM() ipam.Store
}, creates int, poolID string) {
	ts, err := st.ListTasks(ctx, store.TaskFilter{})
	require.NoError(t, err)
	states := map[store.TaskState]int{}
	for _, tk := range ts {
		assert.True(t, tk.State.Terminal(), "task %s is %s", tk.ID, tk.State)
		states[tk.State]++
		h, err := st.LockHolder(ctx, "vm/"+strings.TrimPrefix(tk.Target, "vm/"))
		require.NoError(t, err)
		assert.Empty(t, h, "a finished task holds a lock")
	}
	t.Logf("tasks by state: %v", states)

	vms, err := st.ListObjects(ctx, store.KindVM, store.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, vms, creates, "one VM per order, none twice")
	names := map[string]bool{}
	running := map[string]model.VM{}
	for _, o := range vms {
		var vm model.VM
		require.NoError(t, jsonUnmarshal(o.Data, &vm))
		assert.False(t, names[vm.Name], "two VMs named %s", vm.Name)
		names[vm.Name] = true
		switch vm.State {
		case model.VMRunning:
			running[vm.ID] = vm
		case model.VMFailed:
		default:
			t.Errorf("vm %s is %s after every task ended", vm.ID, vm.State)
		}
	}
	t.Logf("%d VMs running, %d failed (rolled back)", len(running), len(vms)-len(running))
	assert.Positive(t, len(running))

	// Domains on the simulated nodes: exactly the running VMs, once each.
	sims, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{})
	require.NoError(t, err)
	domains := map[string]int{}
	volumes := map[string]int{}
	type portRec struct {
		node string // the store parent: simnode.PortsParent(node ID)
		spec netport.Spec
	}
	ports := map[string][]portRec{}
	for _, o := range sims {
		switch {
		case strings.HasPrefix(o.Parent, "ports/"):
			var rec struct {
				Spec netport.Spec `json:"spec"`
			}
			require.NoError(t, jsonUnmarshal(o.Data, &rec))
			ports[o.Name] = append(ports[o.Name], portRec{node: o.Parent, spec: rec.Spec})
		case strings.HasPrefix(o.Parent, "storage/"):
			if !strings.HasPrefix(o.Name, "image-") {
				volumes[o.Name]++
			}
		default:
			domains[o.Name]++
		}
	}
	// Volumes: exactly one linked clone per running VM, none orphaned.
	for id := range running {
		assert.Equal(t, 1, volumes[flow.VolumeName(id)], "vm %s has %d root volumes", id, volumes[flow.VolumeName(id)])
	}
	assert.Len(t, volumes, len(running), "orphaned volumes")
	for id, vm := range running {
		assert.Equal(t, 1, domains[flow.DomainName(id)], "vm %s has %d domains", id, domains[flow.DomainName(id)])
		var onNode int
		for _, o := range sims {
			if o.Name == flow.DomainName(id) && o.Parent == vm.NodeID {
				onNode++
			}
		}
		assert.Equal(t, 1, onNode, "vm %s's domain is not on its node", id)
		assert.Equal(t, flow.VolumeName(id), vm.Volume)
	}
	assert.Len(t, domains, len(running), "a domain without a running VM")

	// Network ports: exactly one per running VM, on its node, with its MAC
	// and address; none left by a failed create.
	for id, vm := range running {
		ps := ports[flow.PortName(id)]
		if !assert.Len(t, ps, 1, "vm %s has %d network ports", id, len(ps)) {
			continue
		}
		assert.Equal(t, simnode.PortsParent(vm.NodeID), ps[0].node, "vm %s's port is not on its node", id)
		assert.Equal(t, id, ps[0].spec.VMID)
		assert.Equal(t, netport.MAC(id), ps[0].spec.MAC)
		var addrs []string
		for _, a := range ps[0].spec.Addresses {
			addrs = append(addrs, a.String())
		}
		assert.Equal(t, vm.Addresses, addrs, "vm %s's port lets it send from other addresses", id)
	}
	assert.Len(t, ports, len(running), "a network port without a running VM")

	// Addresses: exactly one per running VM, the one the VM shows; none leaked.
	m, err := ipam.New(ipam.Config{Store: st.IPAM()})
	require.NoError(t, err)
	seen := map[netip.Addr]string{}
	var after netip.Prefix
	for {
		page, next, err := m.List(ctx, poolID, after, 1000)
		require.NoError(t, err)
		for _, a := range page {
			vm, ok := running[a.Owner.VM]
			if !assert.True(t, ok, "address %s leaked to %s", a.Prefix, a.Owner.VM) {
				continue
			}
			assert.Equal(t, []string{a.Addr().String()}, vm.Addresses)
			prev, dup := seen[a.Addr()]
			assert.False(t, dup, "address %s given to %s and %s", a.Addr(), prev, a.Owner.VM)
			seen[a.Addr()] = a.Owner.VM
		}
		if !next.IsValid() {
			break
		}
		after = next
	}
	assert.Len(t, seen, len(running), "running VMs without an address")
}
