package flow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/scheduler"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// The undo actions of a migration.
const (
	// undoRedefine defines a domain again on the node it was taken from.
	undoRedefine = "vmm.redefine"
	// undoMigrateBack moves a live-migrated domain back to its source.
	undoMigrateBack = "vmm.migrate-back"
)

type redefineArgs struct {
	vmArgs          // NodeID: where the domain is defined again
	Spec   vmm.Spec `json:"spec"`
}

type migrateArgs struct {
	vmArgs        // NodeID: the source
	Target string `json:"target"`
	Shared bool   `json:"shared"`
}

// undoPortSetup sets a VM's network port up again where it was torn down.
const undoPortSetup = "netport.setup"

type portArgs struct {
	vmArgs              // NodeID: where the port is set up again
	Spec   netport.Spec `json:"spec"`
}

// move is a migration once its target is known.
type move struct {
	vm               model.VM
	name             string // the domain
	src, dst         model.Node
	srcDrv, dstDrv   vmm.Driver
	srcPool, dstPool storage.Pool
	// srcStorage and dstStorage name the cluster storages of the disk on
	// each side (empty: the node's own pool).
	srcStorage, dstStorage string
	cluster                string         // the cluster of the target (the VM's, or another)
	vol                    storage.Volume // the VM's disk on the source
	shared                 bool           // both nodes see vol: no disk moves
	spec                   vmm.Spec       // the domain as the source defines it
	// The VM's network port on the source, when it has one, moves too:
	// dstPort is it on the target (a VXLAN port has the target's tunnel
	// endpoint).
	port, dstPort      *netport.Spec
	srcPorts, dstPorts netport.Ports
}

// migrate moves a VM to another node: the node given, or the one the
// scheduler picks (every placement rule, the source excluded). Capacity is
// reserved on the target first and committed there (and given back on the
// source) when the task ends; the VM record gets the new node.
//
// A stopped VM moves cold: its disk is copied to the target's storage
// (unless both nodes see the same volume), the domain is undefined on the
// source and defined on the target, and the source's disk is removed. A
// running VM moves live through the hypervisor (vmm.Migrator): over shared
// storage it takes only memory; otherwise an empty volume is made on the
// target and the hypervisor copies the disk while the VM runs. Every step
// records its undo first; the source's disk goes last, so until then a
// failure puts everything back where it was.
//
// Snapshots live in the disk image and in the hypervisor's metadata, which
// neither path carries over: a VM with snapshots is refused.
func (f *Flow) migrate(ctx context.Context, r *tasks.Run) error {
	vm, in, srcDrv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	if vm.State != model.VMRunning && vm.State != model.VMStopped {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: only running or stopped VMs migrate", vm.ID, vm.State)
	}
	if len(vm.Snapshots) > 0 {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s has %d snapshots: delete them before migrating (they stay with the disk image and the hypervisor)", vm.ID, len(vm.Snapshots))
	}
	m := &move{vm: vm, name: DomainName(vm.ID), srcDrv: srcDrv, cluster: vm.ClusterID}
	if m.src, err = f.node(ctx, vm.NodeID); err != nil {
		return err
	}
	if in.ClusterID != "" && in.ClusterID != vm.ClusterID {
		if err := f.checkClusterMove(ctx, vm, in.ClusterID); err != nil {
			return err
		}
		m.cluster = in.ClusterID
	}
	if in.NodeID != "" {
		to, err := f.node(ctx, in.NodeID)
		if err != nil {
			return err
		}
		if err := f.checkTarget(ctx, m, to); err != nil {
			return err
		}
	}
	d, err := srcDrv.Get(ctx, m.name)
	if err != nil {
		return err
	}
	running := d.State == vmm.StateRunning
	if !running && d.State != vmm.StateStopped {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s on node %s: only running or stopped VMs migrate", vm.ID, d.State, m.src.Name)
	}
	m.spec = d.Spec
	if running {
		if _, ok := vmm.As[vmm.Migrator](srcDrv); !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from node %s: the hypervisor or the daemon cannot; stop the VM to move it cold", m.src.Name)
		}
	}

	var target string
	// The reservation lives in this process only: its undo need not be stored.
	release := tasks.VolatileUndo(func(context.Context) error { return f.releaseReservation(vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID}) })
	if err := r.Step(ctx, "reserve capacity", release, func(ctx context.Context) error {
		target, err = f.reserveMove(ctx, vm, in.NodeID, m.cluster)
		return err
	}); err != nil {
		return err
	}
	if m.dst, err = f.node(ctx, target); err != nil {
		return err
	}
	if err := f.checkTarget(ctx, m, m.dst); err != nil {
		return err
	}
	_ = r.Progress(ctx, 10, "moving to node "+m.dst.Name)
	if m.dstDrv, err = f.nodeDriver(ctx, target); err != nil {
		return err
	}
	m.srcStorage = vm.Storage
	if m.dstStorage, err = f.targetStorage(ctx, vm, m.dst); err != nil {
		return err
	}
	if m.srcPool, err = f.vmPool(ctx, m.src.ID, m.srcStorage); err != nil {
		return err
	}
	if m.dstPool, err = f.vmPool(ctx, target, m.dstStorage); err != nil {
		return err
	}
	if m.vol, err = m.srcPool.Volume(ctx, VolumeName(vm.ID)); err != nil {
		return err
	}
	if m.shared, err = sharedVolume(ctx, m.dstPool, m.vol, m.dst.Name); err != nil {
		return err
	}
	if err := f.sharedDataDisks(ctx, m); err != nil {
		return err
	}
	if err := f.planPortMove(ctx, m); err != nil {
		return err
	}
	if running {
		err = f.migrateLive(ctx, r, m)
	} else {
		err = f.migrateCold(ctx, r, m)
	}
	if err != nil {
		return err
	}
	return r.SetResult(vmPatch{NodeID: target, State: vm.State, ClusterID: m.cluster, Storage: m.dstStorage})
}

// checkTarget refuses targets a VM cannot go to.
func (f *Flow) checkTarget(ctx context.Context, m *move, to model.Node) error {
	switch {
	case to.ID == m.src.ID:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "node_id %s: vm %s is there already", to.ID, m.vm.ID)
	case to.ClusterID != m.cluster:
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "node_id %s: the node is not in cluster %s (name the cluster to move vm %s to another one)", to.ID, m.cluster, m.vm.ID)
	}
	src, err := f.open(ctx, m.src)
	if err != nil {
		return err
	}
	dst, err := f.open(ctx, to)
	if err != nil {
		return err
	}
	if src.Simulated != dst.Simulated {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "node_id %s: a VM does not move between simulated and real nodes", to.ID)
	}
	return nil
}

// reserveMove holds capacity for vm on nodeID, or on the node the
// scheduler picks when nodeID is empty, until the task ends. The VM's
// capacity on its source stays counted until then: during a move it uses both.
func (f *Flow) reserveMove(ctx context.Context, vm model.VM, nodeID, clusterID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.schedulerFor(ctx, clusterID)
	if err != nil {
		return "", err
	}
	req := request(vm)
	if nodeID == "" && clusterID != vm.ClusterID {
		// The VM is not in the other cluster's view: a plain placement.
		p, err := s.Place(req)
		if err != nil {
			return "", err
		}
		nodeID = p.Node
	}
	if nodeID == "" {
		plan, err := s.PlanEvacuation(vm.NodeID, []scheduler.VM{{ID: vm.ID, Node: vm.NodeID, Request: req}})
		if err != nil {
			return "", err
		}
		if len(plan.Moves) == 0 {
			if len(plan.Unplaced) > 0 && plan.Unplaced[0].Err != nil {
				return "", plan.Unplaced[0].Err
			}
			return "", virtplane.Errorf(virtplane.ErrResourceExhausted, "no node can take vm %s", vm.ID)
		}
		nodeID = plan.Moves[0].To
	}
	req.Node = nodeID
	res, err := s.Reserve(req, time.Now().Add(time.Hour))
	if err != nil {
		return "", err
	}
	f.pending[vm.ID] = res.ID
	if clusterID != vm.ClusterID {
		f.pendingCluster[vm.ID] = clusterID
	}
	return res.Placement.Node, nil
}

// checkClusterMove refuses a move of vm to cluster to whose settings would
// not keep it working: the VM's IP pool must serve the other cluster (it
// keeps its address), and the network must be the same kind (the domain's
// NIC moves as it is defined: the same mode, bridge and VNI).
func (f *Flow) checkClusterMove(ctx context.Context, vm model.VM, to string) error {
	src, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return err
	}
	dst, err := f.cluster(ctx, to)
	if err != nil {
		return err
	}
	pool, err := load[model.IPPool](ctx, f.cfg.Store, store.KindPool, vm.PoolID)
	if err != nil {
		return err
	}
	if !slices.Contains(pool.ClusterIDs, to) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "cluster_id %s: ip pool %s of vm %s does not serve cluster %s: attach it first", to, pool.Name, vm.ID, dst.Name)
	}
	mode := func(c model.Cluster) string { return cmp.Or(c.NetworkMode, model.NetworkBridge) }
	if mode(src) != mode(dst) || src.Bridge != dst.Bridge || src.VNI != dst.VNI {
		return virtplane.Errorf(virtplane.ErrConflict, "cluster_id %s: its network (%s, bridge %q, vni %d) differs from cluster %s's (%s, bridge %q, vni %d): the VM's NIC would not reach it", to,
			mode(dst), dst.Bridge, dst.VNI, src.Name, mode(src), src.Bridge, src.VNI)
	}
	return nil
}

// sharedVolume tells whether the target's storage sees the VM's volume
// itself (shared storage: the same attachment). A different volume of the
// same name there is refused rather than overwritten or removed.
func sharedVolume(ctx context.Context, dst storage.Pool, vol storage.Volume, dstName string) (bool, error) {
	dv, err := dst.Volume(ctx, vol.Name)
	if errors.Is(err, virtplane.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if reflect.DeepEqual(dv.Attachment, vol.Attachment) {
		return true, nil
	}
	return false, virtplane.Errorf(virtplane.ErrConflict, "node %s's storage holds a volume %s that is not this VM's disk: remove it before migrating", dstName, vol.Name)
}

func (m *move) args(node string) vmArgs {
	st := m.dstStorage
	if node == m.src.ID {
		st = m.srcStorage
	}
	return vmArgs{VMID: m.vm.ID, ClusterID: m.vm.ClusterID, NodeID: node, Storage: st}
}

// targetStorage is the storage a VM's disk goes to on node dst: the one
// of the same name when dst's cluster has it, else the one placement
// chooses there by the VM's storage tags (a move to another cluster).
func (f *Flow) targetStorage(ctx context.Context, vm model.VM, dst model.Node) (string, error) {
	c, err := f.cluster(ctx, dst.ClusterID)
	if err != nil {
		return "", err
	}
	if _, ok := c.Storage(vm.Storage); ok || vm.Storage == "" && len(c.Storages) == 0 {
		return vm.Storage, nil
	}
	want := vm
	want.Storage = ""
	return f.chooseStorage(ctx, want, dst.ID, vm.DiskGiB<<30)
}

// withRoot returns spec with its root disk on source.
func withRoot(spec vmm.Spec, source storage.Attachment) vmm.Spec {
	return withDisk(spec, rootTarget, source)
}

// withDisk returns spec with its disk at target on source.
func withDisk(spec vmm.Spec, target string, source storage.Attachment) vmm.Spec {
	spec.Disks = append([]vmm.Disk(nil), spec.Disks...)
	for i := range spec.Disks {
		if spec.Disks[i].Target == target {
			spec.Disks[i].Source = vmm.DiskSource(source)
		}
	}
	return spec
}

func (f *Flow) migrateCold(ctx context.Context, r *tasks.Run, m *move) error {
	ci, err := f.cloudInitAgain(ctx, m.vm)
	if err != nil {
		return err
	}
	srcSpec := m.spec
	srcSpec.CloudInit = ci
	dstSpec := srcSpec
	if !m.shared {
		ex, err := f.nodeExec(ctx, m.src)
		if err != nil {
			return err
		}
		var dv storage.Volume
		if err := r.Step(ctx, "copy disk to node "+m.dst.Name, tasks.UndoAction(undoVolume, m.args(m.dst.ID)), func(ctx context.Context) error {
			dv, err = storage.CopyVolume(ctx, ex, m.srcPool, m.vol.Name, m.dstPool, m.vol.Name)
			return err
		}); err != nil {
			return err
		}
		dstSpec = withRoot(srcSpec, dv.Attachment)
		_ = r.Progress(ctx, 50, "disk copied to node "+m.dst.Name)
	}
	if err := m.preparePort(ctx, r); err != nil {
		return err
	}
	// Undefined on the source before it is defined on the target: a domain
	// is never defined on two nodes (and drivers of one host that share a
	// state directory do not remove each other's files).
	if err := r.Step(ctx, "undefine on node "+m.src.Name, tasks.UndoAction(undoRedefine, redefineArgs{vmArgs: m.args(m.src.ID), Spec: srcSpec}), func(ctx context.Context) error {
		return removeDomain(ctx, m.srcDrv, m.name)
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "define on node "+m.dst.Name, tasks.UndoAction(undoDomain, m.args(m.dst.ID)), func(ctx context.Context) error {
		_, err := m.dstDrv.Create(ctx, dstSpec)
		return err
	}); err != nil {
		return err
	}
	if err := m.removeSourcePort(ctx, r); err != nil {
		return err
	}
	return f.removeSourceDisk(ctx, r, m)
}

func (f *Flow) migrateLive(ctx context.Context, r *tasks.Run, m *move) error {
	mt, err := f.migrationTarget(ctx, m.src, m.dst)
	if err != nil {
		return err
	}
	// The daemon checked that both nodes see the same volume; the
	// hypervisor cannot always tell (a local file system that is shared).
	mt.AllowUnsafe = m.shared
	if !m.shared {
		var dv storage.Volume
		if err := r.Step(ctx, "prepare disk on node "+m.dst.Name, tasks.UndoAction(undoVolume, m.args(m.dst.ID)), func(ctx context.Context) error {
			dv, err = createLike(ctx, m.dstPool, m.vol)
			return err
		}); err != nil {
			return err
		}
		mt.Disks = map[string]vmm.DiskSource{rootTarget: vmm.DiskSource(dv.Attachment)}
	}
	progress := func(p vmm.MigrationProgress) {
		if p.DataTotal > 0 {
			_ = r.Progress(ctx, 20+int(70*p.DataProcessed/p.DataTotal), fmt.Sprintf("migrating: %d of %d MiB", p.DataProcessed>>20, p.DataTotal>>20))
		}
	}
	if err := f.prepareIncoming(ctx, r, m); err != nil {
		return err
	}
	if err := m.preparePort(ctx, r); err != nil {
		return err
	}
	undo := tasks.UndoAction(undoMigrateBack, migrateArgs{vmArgs: m.args(m.src.ID), Target: m.dst.ID, Shared: m.shared})
	if err := r.Step(ctx, "migrate to node "+m.dst.Name, undo, func(ctx context.Context) error {
		mig, ok := vmm.As[vmm.Migrator](m.srcDrv)
		if !ok {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "live migration from node %s: the hypervisor cannot", m.src.Name)
		}
		return mig.Migrate(ctx, m.name, mt, progress)
	}); err != nil {
		return err
	}
	if m.port != nil {
		// The tap exists on the target now: the port completes (enslaved,
		// shaped). Its undo is the prepare step's teardown.
		if err := r.Step(ctx, "complete network port on node "+m.dst.Name, tasks.NoUndo, func(ctx context.Context) error {
			return m.dstPorts.Setup(ctx, *m.dstPort)
		}); err != nil {
			return err
		}
	}
	if err := m.removeSourcePort(ctx, r); err != nil {
		return err
	}
	return f.removeSourceDisk(ctx, r, m)
}

// planPortMove finds the VM's network port on the source and the target's
// ports it moves to. A VM without a port (a node without ports, a VM from
// before them) moves without one.
func (f *Flow) planPortMove(ctx context.Context, m *move) error {
	srcPorts, port, ok, err := f.recordedPort(ctx, m.vm)
	if errors.Is(err, virtplane.ErrNotImplemented) || (err == nil && !ok) {
		return nil
	}
	if err != nil {
		return err
	}
	dstPorts, err := f.nodePorts(ctx, m.dst.ID)
	if err != nil {
		return fmt.Errorf("node %s cannot take the VM's network port: %w", m.dst.Name, err)
	}
	dstPort, err := f.portOnNode(ctx, port, m.vm, m.dst)
	if err != nil {
		return fmt.Errorf("node %s cannot take the VM's network port: %w", m.dst.Name, err)
	}
	m.port, m.dstPort, m.srcPorts, m.dstPorts = &port, &dstPort, srcPorts, dstPorts
	return nil
}

// preparePort sets the VM's port up on the target before the domain comes:
// its bridge and firewall are there when the hypervisor makes the tap.
func (m *move) preparePort(ctx context.Context, r *tasks.Run) error {
	if m.port == nil {
		return nil
	}
	return r.Step(ctx, "prepare network port on node "+m.dst.Name, tasks.UndoAction(undoPort, m.args(m.dst.ID)), func(ctx context.Context) error {
		return m.dstPorts.Setup(ctx, *m.dstPort)
	})
}

// removeSourcePort tears the VM's port down on the source once the domain
// left it; the undo sets it up again, so only the source's disk, the last
// step, goes for good.
func (m *move) removeSourcePort(ctx context.Context, r *tasks.Run) error {
	if m.port == nil {
		return nil
	}
	undo := tasks.UndoAction(undoPortSetup, portArgs{vmArgs: m.args(m.src.ID), Spec: *m.port})
	return r.Step(ctx, "remove network port from node "+m.src.Name, undo, func(ctx context.Context) error {
		return m.srcPorts.Teardown(ctx, m.port.Name)
	})
}

func (f *Flow) undoPortSetup(ctx context.Context, raw json.RawMessage) error {
	var a portArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	ports, err := f.nodePorts(ctx, a.NodeID)
	if err != nil {
		return err
	}
	return ports.Setup(ctx, a.Spec)
}

// createLike makes an empty volume of vol's size and name in pool, in vol's
// format when the pool takes it.
func createLike(ctx context.Context, pool storage.Pool, vol storage.Volume) (storage.Volume, error) {
	info, err := pool.Info(ctx)
	if err != nil {
		return storage.Volume{}, err
	}
	spec := storage.VolumeSpec{Name: vol.Name, Size: vol.Capacity}
	for _, fm := range info.Formats {
		if fm == vol.Format {
			spec.Format = fm
		}
	}
	return pool.Create(ctx, spec)
}

// removeSourceDisk is a migration's last step: with the domain on the
// target, the source's copy of the disk goes (never a shared one).
func (f *Flow) removeSourceDisk(ctx context.Context, r *tasks.Run, m *move) error {
	if m.shared {
		return nil
	}
	return r.Step(ctx, "remove disk from node "+m.src.Name, tasks.NoUndo, func(ctx context.Context) error {
		return deleteVolume(ctx, m.srcPool, m.vol.Name)
	})
}

// cloudInitAgain renders a VM's cloud-init data for a new definition: the
// addresses it holds, and the user data it was created with when the create
// task is still on record.
func (f *Flow) cloudInitAgain(ctx context.Context, vm model.VM) (*vmm.CloudInit, error) {
	if f.cfg.IPAM == nil {
		return nil, nil
	}
	allocs, err := f.cfg.IPAM.LookupOwner(ctx, ipam.Owner{VM: vm.ID})
	if err != nil || len(allocs) == 0 {
		return nil, err
	}
	userData := ""
	if ts, err := f.cfg.Store.ListTasks(ctx, store.TaskFilter{Target: "vm/" + vm.ID, Limit: 1}); err == nil && len(ts) == 1 && ts[0].Kind == KindVMCreate {
		var in VMInput
		if json.Unmarshal(ts[0].Input, &in) == nil {
			userData = in.UserData
		}
	}
	c, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return nil, err
	}
	// IPv4 first, as the create wrote them.
	slices.SortStableFunc(allocs, func(a, b ipam.Allocation) int {
		return cmp.Compare(map[bool]int{true: 0, false: 1}[a.Addr().Is4()], map[bool]int{true: 0, false: 1}[b.Addr().Is4()])
	})
	return cloudInit(vm, userData, allocs, c.NetworkMode), nil
}

// undoRedefine defines a domain again where it was undefined; a domain
// already there is left alone.
func (f *Flow) undoRedefine(ctx context.Context, raw json.RawMessage) error {
	var a redefineArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	drv, err := f.nodeDriver(ctx, a.NodeID)
	if err != nil {
		return err
	}
	if _, err := drv.Get(ctx, a.Spec.Name); err == nil || !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	_, err = drv.Create(ctx, a.Spec)
	return err
}

// undoMigrateBack moves a live-migrated domain back to its source (copying
// its disk back into the source's volume when the storage is not shared).
// A domain that is on its source already, or never left it, stays.
//
// A daemon killed while the hypervisor copied memory leaves the migration
// job running in the source's hypervisor, where it may still complete: the
// job is aborted (and has ended) before the undo looks where the domain is,
// or the undo would find it on the source, leave it, and let the rollback
// remove its disk and port on the target it is about to run on.
func (f *Flow) undoMigrateBack(ctx context.Context, raw json.RawMessage) error {
	var a migrateArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	name := DomainName(a.VMID)
	src, err := f.node(ctx, a.NodeID)
	if err != nil {
		return err
	}
	srcDrv, err := f.nodeDriver(ctx, src.ID)
	if err != nil {
		return err
	}
	// A driver without the capability cannot stop such a job: the undo
	// looks at once. ErrNotFound: the domain left the source already.
	if ab, ok := vmm.As[vmm.MigrationAborter](srcDrv); ok {
		if err := ab.AbortMigration(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return fmt.Errorf("abort the migration of vm %s on node %s: %w", a.VMID, src.Name, err)
		}
	}
	if _, err := srcDrv.Get(ctx, name); err == nil || !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	dst, err := f.node(ctx, a.Target)
	if err != nil {
		return err
	}
	dstDrv, err := f.nodeDriver(ctx, dst.ID)
	if err != nil {
		return err
	}
	d, err := dstDrv.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("vm %s is on neither node %s nor node %s: %w", a.VMID, src.Name, dst.Name, err)
	}
	if d.State != vmm.StateRunning {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s on node %s: it cannot go back live to node %s", a.VMID, d.State, dst.Name, src.Name)
	}
	mig, ok := vmm.As[vmm.Migrator](dstDrv)
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "live migration back from node %s", dst.Name)
	}
	back, err := f.migrationTarget(ctx, dst, src)
	if err != nil {
		return err
	}
	back.AllowUnsafe = a.Shared
	if !a.Shared {
		pool, err := f.vmPool(ctx, src.ID, a.Storage)
		if err != nil {
			return err
		}
		v, err := pool.Volume(ctx, VolumeName(a.VMID))
		if err != nil {
			return err
		}
		back.Disks = map[string]vmm.DiskSource{rootTarget: vmm.DiskSource(v.Attachment)}
	}
	if err := mig.Migrate(ctx, name, back, nil); err != nil {
		return err
	}
	// The domain has a new tap on the source: its port completes again.
	ports, port, ok, err := f.portOf(ctx, a.VMID)
	if err != nil || !ok {
		return err
	}
	return ports.Setup(ctx, port)
}

// prepareIncoming makes the VM's machine files (its cloud-init seed, its
// console log's directory) on a target whose hypervisor keeps them apart
// from the source's (a node with an agent of its own); nodes of one host
// share them and their drivers have no IncomingPreparer.
func (f *Flow) prepareIncoming(ctx context.Context, r *tasks.Run, m *move) error {
	p, ok := vmm.As[vmm.IncomingPreparer](m.dstDrv)
	if !ok {
		return nil
	}
	ci, err := f.cloudInitAgain(ctx, m.vm)
	if err != nil {
		return err
	}
	spec := m.spec
	if ci != nil {
		spec.CloudInit = ci
	}
	return r.Step(ctx, "prepare machine files on node "+m.dst.Name, tasks.UndoAction(undoIncoming, m.args(m.dst.ID)), func(ctx context.Context) error {
		return p.PrepareIncoming(ctx, spec)
	})
}
