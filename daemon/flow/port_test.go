package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/simnode"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/internal/testenv"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/nettest"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// fixture is the flows over one simulated node (durable fakes in a SQLite
// store) with a running task engine.
type fixture struct {
	flow    *flow.Flow
	st      store.Store
	eng     *tasks.Engine
	ipam    *ipam.Manager
	cluster model.Cluster
	node    model.Node
	pool    model.IPPool
	image   model.Image
	drv     *simnode.Node
	disks   *simnode.Storage
	ports   *simnode.Ports
}

// fixtureOption changes what the flows of a fixture drive.
type fixtureOption struct {
	ports  netport.Ports               // instead of the simulated node's
	driver func(vmm.Driver) vmm.Driver // wraps the simulated hypervisor
	// cluster and node change the cluster and its node before they are
	// stored; peers are more nodes of the cluster, in maintenance (they
	// take no VM); gateway replaces the block's gateway ("-" for none).
	cluster func(*model.Cluster)
	node    func(*model.Node)
	peers   []model.Node
	gateway string
}

func newFixture(t *testing.T, bridge string, opts ...fixtureOption) *fixture {
	t.Helper()
	ctx := t.Context()
	st := dbtest.SQLite(t)
	m, err := ipam.New(ipam.Config{Store: st.IPAM()})
	require.NoError(t, err)
	fx := &fixture{st: st, ipam: m}
	now := time.Now().UTC()
	fx.cluster = model.Cluster{ID: store.NewID(), Name: "c1", VirtType: model.VirtKVM, Strategy: model.StrategyEven,
		CPUOvercommit: 1, RAMOvercommit: 1, DiskOvercommit: 1, NetworkMode: "bridge", Bridge: bridge, Storages: []model.StorageRef{}, Created: now}
	fx.node = model.Node{ID: store.NewID(), ClusterID: fx.cluster.ID, Name: "sim1", Address: "sim", State: model.NodeActive,
		Cores: 8, MemoryMiB: 16384, DiskGiB: 100, Created: now}
	gateway := "192.0.2.1"
	for _, o := range opts {
		if o.cluster != nil {
			o.cluster(&fx.cluster)
		}
		if o.node != nil {
			o.node(&fx.node)
		}
		switch o.gateway {
		case "":
		case "-":
			gateway = ""
		default:
			gateway = o.gateway
		}
	}
	fx.pool = model.IPPool{ID: store.NewID(), Name: "p1", ClusterIDs: []string{fx.cluster.ID},
		Blocks: []model.IPBlock{{ID: "b1", Range: "192.0.2.0/24", Gateway: gateway}}, Created: now}
	fx.image = model.Image{ID: store.NewID(), Name: "debian", OSType: "linux", Format: "qcow2", SizeMiB: 1024, Created: now}
	blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: "b1", Range: "192.0.2.0/24", Gateway: gateway})
	require.NoError(t, err)
	_, err = m.CreatePool(ctx, ipam.Pool{ID: fx.pool.ID, Clusters: fx.pool.ClusterIDs, Blocks: []ipam.Block{blk}})
	require.NoError(t, err)
	put(t, st, store.KindCluster, fx.cluster.ID, fx.cluster.Name, "", fx.cluster)
	put(t, st, store.KindNode, fx.node.ID, fx.node.Name, fx.cluster.ID, fx.node)
	for _, o := range opts {
		for _, n := range o.peers {
			n.ID, n.ClusterID, n.Address, n.Maintenance, n.State, n.Created = store.NewID(), fx.cluster.ID, "sim", true, model.NodeMaintenance, now
			n.Cores, n.MemoryMiB, n.DiskGiB = 8, 16384, 100
			put(t, st, store.KindNode, n.ID, n.Name, fx.cluster.ID, n)
		}
	}
	put(t, st, store.KindPool, fx.pool.ID, fx.pool.Name, "", fx.pool)
	put(t, st, store.KindImage, fx.image.ID, fx.image.Name, "", fx.image)

	fx.drv, err = simnode.Open(ctx, st, fx.node.ID)
	require.NoError(t, err)
	fx.disks, err = simnode.OpenStorage(ctx, st, fx.node.ID)
	require.NoError(t, err)
	fx.ports, err = simnode.OpenPorts(ctx, st, fx.node.ID)
	require.NoError(t, err)
	var drv vmm.Driver = fx.drv
	var ports netport.Ports = fx.ports
	for _, o := range opts {
		if o.ports != nil {
			ports = o.ports
		}
		if o.driver != nil {
			drv = o.driver(drv)
		}
	}
	backend := &node.Backend{VMM: drv, Ports: ports,
		OwnPool: func(context.Context) (storage.Pool, error) { return fx.disks, nil }}
	f, err := flow.New(flow.Config{Store: st, IPAM: m,
		Node: func(context.Context, model.Node, model.Cluster) (*node.Backend, error) { return backend, nil },
	})
	require.NoError(t, err)
	fx.flow = f
	fx.eng, err = tasks.New(tasks.Config{Store: st, Instance: "flow-test", Poll: 50 * time.Millisecond})
	require.NoError(t, err)
	f.Register(fx.eng)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fx.eng.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	return fx
}

func put(t *testing.T, st store.Store, kind store.Kind, id, name, parent string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, st.Update(t.Context(), func(tx store.Tx) error {
		return tx.CreateObject(t.Context(), &store.Object{Kind: kind, ID: id, Name: name, Parent: parent, Data: data})
	}))
}

// run submits a task on a VM and waits for its end.
func (fx *fixture) run(t *testing.T, kind, vmID string) store.Task {
	t.Helper()
	return fx.runInput(t, kind, flow.VMInput{VMID: vmID})
}

func (fx *fixture) runInput(t *testing.T, kind string, in flow.VMInput) store.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tk, _, err := fx.eng.Submit(ctx, tasks.Submission{Kind: kind, Owner: "u1", Target: "vm/" + in.VMID,
		Resources: []string{"vm/" + in.VMID}, Input: in})
	require.NoError(t, err)
	tk, err = fx.eng.Wait(ctx, tk.ID)
	require.NoError(t, err)
	return tk
}

// create stores a VM and runs its create task.
func (fx *fixture) create(t *testing.T, name string, limits model.Limits) (model.VM, store.Task) {
	t.Helper()
	vm := model.VM{ID: store.NewID(), Name: name, Owner: "u1", ClusterID: fx.cluster.ID, ImageID: fx.image.ID, PoolID: fx.pool.ID,
		CPUs: 1, MemoryMiB: 512, DiskGiB: 2, State: model.VMCreating, Addresses: []string{}, Snapshots: []model.Snapshot{},
		Limits: limits, Created: time.Now().UTC()}
	put(t, fx.st, store.KindVM, vm.ID, vm.Name, "u1", vm)
	tk := fx.run(t, flow.KindVMCreate, vm.ID)
	return fx.vm(t, vm.ID), tk
}

func (fx *fixture) vm(t *testing.T, id string) model.VM {
	t.Helper()
	o, err := fx.st.GetObject(t.Context(), store.KindVM, id)
	require.NoError(t, err)
	var vm model.VM
	require.NoError(t, json.Unmarshal(o.Data, &vm))
	return vm
}

// assertNothingLeft checks that a VM holds no port, domain, volume or address.
func (fx *fixture) assertNothingLeft(t *testing.T, vmID string) {
	t.Helper()
	ctx := t.Context()
	_, ok := fx.ports.Port(flow.PortName(vmID))
	assert.False(t, ok, "port left behind")
	recs, err := fx.st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: simnode.PortsParent(fx.node.ID)})
	require.NoError(t, err)
	assert.Empty(t, recs, "port record left behind")
	_, err = fx.drv.Get(ctx, flow.DomainName(vmID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "domain left behind")
	_, err = fx.disks.Volume(ctx, flow.VolumeName(vmID))
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "volume left behind")
	allocs, err := fx.ipam.LookupOwner(ctx, ipam.Owner{VM: vmID})
	require.NoError(t, err)
	assert.Empty(t, allocs, "address left behind")
}

// TestCreatePreparesThePort: the VM's NIC gets a port on the cluster's
// bridge with the VM's MAC, address and bandwidth limit; the domain's NIC
// uses the port's device and MAC; delete removes the port.
func TestCreatePreparesThePort(t *testing.T) {
	fx := newFixture(t, "vptbr-flow")
	vm, tk := fx.create(t, "web", model.Limits{NetMbit: 50})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	require.Equal(t, model.VMRunning, vm.State)
	require.Len(t, vm.Addresses, 1)

	port, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok, "no port for the VM")
	assert.Equal(t, vm.ID, port.VMID)
	assert.Equal(t, netport.MAC(vm.ID), port.MAC)
	assert.Equal(t, "vptbr-flow", port.Bridge)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr(vm.Addresses[0])}, port.Addresses)
	assert.EqualValues(t, 50_000, port.InKbit)
	assert.EqualValues(t, 50_000, port.OutKbit)

	dom, err := fx.drv.Get(t.Context(), flow.DomainName(vm.ID))
	require.NoError(t, err)
	assert.Equal(t, vmm.StateRunning, dom.State)
	require.Len(t, dom.Spec.NICs, 1)
	nic := dom.Spec.NICs[0]
	assert.Equal(t, port.Name, nic.Tap)
	assert.Equal(t, port.MAC, nic.MAC)
	assert.Equal(t, port.Bridge, nic.Bridge)
	// Prepared before the domain, completed once it runs.
	assert.Equal(t, []netport.Call{{Method: "Setup", Port: port.Name}, {Method: "Setup", Port: port.Name}}, fx.ports.Calls())

	del := fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskSucceeded, del.State, del.Error)
	fx.assertNothingLeft(t, vm.ID)
	assert.Contains(t, fx.ports.Calls(), netport.Call{Method: "Teardown", Port: port.Name})
}

// TestCreateUsesTheDefaultBridge: a cluster without a bridge puts its VMs
// on DefaultBridge.
func TestCreateUsesTheDefaultBridge(t *testing.T) {
	fx := newFixture(t, "")
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	port, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok)
	assert.Equal(t, flow.DefaultBridge, port.Bridge)
	assert.Zero(t, port.InKbit, "no limit")
}

// TestCreateRollsBack: a failure in the port step or in any step after it
// undoes everything: no port, no domain, no volume, no address.
func TestCreateRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(fx *fixture)
		step   string
		class  error
	}{
		{"port setup fails", func(fx *fixture) {
			fx.ports.FailNext("Setup", virtplane.Errorf(virtplane.ErrUnavailable, "nftables refused"))
		}, "prepare network port", virtplane.ErrUnavailable},
		{"define fails after the port", func(fx *fixture) {
			fx.drv.FailNext("Create", virtplane.Errorf(virtplane.ErrResourceExhausted, "no memory"))
		}, "define domain", virtplane.ErrResourceExhausted},
		{"start fails after the port", func(fx *fixture) {
			fx.drv.FailNext("Start", errors.New("qemu died"))
		}, "start domain", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, "vptbr-flow")
			tc.inject(fx)
			vm, tk := fx.create(t, "web", model.Limits{NetMbit: 10})
			require.Equal(t, store.TaskFailed, tk.State)
			assert.Contains(t, tk.Error, tc.step)
			if tc.class != nil {
				assert.Equal(t, virtplane.Class(tc.class).Error(), tk.ErrorClass)
			}
			assert.Equal(t, model.VMFailed, vm.State)
			fx.assertNothingLeft(t, vm.ID)

			// The node is usable again: the next create succeeds.
			vm2, tk2 := fx.create(t, "web2", model.Limits{})
			require.Equal(t, store.TaskSucceeded, tk2.State, tk2.Error)
			_, ok := fx.ports.Port(flow.PortName(vm2.ID))
			assert.True(t, ok)
		})
	}
}

// TestDeleteIsIdempotent: a delete that finds the port already gone (a
// retried delete, or a node cleaned by hand) succeeds; a delete whose port
// teardown fails keeps the VM and succeeds when repeated.
func TestDeleteIsIdempotent(t *testing.T) {
	fx := newFixture(t, "vptbr-flow")
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)

	fx.ports.FailNext("Teardown", virtplane.Errorf(virtplane.ErrUnavailable, "netlink busy"))
	del := fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskFailed, del.State)
	assert.Contains(t, del.Error, "delete network port")
	assert.Equal(t, vm.ID, fx.vm(t, vm.ID).ID, "the VM stays while its port does")

	require.NoError(t, fx.ports.Teardown(t.Context(), flow.PortName(vm.ID)))
	del = fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskSucceeded, del.State, del.Error)
	fx.assertNothingLeft(t, vm.ID)
}

// TestStartCompletesThePort: a stop and start on the simulated node sets
// the recorded port up around the boot, unchanged.
func TestStartCompletesThePort(t *testing.T) {
	fx := newFixture(t, "vptbr-flow")
	vm, tk := fx.create(t, "web", model.Limits{NetMbit: 5})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	before, _ := fx.ports.Port(flow.PortName(vm.ID))
	for _, k := range []string{flow.KindVMStop, flow.KindVMStart} {
		tk := fx.run(t, k, vm.ID)
		require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	}
	after, ok := fx.ports.Port(flow.PortName(vm.ID))
	require.True(t, ok)
	assert.True(t, before.Equal(after))
	var setups int
	for _, c := range fx.ports.Calls() {
		if c.Method == "Setup" {
			setups++
		}
	}
	assert.Equal(t, 4, setups, "create: prepare, complete; start: prepare, complete")
}

// TestLimitsShapeThePort: a limits change sets the port's bandwidth.
func TestLimitsShapeThePort(t *testing.T) {
	fx := newFixture(t, "vptbr-flow")
	vm, tk := fx.create(t, "web", model.Limits{})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	for _, mbit := range []int{100, 0} {
		tk := fx.runInput(t, flow.KindVMLimits, flow.VMInput{VMID: vm.ID, Limits: &model.Limits{NetMbit: mbit}})
		require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
		port, ok := fx.ports.Port(flow.PortName(vm.ID))
		require.True(t, ok)
		assert.EqualValues(t, mbit*1000, port.InKbit)
		assert.EqualValues(t, mbit*1000, port.OutKbit)
		assert.Equal(t, mbit, fx.vm(t, vm.ID).Limits.NetMbit)
	}
}

// tapMaker is a hypervisor that makes its VMs' taps in a network namespace
// the way libvirt does: on start, a link named after the NIC's tap,
// attached to the NIC's bridge and up; gone when the VM stops.
type tapMaker struct {
	vmm.Driver
	t  *testing.T
	ns *testenv.Netns
}

func (d *tapMaker) Start(ctx context.Context, name string) error {
	if err := d.Driver.Start(ctx, name); err != nil {
		return err
	}
	vm, err := d.Driver.Get(ctx, name)
	if err != nil {
		return err
	}
	for _, n := range vm.Spec.NICs {
		d.ns.Run(d.t, "ip", "link", "add", n.Tap, "type", "veth", "peer", "name", "vpp"+n.Tap[7:])
		d.ns.Run(d.t, "ip", "link", "set", n.Tap, "master", n.Bridge, "up")
	}
	return nil
}

func (d *tapMaker) Stop(ctx context.Context, name string) error {
	vm, err := d.Driver.Get(ctx, name)
	if err != nil {
		return err
	}
	if err := d.Driver.Stop(ctx, name); err != nil {
		return err
	}
	for _, n := range vm.Spec.NICs {
		d.ns.Run(d.t, "ip", "link", "del", n.Tap)
	}
	return nil
}

// TestPortOnTheKernel: the flows over a kernel Host in a network namespace
// (the hypervisor simulated, its taps real): after create the tap is on the
// bridge the flow made, filtered and shaped both ways; after a stop and a
// start (a new tap) it is shaped again; after delete nothing is left.
func TestPortOnTheKernel(t *testing.T) {
	ns := testenv.NewNetns(t)
	fd, err := netns.GetFromName(ns.Name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fd.Close() })
	nft, err := nftables.New(nftables.WithNetNSFd(int(fd)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = nft.CloseLasting() })
	host, err := netport.NewKernelHost(t.TempDir(), nettest.Handle(t, ns.Name), nft)
	require.NoError(t, err)
	fx := newFixture(t, "vptbr-kern", fixtureOption{ports: host, driver: func(d vmm.Driver) vmm.Driver { return &tapMaker{Driver: d, t: t, ns: ns} }})

	vm, tk := fx.create(t, "web", model.Limits{NetMbit: 20})
	require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	tap := flow.PortName(vm.ID)
	shaped := func(when string) {
		assert.Contains(t, ns.Run(t, "ip", "link", "show", tap), "master vptbr-kern", when)
		assert.Contains(t, ns.Run(t, "nft", "list", "table", "netdev", "vpt-"+tap), vm.Addresses[0], when)
		assert.Contains(t, ns.Run(t, "tc", "class", "show", "dev", tap), "rate 20Mbit", when)
		assert.Contains(t, ns.Run(t, "tc", "filter", "show", "dev", tap, "ingress"), "mirred", when)
		assert.Contains(t, ns.Run(t, "tc", "qdisc", "show", "dev", shaping.IFBName(tap)), "rate 20Mbit", when)
	}
	shaped("after create")
	for _, k := range []string{flow.KindVMStop, flow.KindVMStart} {
		tk := fx.run(t, k, vm.ID)
		require.Equal(t, store.TaskSucceeded, tk.State, tk.Error)
	}
	shaped("after a stop and a start")

	del := fx.run(t, flow.KindVMDelete, vm.ID)
	require.Equal(t, store.TaskSucceeded, del.State, del.Error)
	links := ns.Run(t, "ip", "-br", "link")
	for _, l := range []string{tap, shaping.IFBName(tap), "vptbr-kern"} {
		assert.NotContains(t, links, l)
	}
	assert.Empty(t, strings.TrimSpace(ns.Run(t, "nft", "list", "tables")))
	left, err := host.List(t.Context())
	require.NoError(t, err)
	assert.Empty(t, left)
}
