// Package flow holds the daemon's task handlers: what the tasks that change
// VMs do, step by step, over the SDK packages (scheduler, IPAM, storage,
// network, vmm). Each step records its undo before it acts (see package
// tasks), so a failure or a crash at any point leaves nothing behind.
//
// The create flow: reserve capacity with the scheduler → allocate addresses
// from the VM's IP pool → linked-clone the image into the VM's volume →
// prepare the network port → define and start the domain with cloud-init →
// commit the reservation and record the VM as running. The port follows the
// cluster's network mode (port.go): on the cluster's bridge, routed through
// the address block's gateway with a plain-tap NIC, or on the cluster's
// VxLAN network with the node's vtep address; settings that cannot give a
// port fail the create before the disk is made.
//
// Beside the VM tasks: disk growth (resize.go), image import into the
// nodes' pools and image deletion (image.go), migration (migrate.go), and
// the flood sync of a vxlan cluster whose nodes changed (vxlan.go).
//
//	f := flow.New(flow.Config{Store: st})
//	f.Register(engine)
package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
)

// The task kinds.
const (
	KindVMCreate         = "vm.create"
	KindVMDelete         = "vm.delete"
	KindVMStart          = "vm.start"
	KindVMStop           = "vm.stop"
	KindVMReboot         = "vm.reboot"
	KindVMResize         = "vm.resize"
	KindVMLimits         = "vm.limits"
	KindVMSnapshotCreate = "vm.snapshot.create"
	KindVMSnapshotDelete = "vm.snapshot.delete"
	KindVMRescue         = "vm.rescue"
	KindVMMigrate        = "vm.migrate"
)

// VMInput is the input of every VM task: the VM and what the task changes.
type VMInput struct {
	VMID      string        `json:"vm_id"`
	UserData  string        `json:"user_data,omitempty"`
	CPUs      int           `json:"cpus,omitempty"`
	MemoryMiB int64         `json:"memory_mib,omitempty"`
	DiskGiB   int64         `json:"disk_gib,omitempty"`
	Limits    *model.Limits `json:"limits,omitempty"`
	Snapshot  string        `json:"snapshot,omitempty"`
	Rescue    bool          `json:"rescue,omitempty"`
	NodeID    string        `json:"node_id,omitempty"`
	Force     bool          `json:"force,omitempty"`
}

// Config configures the flows.
type Config struct {
	Store  store.Store
	Events *events.Bus
	// IPAM allocates the VMs' addresses; required for creates.
	IPAM *ipam.Manager
	// Driver returns the hypervisor driver of a node (a simulated node, the
	// local libvirtd); required for every VM task.
	Driver func(ctx context.Context, node model.Node) (vmm.Driver, error)
	// Storage returns the storage pool of a node that holds the VMs' disks
	// and the images they are cloned from; required for creates.
	Storage func(ctx context.Context, node model.Node) (storage.Pool, error)
	// Ports returns the network ports of a node (bridge, anti-spoofing,
	// bandwidth limits of each VM NIC); required for creates.
	Ports func(ctx context.Context, node model.Node) (netport.Ports, error)
}

// Flow runs the VM tasks.
type Flow struct {
	cfg Config

	ops    options // optional parts (ops.go)
	mu     sync.Mutex
	scheds map[string]*scheduler.Scheduler // by cluster, built from the store on first use
	// digests are the versions of each cluster and its nodes when Lead
	// last looked.
	digests map[string]uint64
	pending map[string]string // VM ID → reservation ID of creates under way
	// Nodes and clusters as read from the store, dropped by Invalidate:
	// every step of every task asks for its node.
	nodes    map[string]model.Node
	clusters map[string]model.Cluster
}

// New returns the flows.
func New(cfg Config, opts ...Option) (*Flow, error) {
	if cfg.Store == nil {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "flow: Store is required")
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBus()
	}
	f := &Flow{cfg: cfg,
		scheds: map[string]*scheduler.Scheduler{}, pending: map[string]string{}, digests: map[string]uint64{},
		nodes: map[string]model.Node{}, clusters: map[string]model.Cluster{}}
	for _, o := range opts {
		o(&f.ops)
	}
	return f, nil
}

// Register installs the handlers and undo actions on an engine.
func (f *Flow) Register(e *tasks.Engine) {
	h := func(run func(context.Context, *tasks.Run) error) tasks.Handler {
		return tasks.Handler{Run: run, Finish: f.finishVM}
	}
	// The tasks that change what the nodes hold run on the placement
	// leader only, whose schedulers then know all of it.
	placing := func(run func(context.Context, *tasks.Run) error) tasks.Handler {
		return tasks.Handler{Run: run, Finish: f.finishVM, Placing: true}
	}
	e.Handle(KindVMCreate, placing(f.createVM))
	e.Handle(KindVMDelete, placing(f.deleteVM))
	e.Handle(KindVMStart, h(f.withPort(f.power(KindVMStart))))
	e.Handle(KindVMStop, h(f.power(KindVMStop)))
	e.Handle(KindVMReboot, h(f.power(KindVMReboot)))
	e.Handle(KindVMResize, placing(f.resize))
	e.Handle(KindVMLimits, h(f.withPortLimits(f.limits)))
	e.Handle(KindVMSnapshotCreate, h(f.snapshot(true)))
	e.Handle(KindVMSnapshotDelete, h(f.snapshot(false)))
	e.Handle(KindVMRescue, h(f.withPort(f.rescue)))
	e.Handle(KindVMMigrate, placing(f.migrate))
	e.Handle(KindClusterFloodSync, tasks.Handler{Run: f.syncFlood})
	// Journals written before reservations became volatile undos name this
	// action; what it undid died with the daemon that wrote them.
	e.OnUndo(undoReleaseV1, func(context.Context, json.RawMessage) error { return nil })
	e.OnUndo(undoAddresses, f.undoAddresses)
	e.OnUndo(undoDomain, onNode(f.nodeDriver, func(ctx context.Context, drv vmm.Driver, a vmArgs) error {
		return removeDomain(ctx, drv, DomainName(a.VMID))
	}))
	e.OnUndo(undoVolume, onNode(f.nodePool, func(ctx context.Context, pool storage.Pool, a vmArgs) error {
		return deleteVolume(ctx, pool, VolumeName(a.VMID))
	}))
	e.OnUndo(undoPort, onNode(f.nodePorts, func(ctx context.Context, ports netport.Ports, a vmArgs) error {
		return ports.Teardown(ctx, PortName(a.VMID))
	}))
	f.registerOps(e)
}

// The undo actions.
const (
	undoReleaseV1 = "scheduler.release"
	undoAddresses = "ipam.release-owner"
	undoDomain    = "vmm.delete"
	undoVolume    = "storage.delete"
)

// VolumeName is the storage name of a VM's root disk.
func VolumeName(vmID string) string { return "vpt-" + vmID + "-root" }

// ImageVolume is the storage name of an image's base volume on a node.
func ImageVolume(imageID string) string { return "image-" + imageID }

// load reads one stored object and decodes it as T.
func load[T any](ctx context.Context, r store.Reader, kind store.Kind, id string) (T, error) {
	var v T
	o, err := r.GetObject(ctx, kind, id)
	if err != nil {
		return v, err
	}
	err = json.Unmarshal(o.Data, &v)
	return v, err
}

// loadCached is load through one of the flow's caches (nodes, clusters).
func loadCached[T any](ctx context.Context, f *Flow, cache map[string]T, kind store.Kind, id string) (T, error) {
	f.mu.Lock()
	v, ok := cache[id]
	f.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := load[T](ctx, f.cfg.Store, kind, id)
	if err == nil {
		f.mu.Lock()
		cache[id] = v
		f.mu.Unlock()
	}
	return v, err
}

func (f *Flow) node(ctx context.Context, nodeID string) (model.Node, error) {
	return loadCached(ctx, f, f.nodes, store.KindNode, nodeID)
}

func (f *Flow) nodePool(ctx context.Context, nodeID string) (storage.Pool, error) {
	if f.cfg.Storage == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "no storage backend is configured")
	}
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return f.cfg.Storage(ctx, n)
}

// ensureImage makes sure the node's pool holds the image's base volume.
// On a simulated node the base is an empty volume of the image's size; on a
// real node the image must have been imported into the pool (the storage
// Importer), and a missing base is an error.
func (f *Flow) ensureImage(ctx context.Context, pool storage.Pool, imageID string) error {
	name := ImageVolume(imageID)
	_, err := pool.Volume(ctx, name)
	if err == nil || !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	info, err := pool.Info(ctx)
	if err != nil {
		return err
	}
	if info.Driver != "fake" {
		return virtplane.Errorf(virtplane.ErrNotFound, "image %s is not imported into pool %s (volume %s): import it into the node first (POST /v1/images/%s/import)", imageID, info.Name, name, imageID)
	}
	img, err := load[model.Image](ctx, f.cfg.Store, store.KindImage, imageID)
	if err != nil {
		return err
	}
	size := max(img.SizeMiB, 1024) << 20
	_, err = pool.Create(ctx, storage.VolumeSpec{Name: name, Size: size, Format: storage.FormatQcow2})
	if errors.Is(err, virtplane.ErrAlreadyExists) {
		return nil // a concurrent create made it
	}
	return err
}

// onNode makes the undo action of a step that acted on a VM's node through
// one of the node's backends (hypervisor, storage, ports): a node that is
// gone took what the step made with it.
func onNode[B any](open func(context.Context, string) (B, error), act func(context.Context, B, vmArgs) error) tasks.UndoFunc {
	return func(ctx context.Context, raw json.RawMessage) error {
		var a vmArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		b, err := open(ctx, a.NodeID)
		if errors.Is(err, virtplane.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return act(ctx, b, a)
	}
}

func deleteVolume(ctx context.Context, pool storage.Pool, name string) error {
	if err := pool.Delete(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	return nil
}

type vmArgs struct {
	VMID      string `json:"vm_id"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
}

// DomainName is the hypervisor name of a VM: the vpt- prefix lets
// `make env-clean` find what a crashed test left.
func DomainName(vmID string) string { return "vpt-" + vmID }

// Invalidate drops what the flows remember of a cluster (placement state,
// the cluster and its nodes) after its settings or nodes changed; the next
// task reads them from the store again.
func (f *Flow) Invalidate(clusterID string) {
	f.mu.Lock()
	delete(f.scheds, clusterID)
	delete(f.clusters, clusterID)
	for id, n := range f.nodes {
		if n.ClusterID == clusterID {
			delete(f.nodes, id)
		}
	}
	f.mu.Unlock()
}

// Lead is the engine's OnLead: on taking the placement lead it forgets all
// placement state (another daemon placed meanwhile); while leading, it
// forgets that of the clusters whose settings or nodes changed in the
// store since it last looked, as they do when changed through another
// daemon's API.
func (f *Flow) Lead(ctx context.Context, took bool) {
	digests, err := f.clusterDigests(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if took || err != nil {
		clear(f.scheds)
		clear(f.clusters)
		clear(f.nodes)
		if err == nil {
			f.digests = digests
		} else {
			f.digests = nil
		}
		return
	}
	for id, d := range digests {
		if f.digests[id] != d {
			delete(f.scheds, id)
			delete(f.clusters, id)
			for nid, n := range f.nodes {
				if n.ClusterID == id {
					delete(f.nodes, nid)
				}
			}
		}
	}
	f.digests = digests
}

// clusterDigests returns, by cluster, a digest of the versions of the
// cluster and its nodes.
func (f *Flow) clusterDigests(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	mix := func(id string, o store.Object) {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", o.ID, o.Version)
		out[id] ^= h.Sum64()
	}
	for _, kind := range []store.Kind{store.KindCluster, store.KindNode} {
		after := ""
		for {
			objs, err := f.cfg.Store.ListObjects(ctx, kind, store.ListOptions{After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				id := o.ID
				if kind == store.KindNode {
					id = o.Parent
				}
				mix(id, o)
			}
			if len(objs) < 1000 {
				break
			}
			after = objs[len(objs)-1].ID
		}
	}
	return out, nil
}

// schedulerFor returns the cluster's scheduler, building it from the store:
// the cluster's rules, its nodes, and the VMs placed on them. The caller
// holds f.mu.
func (f *Flow) schedulerFor(ctx context.Context, clusterID string) (*scheduler.Scheduler, error) {
	if s, ok := f.scheds[clusterID]; ok {
		return s, nil
	}
	c, err := load[model.Cluster](ctx, f.cfg.Store, store.KindCluster, clusterID)
	if err != nil {
		return nil, err
	}
	snap := scheduler.Cluster{Settings: scheduler.Settings{
		Strategy: scheduler.Strategy(c.Strategy), CPURatio: c.CPUOvercommit, RAMRatio: c.RAMOvercommit,
		MaxVMs: c.MaxVMs, MaxVMsPerNode: c.MaxVMsPerNode,
	}}
	if err := forEach(ctx, f.cfg.Store, store.KindNode, store.ListOptions{Parent: clusterID}, func(n model.Node) error {
		st := scheduler.NodeActive
		if n.Maintenance {
			st = scheduler.NodeMaintenance
		}
		snap.Nodes = append(snap.Nodes, scheduler.Node{ID: n.ID, State: st, Cores: n.Cores, RAM: n.MemoryMiB << 20})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := forEach(ctx, f.cfg.Store, store.KindVM, store.ListOptions{}, func(vm model.VM) error {
		if vm.ClusterID == clusterID && vm.NodeID != "" {
			snap.VMs = append(snap.VMs, scheduler.VM{ID: vm.ID, Node: vm.NodeID, Request: request(vm)})
		}
		return nil
	}); err != nil {
		return nil, err
	}
	s, err := scheduler.New(snap)
	if err != nil {
		return nil, err
	}
	f.scheds[clusterID] = s
	return s, nil
}

func request(vm model.VM) scheduler.Request {
	return scheduler.Request{VCPUs: vm.CPUs, RAM: vm.MemoryMiB << 20}
}

func forEach[T any](ctx context.Context, r store.Reader, kind store.Kind, opts store.ListOptions, fn func(T) error) error {
	opts.Limit = 1000
	for {
		objs, err := r.ListObjects(ctx, kind, opts)
		if err != nil {
			return err
		}
		for _, o := range objs {
			var v T
			if err := json.Unmarshal(o.Data, &v); err != nil {
				return err
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(objs) < opts.Limit {
			return nil
		}
		opts.After = objs[len(objs)-1].ID
	}
}

func (f *Flow) loadVM(ctx context.Context, id string) (model.VM, error) {
	return load[model.VM](ctx, f.cfg.Store, store.KindVM, id)
}

func (f *Flow) nodeDriver(ctx context.Context, nodeID string) (vmm.Driver, error) {
	if f.cfg.Driver == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "no hypervisor backend is configured")
	}
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return f.cfg.Driver(ctx, n)
}

// vmPatch is what a task changed on its VM; finishVM applies it in the
// task's final transaction.
type vmPatch struct {
	State     string            `json:"state,omitempty"`
	NodeID    string            `json:"node_id,omitempty"`
	Volume    string            `json:"volume,omitempty"`
	Addresses []string          `json:"addresses,omitempty"`
	CPUs      int               `json:"cpus,omitempty"`
	MemoryMiB int64             `json:"memory_mib,omitempty"`
	DiskGiB   int64             `json:"disk_gib,omitempty"`
	Limits    *model.Limits     `json:"limits,omitempty"`
	Snapshots *[]model.Snapshot `json:"snapshots,omitempty"`
}

func (f *Flow) createVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	if f.cfg.IPAM == nil {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "no IPAM is configured")
	}
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID}

	var placement scheduler.Placement
	// The reservation lives in this process only: its undo need not be stored.
	if err := r.Step(ctx, "reserve capacity", tasks.VolatileUndo(func(ctx context.Context) error { return f.releaseReservation(args) }), func(ctx context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, err := f.schedulerFor(ctx, vm.ClusterID)
		if err != nil {
			return err
		}
		res, err := s.Reserve(request(vm), time.Now().Add(time.Hour))
		if err != nil {
			return err
		}
		f.pending[vm.ID] = res.ID
		placement = res.Placement
		return nil
	}); err != nil {
		return err
	}
	args.NodeID = placement.Node
	_ = r.Progress(ctx, 20, "placed on node "+placement.Node)

	// The undos of the steps below, recorded in one write: each is
	// idempotent and does nothing for a step that never acted.
	if err := r.Journal(ctx, tasks.UndoAction(undoAddresses, args), tasks.UndoAction(undoVolume, args),
		tasks.UndoAction(undoPort, args), tasks.UndoAction(undoDomain, args)); err != nil {
		return err
	}
	var addr ipam.Allocation
	if err := r.Step(ctx, "allocate address", tasks.NoUndo, func(ctx context.Context) error {
		var err error
		addr, err = f.cfg.IPAM.Allocate(ctx, vm.PoolID, ipam.Request{Owner: ipam.Owner{VM: vm.ID, Interface: "eth0"}})
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 40, "address "+addr.Prefix.String())

	// The port is known before the disk is made: a cluster or node whose
	// network settings cannot give the VM a port fails the create here.
	cluster, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return err
	}
	node, err := f.node(ctx, placement.Node)
	if err != nil {
		return err
	}
	nodes, err := f.clusterNodes(ctx, cluster)
	if err != nil {
		return err
	}
	port, err := portSpec(vm, cluster, node, nodes, addr)
	if err != nil {
		return err
	}

	pool, err := f.nodePool(ctx, placement.Node)
	if err != nil {
		return err
	}
	var disk storage.Volume
	if err := r.Step(ctx, "clone image", tasks.NoUndo, func(ctx context.Context) error {
		if err := f.ensureImage(ctx, pool, vm.ImageID); err != nil {
			return err
		}
		cl, ok := pool.(storage.Cloner)
		if !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "the node's storage cannot clone")
		}
		var err error
		if disk, err = cl.Clone(ctx, ImageVolume(vm.ImageID), VolumeName(vm.ID), storage.CloneLinked); err != nil {
			return err
		}
		if want := vm.DiskGiB << 30; want > disk.Capacity {
			rz, ok := pool.(storage.Resizer)
			if !ok {
				return virtplane.Errorf(virtplane.ErrNotImplemented, "the node's storage cannot grow the disk to %d GiB", vm.DiskGiB)
			}
			disk, err = rz.Resize(ctx, disk.Name, want, storage.ResizeOptions{})
		}
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 60, "disk "+disk.Name)

	ports, err := f.nodePorts(ctx, placement.Node)
	if err != nil {
		return err
	}
	// The port is ready before the domain exists: its bridge, and its
	// firewall, which the kernel hooks to the tap once the hypervisor
	// makes it. What needs the tap (shaping, routes) follows the start.
	if err := r.Step(ctx, "prepare network port", tasks.NoUndo, func(ctx context.Context) error {
		return ports.Setup(ctx, port)
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 70, port.String())

	drv, err := f.nodeDriver(ctx, placement.Node)
	if err != nil {
		return err
	}
	spec := vmm.Spec{Name: DomainName(vm.ID), VCPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB,
		CloudInit: cloudInit(vm, in.UserData, addr, port.Mode),
		Disks:     []vmm.Disk{{Target: "vda", Source: vmm.DiskSource(disk.Attachment)}},
		NICs:      []vmm.NIC{nic(port)}}
	if err := r.Step(ctx, "define domain", tasks.NoUndo, func(ctx context.Context) error {
		_, err := drv.Create(ctx, spec)
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 80, "defined")
	if err := r.Step(ctx, "start domain", tasks.NoUndo, func(ctx context.Context) error {
		if err := drv.Start(ctx, spec.Name); err != nil {
			return err
		}
		// The tap exists now: the port completes (enslaved, shaped). One
		// step with the start, whose undo is the domain's and the port's.
		return ports.Setup(ctx, port)
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{State: model.VMRunning, NodeID: placement.Node, Volume: disk.Name, Addresses: []string{addr.Addr().String()}})
}

func (f *Flow) cluster(ctx context.Context, id string) (model.Cluster, error) {
	return loadCached(ctx, f, f.clusters, store.KindCluster, id)
}

// cloudInit gives the guest its name, keys and static address. A routed
// guest gets its address alone (a /32 or /128) and its gateway on-link:
// every packet goes to the host, which holds the gateway on the tap and
// routes; neighbours in the block are not on the guest's link.
func cloudInit(vm model.VM, userData string, a ipam.Allocation, mode string) *vmm.CloudInit {
	meta := fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", vm.ID, vm.Name)
	if len(vm.SSHKeys) > 0 {
		meta += "public-keys:\n"
		for _, k := range vm.SSHKeys {
			meta += "  - " + k + "\n"
		}
	}
	routed := mode == netport.ModeRouted && a.Gateway.IsValid()
	addr := hostPrefix(a)
	if routed {
		addr = a.Prefix.String()
	}
	netcfg := fmt.Sprintf("version: 2\nethernets:\n  eth0:\n    match: {name: \"e*\"}\n    addresses: [%s]\n", addr)
	switch {
	case routed:
		def := map[bool]string{true: "0.0.0.0/0", false: "::/0"}[a.Gateway.Is4()]
		netcfg += "    routes:\n      - {to: " + def + ", via: " + a.Gateway.String() + ", on-link: true}\n"
	case a.Gateway.IsValid():
		netcfg += "    gateway" + map[bool]string{true: "4", false: "6"}[a.Gateway.Is4()] + ": " + a.Gateway.String() + "\n"
	}
	if userData == "" {
		userData = "#cloud-config\n"
	}
	return &vmm.CloudInit{UserData: userData, MetaData: meta, NetworkConfig: netcfg}
}

func hostPrefix(a ipam.Allocation) string {
	if a.Network.IsValid() {
		return netip.PrefixFrom(a.Addr(), a.Network.Bits()).String()
	}
	return a.Prefix.String()
}

// releaseReservation gives back a create's reservation.
func (f *Flow) releaseReservation(a vmArgs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.pending[a.VMID]
	if !ok {
		return nil // never reserved, or reserved by a daemon run that died: its reservations died with it
	}
	delete(f.pending, a.VMID)
	if s, ok := f.scheds[a.ClusterID]; ok {
		if err := s.Release(id); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (f *Flow) undoAddresses(ctx context.Context, raw json.RawMessage) error {
	var a vmArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	return f.releaseAddresses(ctx, a.VMID)
}

func (f *Flow) releaseAddresses(ctx context.Context, vmID string) error {
	if f.cfg.IPAM == nil {
		return nil
	}
	allocs, err := f.cfg.IPAM.LookupOwner(ctx, ipam.Owner{VM: vmID})
	if err != nil {
		return err
	}
	for _, al := range allocs {
		if err := f.cfg.IPAM.Release(ctx, al.Pool, al.Prefix); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	return nil
}

// removeDomain powers off and deletes a domain; a missing one is fine.
func removeDomain(ctx context.Context, drv vmm.Driver, name string) error {
	d, err := drv.Get(ctx, name)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.State != vmm.StateStopped {
		if err := drv.Stop(ctx, name); err != nil && !errors.Is(err, virtplane.ErrConflict) {
			return err
		}
	}
	if err := drv.Delete(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	return nil
}

// deleteVM removes the domain, the network port, the volume, the addresses
// and the placement; every step is idempotent, so a delete that fails
// half-way can simply be repeated.
func (f *Flow) deleteVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	if vm.NodeID != "" {
		drv, err := f.nodeDriver(ctx, vm.NodeID)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete domain", tasks.NoUndo, func(ctx context.Context) error {
				return removeDomain(ctx, drv, DomainName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if vm.NodeID != "" {
		ports, err := f.nodePorts(ctx, vm.NodeID)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete network port", tasks.NoUndo, func(ctx context.Context) error {
				return ports.Teardown(ctx, PortName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if vm.NodeID != "" {
		pool, err := f.nodePool(ctx, vm.NodeID)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete volume", tasks.NoUndo, func(ctx context.Context) error {
				return deleteVolume(ctx, pool, VolumeName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if err := r.Step(ctx, "release addresses", tasks.NoUndo, func(ctx context.Context) error {
		return f.releaseAddresses(ctx, vm.ID)
	}); err != nil {
		return err
	}
	f.mu.Lock()
	if s, ok := f.scheds[vm.ClusterID]; ok {
		if err := s.RemoveVM(vm.ID); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			f.mu.Unlock()
			return err
		}
	}
	f.mu.Unlock()
	return nil
}

func (f *Flow) withDomain(ctx context.Context, r *tasks.Run) (model.VM, VMInput, vmm.Driver, error) {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return model.VM{}, in, nil, err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return vm, in, nil, err
	}
	if vm.NodeID == "" {
		return vm, in, nil, virtplane.Errorf(virtplane.ErrConflict, "vm %s is not placed on a node (state %s)", vm.ID, vm.State)
	}
	drv, err := f.nodeDriver(ctx, vm.NodeID)
	return vm, in, drv, err
}

func (f *Flow) power(kind string) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		vm, _, drv, err := f.withDomain(ctx, r)
		if err != nil {
			return err
		}
		name := DomainName(vm.ID)
		state := model.VMRunning
		err = r.Step(ctx, kind, tasks.NoUndo, func(ctx context.Context) error {
			switch kind {
			case KindVMStart:
				return drv.Start(ctx, name)
			case KindVMStop:
				state = model.VMStopped
				return drv.Stop(ctx, name)
			default:
				return drv.Reboot(ctx, name)
			}
		})
		if err != nil {
			return err
		}
		return r.SetResult(vmPatch{State: state})
	}
}

func capability[T any](drv vmm.Driver, what string) (T, error) {
	c, ok := drv.(T)
	if !ok {
		return c, virtplane.Errorf(virtplane.ErrNotImplemented, "the node's hypervisor driver cannot %s", what)
	}
	return c, nil
}

func (f *Flow) limits(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	lm, err := capability[vmm.Limiter](drv, "set limits")
	if err != nil {
		return err
	}
	l := vmm.Limits{}
	if in.Limits != nil && in.Limits.CPUPercent > 0 {
		l.CPUWeight = uint64(in.Limits.CPUPercent) * 100
	}
	if err := r.Step(ctx, "set limits", tasks.NoUndo, func(ctx context.Context) error {
		return lm.SetLimits(ctx, DomainName(vm.ID), l)
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{Limits: in.Limits})
}

func (f *Flow) snapshot(create bool) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		vm, in, drv, err := f.withDomain(ctx, r)
		if err != nil {
			return err
		}
		sn, err := capability[vmm.Snapshotter](drv, "snapshot")
		if err != nil {
			return err
		}
		snaps := append([]model.Snapshot{}, vm.Snapshots...)
		if create {
			err = r.Step(ctx, "create snapshot "+in.Snapshot, tasks.NoUndo, func(ctx context.Context) error {
				return sn.CreateSnapshot(ctx, DomainName(vm.ID), vmm.SnapshotSpec{Name: in.Snapshot})
			})
			snaps = append(snaps, model.Snapshot{Name: in.Snapshot, Created: time.Now().UTC()})
		} else {
			err = r.Step(ctx, "delete snapshot "+in.Snapshot, tasks.NoUndo, func(ctx context.Context) error {
				err := sn.DeleteSnapshot(ctx, DomainName(vm.ID), in.Snapshot)
				if errors.Is(err, virtplane.ErrNotFound) {
					return nil
				}
				return err
			})
			for i, s := range snaps {
				if s.Name == in.Snapshot {
					snaps = append(snaps[:i], snaps[i+1:]...)
					break
				}
			}
		}
		if err != nil {
			return err
		}
		return r.SetResult(vmPatch{Snapshots: &snaps})
	}
}

func (f *Flow) rescue(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	rs, err := capability[vmm.Rescuer](drv, "boot into rescue")
	if err != nil {
		return err
	}
	state := model.VMRunning
	err = r.Step(ctx, "rescue", tasks.NoUndo, func(ctx context.Context) error {
		if in.Rescue {
			state = model.VMRescue
			return rs.EnterRescue(ctx, DomainName(vm.ID), vmm.RescueSpec{})
		}
		return rs.ExitRescue(ctx, DomainName(vm.ID))
	})
	if err != nil {
		return err
	}
	return r.SetResult(vmPatch{State: state})
}

// Console tells how to reach a VM's console.
func (f *Flow) Console(ctx context.Context, vmID string) (model.ConsoleInfo, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil {
		return model.ConsoleInfo{}, err
	}
	if vm.NodeID == "" {
		return model.ConsoleInfo{}, virtplane.Errorf(virtplane.ErrConflict, "vm %s is not placed on a node", vmID)
	}
	drv, err := f.nodeDriver(ctx, vm.NodeID)
	if err != nil {
		return model.ConsoleInfo{}, err
	}
	c, err := capability[vmm.Consoler](drv, "open a console")
	if err != nil {
		return model.ConsoleInfo{}, err
	}
	ci, err := c.Console(ctx, DomainName(vmID))
	return model.ConsoleInfo{Type: ci.Type, Host: ci.Host, Port: ci.Port}, err
}

// finishVM records a task's end on its VM in the task's final transaction.
func (f *Flow) finishVM(ctx context.Context, tx store.Tx, t *store.Task) error {
	var in VMInput
	if err := json.Unmarshal(t.Input, &in); err != nil || in.VMID == "" {
		return nil
	}
	o, err := tx.GetObject(ctx, store.KindVM, in.VMID)
	if err != nil {
		return nil // deleted meanwhile
	}
	var vm model.VM
	if err := json.Unmarshal(o.Data, &vm); err != nil {
		return err
	}
	switch {
	case t.Kind == KindVMDelete && t.State == store.TaskSucceeded:
		return tx.DeleteObject(ctx, store.KindVM, vm.ID, 0)
	case t.Kind == KindVMCreate && t.State != store.TaskSucceeded:
		vm.State, vm.Error = model.VMFailed, t.Error
	case t.State != store.TaskSucceeded:
		vm.Error = t.Error
	default:
		var p vmPatch
		if len(t.Result) > 0 {
			if err := json.Unmarshal(t.Result, &p); err != nil {
				return err
			}
		}
		vm.Error = ""
		if p.State != "" {
			vm.State = p.State
		}
		if p.NodeID != "" {
			vm.NodeID = p.NodeID
		}
		if p.Volume != "" {
			vm.Volume = p.Volume
		}
		if p.Addresses != nil {
			vm.Addresses = p.Addresses
		}
		if p.CPUs != 0 {
			vm.CPUs = p.CPUs
		}
		if p.MemoryMiB != 0 {
			vm.MemoryMiB = p.MemoryMiB
		}
		if p.DiskGiB != 0 {
			vm.DiskGiB = p.DiskGiB
		}
		if p.Limits != nil {
			vm.Limits = *p.Limits
		}
		if p.Snapshots != nil {
			vm.Snapshots = *p.Snapshots
		}
		if t.Kind == KindVMCreate || t.Kind == KindVMMigrate {
			f.commitReservation(vm)
		}
	}
	vm.TaskID = t.ID
	if o.Data, err = json.Marshal(vm); err != nil {
		return err
	}
	return tx.UpdateObject(ctx, &o)
}

// commitReservation turns a create's (or a migration's) reservation into a
// placed VM; a migrated VM leaves its old node.
func (f *Flow) commitReservation(vm model.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.pending[vm.ID]
	if !ok {
		return
	}
	delete(f.pending, vm.ID)
	if s, ok := f.scheds[vm.ClusterID]; ok {
		_ = s.RemoveVM(vm.ID)
		_ = s.Commit(id, vm.ID)
	}
}

// Domains lists the hypervisor's machines on a node.
func (f *Flow) Domains(ctx context.Context, nodeID string) ([]vmm.VM, error) {
	drv, err := f.nodeDriver(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return drv.List(ctx)
}
