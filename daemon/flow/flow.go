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
// The files follow the tasks: create.go, delete.go, actions.go (start,
// stop), lifecycle.go (suspend, resume, graceful shutdown and reboot,
// reset), limits.go, snapshots.go (take, revert, delete), rescue.go,
// guest.go (guest agent calls), console.go (where a console listens, the
// graphics device of a new VM), templates.go (domain templates),
// finish.go (what a finished task writes on its VM), placement.go (the
// schedulers and the placement lead), rebalance.go (plans and the task
// applying one by migrations), disk growth (resize.go), image import into
// the nodes' pools and image deletion (image.go), migration, within a
// cluster or to another (migrate.go), and the flood sync of a vxlan
// cluster whose nodes changed (vxlan.go).
//
//	f := flow.New(flow.Config{Store: st})
//	f.Register(engine)
package flow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/events"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	netport "github.com/virtplane/virtplane/network/port"
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
	KindVMSuspend        = "vm.suspend"
	KindVMResume         = "vm.resume"
	KindVMShutdown       = "vm.shutdown"
	KindVMReset          = "vm.reset"
	KindVMSnapshotRevert = "vm.snapshot.revert"
	KindClusterRebalance = "cluster.rebalance"
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
	// TimeoutSec bounds a graceful shutdown (shutdown, reboot).
	TimeoutSec int `json:"timeout_sec,omitempty"`
	// Address is the address a create asked for (an admin's choice, the
	// way to hand out a reserved address); empty takes the next free one.
	Address string `json:"address,omitempty"`
	// Memory chooses the kind of a snapshot: nil takes memory of a
	// running VM and disks only of a stopped one.
	Memory *bool `json:"memory,omitempty"`
	// Storage is the target storage of a disk move or a backup.
	Storage string `json:"storage,omitempty"`
	// Disk is the data disk an attach adds (its target, size and storage
	// request).
	Disk *model.Disk `json:"disk,omitempty"`
	// DiskTarget is the data disk a detach or a disk resize is about.
	DiskTarget string `json:"disk_target,omitempty"`
	// BackupID is the backup a restore or a backup delete is about.
	BackupID string `json:"backup_id,omitempty"`
	// ClusterID is the target cluster of a migration to another cluster.
	ClusterID string `json:"cluster_id,omitempty"`
	// Template is the domain template of a create, as it was when the
	// create was submitted.
	Template *model.DomainTemplate `json:"template,omitempty"`
}

// Config configures the flows.
type Config struct {
	Store  store.Store
	Events *events.Bus
	// IPAM allocates the VMs' addresses; required for creates.
	IPAM *ipam.Manager
	// Node opens a node of a cluster into what it offers (hypervisor,
	// storage, network ports, commands, migration); required for every VM
	// task. The flows never look at what kind of node it is.
	Node func(ctx context.Context, n model.Node, c model.Cluster) (*node.Backend, error)
	// Shared opens the clusters' shared storages (nil: every storage is
	// opened on the node).
	Shared SharedStorages
}

// Flow runs the VM tasks.
type Flow struct {
	cfg Config
	// engine runs the tasks that tasks start (a rebalance's migrations);
	// set by Register.
	engine *tasks.Engine

	ops    options // optional parts (ops.go)
	mu     sync.Mutex
	scheds map[string]*scheduler.Scheduler // by cluster, built from the store on first use
	// digests are the versions of each cluster and its nodes when Lead
	// last looked.
	digests map[string]uint64
	pending map[string]string // VM ID → reservation ID of creates under way
	// pendingCluster is the cluster of a pending reservation when it is
	// not the VM's (a move to another cluster).
	pendingCluster map[string]string
	// Nodes and clusters as read from the store, dropped by Invalidate:
	// every step of every task asks for its node.
	nodes    map[string]model.Node
	clusters map[string]model.Cluster
	images   imageLocks
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
		scheds: map[string]*scheduler.Scheduler{}, pending: map[string]string{}, pendingCluster: map[string]string{}, digests: map[string]uint64{},
		nodes: map[string]model.Node{}, clusters: map[string]model.Cluster{}}
	for _, o := range opts {
		o(&f.ops)
	}
	return f, nil
}

// Register installs the handlers and undo actions on an engine.
func (f *Flow) Register(e *tasks.Engine) {
	f.engine = e
	// A VM task that a stopped daemon interrupts is rolled back and run
	// again (Retry): its caller asked once, with an idempotency key, and
	// waits for the outcome. A migration is the exception: an interrupted
	// one leaves the VM on its source, and whether to move it again is the
	// caller's call.
	h := func(run func(context.Context, *tasks.Run) error) tasks.Handler {
		return tasks.Handler{Run: run, Finish: f.finishVM, Retry: true}
	}
	// The tasks that change what the nodes hold run on the placement
	// leader only, whose schedulers then know all of it.
	placing := func(run func(context.Context, *tasks.Run) error) tasks.Handler {
		return tasks.Handler{Run: run, Finish: f.finishVM, Placing: true, Retry: true}
	}
	e.Handle(KindVMCreate, placing(f.createVM))
	e.Handle(KindVMDelete, placing(f.deleteVM))
	e.Handle(KindVMStart, h(f.withPort(f.power(KindVMStart))))
	e.Handle(KindVMStop, h(f.power(KindVMStop)))
	e.Handle(KindVMReboot, h(f.withPort(f.reboot)))
	e.Handle(KindVMResize, placing(f.resize))
	e.Handle(KindVMLimits, h(f.withPortLimits(f.limits)))
	e.Handle(KindVMSnapshotCreate, h(f.snapshot(true)))
	e.Handle(KindVMSnapshotDelete, h(f.snapshot(false)))
	e.Handle(KindVMSnapshotRevert, h(f.withPort(f.revertSnapshot)))
	e.Handle(KindVMRescue, h(f.withPort(f.rescue)))
	e.Handle(KindVMSuspend, h(f.pause(true)))
	e.Handle(KindVMResume, h(f.pause(false)))
	e.Handle(KindVMShutdown, h(f.shutdown))
	e.Handle(KindVMReset, h(f.reset))
	e.Handle(KindClusterRebalance, tasks.Handler{Run: f.rebalance, Placing: true})
	e.Handle(KindVMMigrate, tasks.Handler{Run: f.migrate, Finish: f.finishVM, Placing: true})
	// A disk move interrupted by a stopped daemon is rolled back (the VM
	// stays on its old disk); whether to move again is the caller's call.
	e.Handle(KindVMDiskMove, tasks.Handler{Run: f.moveDisk, Finish: f.finishVM, Placing: true})
	f.registerBackups(e)
	f.registerDisks(e, placing, h)
	e.Handle(KindImageFromVM, tasks.Handler{Run: f.imageFromVM, Finish: f.finishImage})
	e.Handle(KindClusterFloodSync, tasks.Handler{Run: f.syncFlood, Retry: true})
	// Journals written before reservations became volatile undos name this
	// action; what it undid died with the daemon that wrote them.
	e.OnUndo(undoReleaseV1, func(context.Context, json.RawMessage) error { return nil })
	e.OnUndo(undoAddresses, f.undoAddresses)
	e.OnUndo(undoDomain, onNode(f.nodeDriver, func(ctx context.Context, drv vmm.Driver, a vmArgs) error {
		return removeDomain(ctx, drv, DomainName(a.VMID))
	}))
	e.OnUndo(undoIncoming, onNode(f.nodeDriver, func(ctx context.Context, drv vmm.Driver, a vmArgs) error {
		p, ok := vmm.As[vmm.IncomingPreparer](drv)
		if !ok {
			return nil
		}
		if err := p.DiscardIncoming(ctx, DomainName(a.VMID)); err != nil && !errors.Is(err, virtplane.ErrConflict) {
			return err // ErrConflict: the VM arrived, and its files are its own
		}
		return nil
	}))
	e.OnUndo(undoVolume, func(ctx context.Context, raw json.RawMessage) error {
		var a vmArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		pool, err := f.vmPool(ctx, a.NodeID, a.Storage)
		if errors.Is(err, virtplane.ErrNotFound) || errors.Is(err, node.ErrNotOffered) {
			return nil // the node or the storage is gone, or never had a pool
		}
		if err != nil {
			return err
		}
		return deleteVolume(ctx, pool, cmp.Or(a.Volume, VolumeName(a.VMID)))
	})
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
	undoIncoming  = "vmm.discard-incoming"
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

// backend opens a node by its ID.
func (f *Flow) backend(ctx context.Context, nodeID string) (model.Node, *node.Backend, error) {
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return n, nil, err
	}
	b, err := f.open(ctx, n)
	return n, b, err
}

// open opens a node.
func (f *Flow) open(ctx context.Context, n model.Node) (*node.Backend, error) {
	if f.cfg.Node == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "no node backend is configured")
	}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return nil, err
	}
	return f.cfg.Node(ctx, n, c)
}

func (f *Flow) nodePool(ctx context.Context, nodeID string) (storage.Pool, error) {
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return f.diskPool(ctx, n, b)
}

// diskPool is the pool of a node that imports put images into: the
// cluster's first file storage (imageStorage), else the node's own pool.
func (f *Flow) diskPool(ctx context.Context, n model.Node, b *node.Backend) (storage.Pool, error) {
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return nil, err
	}
	if name := imageStorage(c); name != "" && b.Pool != nil {
		ref, _ := c.Storage(name)
		return b.Pool(ctx, ref)
	}
	if b.OwnPool == nil {
		return nil, node.NotOffered(n, "no storage pool")
	}
	return b.OwnPool(ctx)
}

// imageStorage names the storage of cluster c that images are imported
// into: its first file storage (a directory its nodes share, or each
// node's own at that path); "" for the node's own pool.
func imageStorage(c model.Cluster) string {
	for _, ref := range c.Storages {
		if ref.Driver == "file" && ref.Path != "" {
			return ref.Name
		}
	}
	return ""
}

// onNode makes the undo action of a step that acted on a VM's node through
// one of the node's backends (hypervisor, storage, ports): a node that is
// gone took what the step made with it.
func onNode[B any, A nodeArgs](open func(context.Context, string) (B, error), act func(context.Context, B, A) error) tasks.UndoFunc {
	return func(ctx context.Context, raw json.RawMessage) error {
		var a A
		if err := json.Unmarshal(raw, &a); err != nil {
			return err
		}
		b, err := open(ctx, a.node())
		if errors.Is(err, virtplane.ErrNotFound) || errors.Is(err, node.ErrNotOffered) {
			return nil // the node is gone, or never had the part
		}
		if err != nil {
			return err
		}
		return act(ctx, b, a)
	}
}

// nodeArgs are undo arguments that name the node the undo acts on.
type nodeArgs interface{ node() string }

func (a vmArgs) node() string { return a.NodeID }

type vmArgs struct {
	VMID      string `json:"vm_id"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
	// Storage is the cluster storage of the VM's disk on NodeID (empty:
	// the node's own pool).
	Storage string `json:"storage,omitempty"`
	// Volume is the volume an undo is about when it is not the VM's root
	// (a data disk).
	Volume string `json:"volume,omitempty"`
}

// DomainName is the hypervisor name of a VM: the vpt- prefix lets
// `make env-clean` find what a crashed test left.
func DomainName(vmID string) string { return "vpt-" + vmID }

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
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if b.VMM == nil {
		return nil, node.NotOffered(n, "no hypervisor")
	}
	return b.VMM, nil
}

func (f *Flow) cluster(ctx context.Context, id string) (model.Cluster, error) {
	return loadCached(ctx, f, f.clusters, store.KindCluster, id)
}
