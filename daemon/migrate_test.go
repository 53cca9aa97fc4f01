package daemon_test

import (
	"strings"
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
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/vmm"
)

// TestMigrate moves VMs between two simulated nodes through the API: live
// (running) and cold (stopped), to the node given or the one the scheduler
// picks; the scheduler counts each VM on its new node only; failures at
// every step put the VM back where it was, with nothing left on the target.
func TestMigrate(t *testing.T) {
	st := dbtest.SQLite(t)
	e := newEnv(t, st)
	ctx := t.Context()
	admin := e.admin
	// The second node takes exactly two of the test's VMs (1 CPU each).
	n2, err := admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "sim2", Address: "sim", Cores: 2, MemoryMiB: 2048, DiskGiB: 100})
	require.NoError(t, err)
	n1 := e.node
	drv1, pool1 := e.simParts(t, n1.ID)
	drv2, pool2 := e.simParts(t, n2.ID)
	drvs := map[string]*simnode.Node{n1.ID: drv1, n2.ID: drv2}
	pools := map[string]*simnode.Storage{n1.ID: pool1, n2.ID: pool2}
	ports := map[string]*simnode.Ports{}
	for _, id := range []string{n1.ID, n2.ID} {
		p, err := e.srv.Flow.NodePorts(ctx, id)
		require.NoError(t, err)
		ports[id] = p.(*simnode.Ports)
	}
	ports2 := ports[n2.ID]

	// at checks that a VM is recorded on node, has its domain, disk and
	// network port there, and nothing on the other node.
	at := func(t *testing.T, vmID, node string, state vmm.State) {
		t.Helper()
		vm, err := admin.GetVM(ctx, vmID)
		require.NoError(t, err)
		assert.Equal(t, node, vm.NodeID, "recorded node")
		for id, d := range drvs {
			dom, derr := d.Get(ctx, flow.DomainName(vmID))
			vol, verr := pools[id].Volume(ctx, flow.VolumeName(vmID))
			_, hasPort := ports[id].Port(flow.PortName(vmID))
			if id != node {
				assert.ErrorIs(t, derr, virtplane.ErrNotFound, "domain left on the other node")
				assert.ErrorIs(t, verr, virtplane.ErrNotFound, "disk left on the other node")
				assert.False(t, hasPort, "network port left on the other node")
				continue
			}
			assert.True(t, hasPort, "the network port is where the VM is")
			require.NoError(t, derr)
			require.NoError(t, verr)
			assert.Equal(t, state, dom.State)
			assert.EqualValues(t, 5<<30, vol.Capacity)
			require.NotEmpty(t, dom.Spec.Disks)
			assert.Equal(t, vol.Attachment.Path, dom.Spec.Disks[0].Source.Path, "the domain uses the disk on its node")
		}
	}
	migrate := func(vmID, node string) (api.TaskView, error) { return admin.MigrateVM(ctx, vmID, node) }
	newVM := func(name string) model.VM {
		vm, tk, err := e.alice.CreateVM(ctx, e.vmBody(name), "")
		succeeded(t, e.alice, tk, err)
		return vm
	}

	succeeded(t, e.alice, e.aliceTask, nil)
	a := e.aliceVM
	at(t, a.ID, n1.ID, vmm.StateRunning)

	t.Run("live, to the node the scheduler picks", func(t *testing.T) {
		tk, err := migrate(a.ID, "")
		succeeded(t, admin, tk, err)
		at(t, a.ID, n2.ID, vmm.StateRunning)
		vm, err := e.alice.GetVM(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, model.VMRunning, vm.State)
	})
	var b, c model.VM
	t.Run("the scheduler counts a moved VM on its new node", func(t *testing.T) {
		b, c = newVM("b"), newVM("c")
		at(t, b.ID, n1.ID, vmm.StateRunning)
		at(t, c.ID, n1.ID, vmm.StateRunning)
		tk, err := migrate(b.ID, n2.ID)
		succeeded(t, admin, tk, err)
		tk, err = migrate(c.ID, n2.ID)
		assert.ErrorIs(t, taskFailed(t, admin, tk, err), virtplane.ErrResourceExhausted, "node 2 holds a and b")
		at(t, c.ID, n1.ID, vmm.StateRunning)
	})
	t.Run("cold, and the source gives the capacity back", func(t *testing.T) {
		tk, err := e.alice.VMAction(ctx, a.ID, "stop")
		succeeded(t, e.alice, tk, err)
		tk, err = migrate(a.ID, n1.ID)
		succeeded(t, admin, tk, err)
		at(t, a.ID, n1.ID, vmm.StateStopped)
		recs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: n1.ID})
		require.NoError(t, err)
		found := false
		for _, r := range recs {
			if r.Name == flow.DomainName(a.ID) {
				found = true
				assert.Contains(t, string(r.Data), "instance-id: "+a.ID, "defined with its cloud-init data again")
			}
		}
		assert.True(t, found)
		tk, err = migrate(c.ID, n2.ID)
		succeeded(t, admin, tk, err)
		at(t, c.ID, n2.ID, vmm.StateRunning)
		tk, err = migrate(b.ID, n1.ID)
		succeeded(t, admin, tk, err)
		at(t, b.ID, n1.ID, vmm.StateRunning)
	})

	// Node 2 now holds c and has room for one more.
	injected := virtplane.Errorf(virtplane.ErrUnavailable, "injected")
	for _, tc := range []struct {
		name   string
		vm     func() model.VM
		state  vmm.State
		inject func()
		heal   func()
		undone []string // the stored undo actions the rollback ran, last step first
	}{
		{"cold: the disk copy fails", func() model.VM { return a }, vmm.StateStopped,
			func() { pool2.Fail("Create", injected) }, func() { pool2.Fail("Create", nil) },
			[]string{"storage.delete"}},
		{"cold: the target's network port fails", func() model.VM { return a }, vmm.StateStopped,
			func() { ports2.FailNext("Setup", injected) }, func() {},
			[]string{"netport.teardown", "storage.delete"}},
		{"cold: the target refuses the domain", func() model.VM { return a }, vmm.StateStopped,
			func() { drv2.FailNext("Create", injected) }, func() {},
			[]string{"vmm.delete", "vmm.redefine", "netport.teardown", "storage.delete"}},
		{"cold: the source disk cannot be removed", func() model.VM { return a }, vmm.StateStopped,
			func() { pool1.Fail("Delete", injected) }, func() { pool1.Fail("Delete", nil) },
			[]string{"netport.setup", "vmm.delete", "vmm.redefine", "netport.teardown", "storage.delete"}},
		{"live: the hypervisor fails", func() model.VM { return b }, vmm.StateRunning,
			func() { drv1.FailNext("Migrate", injected) }, func() {},
			[]string{"vmm.migrate-back", "netport.teardown", "vmm.discard-incoming", "storage.delete"}},
		{"live: the source's port cannot be removed", func() model.VM { return b }, vmm.StateRunning,
			func() { ports[n1.ID].FailNext("Teardown", injected) }, func() {},
			[]string{"netport.setup", "vmm.migrate-back", "netport.teardown", "vmm.discard-incoming", "storage.delete"}},
		{"live: the source disk cannot be removed", func() model.VM { return b }, vmm.StateRunning,
			func() { pool1.Fail("Delete", injected) }, func() { pool1.Fail("Delete", nil) },
			[]string{"netport.setup", "vmm.migrate-back", "netport.teardown", "vmm.discard-incoming", "storage.delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := tc.vm()
			tc.inject()
			tk, err := migrate(vm.ID, n2.ID)
			err = taskFailed(t, admin, tk, err)
			tc.heal()
			assert.ErrorIs(t, err, virtplane.ErrUnavailable)
			assert.NotContains(t, err.Error(), "rollback incomplete")
			at(t, vm.ID, n1.ID, tc.state)
			got, err := admin.GetVM(ctx, vm.ID)
			require.NoError(t, err)
			assert.Contains(t, got.Error, "injected")
			var log client.Page[api.LogLineView]
			require.NoError(t, admin.Do(ctx, "GET", "/v1/tasks/"+tk.ID+"/log", nil, &log))
			var undone []string
			for _, l := range log.Items {
				if action, ok := strings.CutPrefix(l.Line, "undone: "); ok {
					undone = append(undone, action)
				}
			}
			assert.Equal(t, tc.undone, undone)
		})
	}

	t.Run("failed moves gave their reservations back", func(t *testing.T) {
		tk, err := migrate(a.ID, n2.ID)
		succeeded(t, admin, tk, err)
		at(t, a.ID, n2.ID, vmm.StateStopped)
		tk, err = migrate(b.ID, n2.ID)
		assert.ErrorIs(t, taskFailed(t, admin, tk, err), virtplane.ErrResourceExhausted, "node 2 holds c and a")
	})
	t.Run("refused", func(t *testing.T) {
		tk, err := e.alice.Snapshot(ctx, b.ID, "s1")
		succeeded(t, e.alice, tk, err)
		for _, tc := range []struct {
			name, vm, node, field string
			status                int
		}{
			{"the node it is on", c.ID, n2.ID, "body.node_id", 422},
			{"no such node", c.ID, "nope", "body.node_id", 404},
			{"with snapshots", b.ID, n2.ID, "path.id", 409},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := migrate(tc.vm, tc.node)
				var p *client.Problem
				require.ErrorAs(t, err, &p)
				assert.Equal(t, tc.status, p.Status, p.Error())
				assert.Equal(t, tc.field, p.Field(), p.Error())
			})
		}
		_, err = e.alice.MigrateVM(ctx, c.ID, "")
		assert.ErrorIs(t, err, virtplane.ErrPermissionDenied, "users do not move VMs")
	})
	t.Run("a node in maintenance takes none", func(t *testing.T) {
		require.NoError(t, admin.Do(ctx, "POST", "/v1/nodes/"+n1.ID+"/maintenance", map[string]bool{"enabled": true}, nil))
		tk, err := migrate(c.ID, "")
		err = taskFailed(t, admin, tk, err)
		assert.ErrorIs(t, err, virtplane.ErrResourceExhausted)
		at(t, c.ID, n2.ID, vmm.StateRunning)
		require.NoError(t, admin.Do(ctx, "POST", "/v1/nodes/"+n1.ID+"/maintenance", map[string]bool{"enabled": false}, nil))
	})
	t.Run("deleted after moving, nothing is left", func(t *testing.T) {
		for _, vm := range []model.VM{a, b, c} {
			tk, err := e.alice.DeleteVM(ctx, vm.ID)
			succeeded(t, e.alice, tk, err)
		}
		for _, n := range []string{n1.ID, n2.ID} {
			recs, err := simnode.Records(ctx, st, n)
			require.NoError(t, err)
			for _, r := range recs {
				assert.Equal(t, flow.ImageVolume(e.image.ID), r.Name, "only the image's base stays on node %s", n)
			}
			doms, err := drvs[n].List(ctx)
			require.NoError(t, err)
			assert.Empty(t, doms)
			left, err := ports[n].List(ctx)
			require.NoError(t, err)
			assert.Empty(t, left, "network ports left on node %s", n)
		}
	})
}

// TestAddNodeByLibvirtSocket: a node can name a libvirtd on the daemon's
// host by its socket; a malformed address names the field.
func TestAddNodeByLibvirtSocket(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx := t.Context()
	for _, bad := range []string{
		"qemu+unix:///system",
		"qemu+unix:///system?socket=run/libvirt-sock",
		"qemu+unix:///system?socket=/s&migration_address=peer.example",
		"qemu+unix://otherhost/system?socket=/s",
	} {
		_, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "bad", Address: bad, Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
		var p *client.Problem
		require.ErrorAs(t, err, &p, bad)
		assert.Equal(t, 422, p.Status, p.Error())
		assert.Equal(t, "body.address", p.Field(), p.Error())
	}
	n, err := e.admin.AddNode(ctx, api.NodeBody{ClusterID: e.cluster.ID, Name: "h2", Address: "qemu+unix:///system?socket=/nonexistent/libvirt-sock&migration_address=10.0.0.2", Cores: 1, MemoryMiB: 1024, DiskGiB: 1})
	require.NoError(t, err)
	pool, err := e.srv.Flow.NodePool(ctx, n.ID)
	require.NoError(t, err, "its disks live in a file pool under the data directory")
	info, err := pool.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, "file", info.Driver)
	_, err = e.srv.Flow.NodeDriver(ctx, n.ID)
	require.NoError(t, err, "the driver connects on first use")
}

// TestMigrateRollsBackAfterRestart: a daemon that stops in the middle of a
// cold migration (the domain undefined on the source, not yet defined on
// the target) rolls it back when it starts again: the VM is on its source,
// with nothing on the target.
func TestMigrateRollsBackAfterRestart(t *testing.T) {
	st := dbtest.SQLite(t)
	ctx := t.Context()
	start := restartable(t, st)
	srv, c, stop := start()
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "r", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	n1, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "sim1", Address: "sim", Cores: 4, MemoryMiB: 4096, DiskGiB: 100})
	require.NoError(t, err)
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/24"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "i", OSType: "linux", Source: "/var/lib/images/i.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "v", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5}, "")
	succeeded(t, c, tk, err)
	n2, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "sim2", Address: "sim", Cores: 4, MemoryMiB: 4096, DiskGiB: 100})
	require.NoError(t, err)
	tk, err = c.VMAction(ctx, vm.ID, "stop")
	succeeded(t, c, tk, err)

	// The target's hypervisor hangs on the define; the daemon stops meanwhile.
	drv2, err := srv.Flow.NodeDriver(ctx, n2.ID)
	require.NoError(t, err)
	drv2.(*simnode.Node).SetLatency("Create", time.Hour)
	tk, err = c.MigrateVM(ctx, vm.ID, n2.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cur, err := c.GetTask(ctx, tk.ID)
		return err == nil && strings.HasPrefix(cur.Message, "define on node")
	}, 10*time.Second, 10*time.Millisecond)
	stop()
	recs, err := simnode.Records(ctx, st, n1.ID)
	require.NoError(t, err)
	for _, r := range recs {
		assert.NotEqual(t, flow.DomainName(vm.ID), r.Name, "the domain was undefined on the source before the stop")
	}

	srv, c, _ = start()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "failed", tk.State)
	assert.ErrorIs(t, client.TaskError(tk), virtplane.ErrUnavailable, "interrupted")
	got, err := c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, n1.ID, got.NodeID)
	for node, want := range map[string]bool{n1.ID: true, n2.ID: false} {
		drv, err := srv.Flow.NodeDriver(ctx, node)
		require.NoError(t, err)
		_, derr := drv.Get(ctx, flow.DomainName(vm.ID))
		p, err := srv.Flow.NodePool(ctx, node)
		require.NoError(t, err)
		_, verr := p.Volume(ctx, flow.VolumeName(vm.ID))
		ports, err := srv.Flow.NodePorts(ctx, node)
		require.NoError(t, err)
		_, hasPort := ports.(*simnode.Ports).Port(flow.PortName(vm.ID))
		assert.Equal(t, want, hasPort, "the network port is on the source only")
		if want {
			assert.NoError(t, derr, "the domain is defined again on the source")
			assert.NoError(t, verr)
		} else {
			assert.ErrorIs(t, derr, virtplane.ErrNotFound)
			assert.ErrorIs(t, verr, virtplane.ErrNotFound, "the copy on the target is gone")
		}
	}
	// And it moves when asked again.
	tk, err = c.MigrateVM(ctx, vm.ID, n2.ID)
	succeeded(t, c, tk, err)
}

// TestLiveMigrateAbortedAfterRestart: a daemon that stops while the
// hypervisor is still copying a live migration leaves the job running in
// the source's hypervisor. The next start rolls the task back and aborts
// the job before it looks where the VM is: the VM stays on its source,
// running, and nothing is left on the target (domain, disk, port); a job
// that had run on would have moved the VM away from its recorded node.
func TestLiveMigrateAbortedAfterRestart(t *testing.T) {
	st := dbtest.SQLite(t)
	ctx := t.Context()
	start := restartable(t, st)
	simNode := func(t *testing.T, srv *daemon.Server, id string) *simnode.Node {
		d, err := srv.Flow.NodeDriver(ctx, id)
		require.NoError(t, err)
		return d.(*simnode.Node)
	}
	srv, c, stop := start()
	cl, err := c.CreateCluster(ctx, api.ClusterBody{Name: "r", VirtType: "kvm", Strategy: "even", CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge"})
	require.NoError(t, err)
	n1, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "sim1", Address: "sim", Cores: 4, MemoryMiB: 4096, DiskGiB: 100})
	require.NoError(t, err)
	pool, err := c.CreatePool(ctx, api.PoolBody{Name: "p", ClusterIDs: []string{cl.ID}, Blocks: []api.BlockBody{{Range: "192.0.2.0/24"}}})
	require.NoError(t, err)
	img, err := c.CreateImage(ctx, api.ImageBody{Name: "i", OSType: "linux", Source: "/var/lib/images/i.qcow2", Format: "qcow2"})
	require.NoError(t, err)
	vm, tk, err := c.CreateVM(ctx, api.VMCreateBody{Name: "v", ClusterID: cl.ID, ImageID: img.ID, PoolID: pool.ID, CPUs: 1, MemoryMiB: 512, DiskGiB: 5}, "")
	succeeded(t, c, tk, err)
	n2, err := c.AddNode(ctx, api.NodeBody{ClusterID: cl.ID, Name: "sim2", Address: "sim", Cores: 4, MemoryMiB: 4096, DiskGiB: 100})
	require.NoError(t, err)
	dom := flow.DomainName(vm.ID)

	// The source's hypervisor holds the migration in progress; the daemon
	// stops meanwhile, and the job runs on.
	simNode(t, srv, n1.ID).HoldMigrations()
	tk, err = c.MigrateVM(ctx, vm.ID, n2.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, ok := simNode(t, srv, n1.ID).MigrationJob(dom)
		return ok
	}, 10*time.Second, 10*time.Millisecond)
	p2, err := srv.Flow.NodePool(ctx, n2.ID)
	require.NoError(t, err)
	_, err = p2.Volume(ctx, flow.VolumeName(vm.ID))
	require.NoError(t, err, "the target's disk was prepared before the migration started")
	stop()

	srv, c, _ = start()
	tk, err = c.WaitTask(ctx, tk.ID)
	require.NoError(t, err)
	assert.Equal(t, "failed", tk.State)
	assert.ErrorIs(t, client.TaskError(tk), virtplane.ErrUnavailable, "interrupted")
	src, dst := simNode(t, srv, n1.ID), simNode(t, srv, n2.ID)
	aborted := false
	for _, call := range src.Calls() {
		aborted = aborted || (call.Method == "AbortMigration" && call.VM == dom)
	}
	assert.True(t, aborted, "the rollback aborted the migration job")
	// A job the rollback left would complete now and move the VM.
	src.AddPeer("sim://"+n2.ID, dst)
	moved, err := src.ReleaseMigrations(ctx)
	require.NoError(t, err)
	assert.Empty(t, moved, "no migration job left running")

	got, err := c.GetVM(ctx, vm.ID)
	require.NoError(t, err)
	assert.Equal(t, n1.ID, got.NodeID)
	assert.Equal(t, model.VMRunning, got.State)
	for node, want := range map[string]bool{n1.ID: true, n2.ID: false} {
		drv, err := srv.Flow.NodeDriver(ctx, node)
		require.NoError(t, err)
		d, derr := drv.Get(ctx, dom)
		p, err := srv.Flow.NodePool(ctx, node)
		require.NoError(t, err)
		_, verr := p.Volume(ctx, flow.VolumeName(vm.ID))
		ports, err := srv.Flow.NodePorts(ctx, node)
		require.NoError(t, err)
		_, hasPort := ports.(*simnode.Ports).Port(flow.PortName(vm.ID))
		assert.Equal(t, want, hasPort, "the network port is on the source only")
		if want {
			require.NoError(t, derr, "the domain is on the source")
			assert.Equal(t, vmm.StateRunning, d.State)
			assert.NoError(t, verr)
		} else {
			assert.ErrorIs(t, derr, virtplane.ErrNotFound, "no domain on the target")
			assert.ErrorIs(t, verr, virtplane.ErrNotFound, "the target's disk is gone")
		}
	}
	// And it moves when asked again.
	tk, err = c.MigrateVM(ctx, vm.ID, n2.ID)
	succeeded(t, c, tk, err)
}
