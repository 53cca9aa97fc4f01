package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// The data disk tasks: a disk is attached (an empty volume made and
// plugged in), detached (unplugged, its volume deleted) or grown.
const (
	KindVMDiskAttach = "vm.disk.attach"
	KindVMDiskDetach = "vm.disk.detach"
	KindVMDiskResize = "vm.disk.resize"
)

// The undo actions of the disk tasks.
const (
	// undoAttach unplugs a disk an attach plugged in.
	undoAttach = "vmm.detach-disk"
	// undoDetach plugs back a disk a detach unplugged.
	undoDetach = "vmm.attach-disk"
)

type diskArgs struct {
	vmArgs
	Disk vmm.Disk `json:"disk"`
}

// DataVolumeName is the storage name of a VM's data disk at target.
func DataVolumeName(vmID, target string) string { return "vpt-" + vmID + "-" + target }

func (f *Flow) registerDisks(e *tasks.Engine, placing, h func(func(context.Context, *tasks.Run) error) tasks.Handler) {
	// Attaching and growing take storage space placement counts.
	e.Handle(KindVMDiskAttach, placing(f.attachDisk))
	e.Handle(KindVMDiskDetach, h(f.detachDisk))
	e.Handle(KindVMDiskResize, placing(f.resizeDisk))
	e.OnUndo(undoAttach, onNode(f.nodeDriver, func(ctx context.Context, drv vmm.Driver, a diskArgs) error {
		att, ok := vmm.As[vmm.DiskAttacher](drv)
		if !ok {
			return nil // never attached
		}
		if err := att.DetachDisk(ctx, DomainName(a.VMID), a.Disk.Target); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		return nil
	}))
	e.OnUndo(undoCopy, onNode(f.nodeDriver, f.undoCopyDisk))
	e.OnUndo(undoDetach, onNode(f.nodeDriver, func(ctx context.Context, drv vmm.Driver, a diskArgs) error {
		att, ok := vmm.As[vmm.DiskAttacher](drv)
		if !ok {
			return nil
		}
		if err := att.AttachDisk(ctx, DomainName(a.VMID), a.Disk); err != nil && !errors.Is(err, virtplane.ErrAlreadyExists) {
			return err
		}
		return nil
	}))
}

// diskAttacher is the hypervisor of a VM's node as far as it plugs disks.
func diskAttacher(drv vmm.Driver) (vmm.DiskAttacher, error) {
	att, ok := vmm.As[vmm.DiskAttacher](drv)
	if !ok {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "the node's hypervisor cannot attach or detach disks (containers keep their disks in LXD)")
	}
	return att, nil
}

// placeDataDisks chooses the storage of each data disk of a VM being
// created on nodeID and names its volume.
func (f *Flow) placeDataDisks(ctx context.Context, vm model.VM, nodeID string) ([]model.Disk, error) {
	out := slices.Clone(vm.Disks)
	for i := range out {
		st, err := f.chooseStorageFor(ctx, nodeID, out[i].Storage, out[i].StorageTags, out[i].SizeGiB<<30)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", out[i].Target, err)
		}
		out[i].Storage, out[i].Volume = st, DataVolumeName(vm.ID, out[i].Target)
	}
	return out, nil
}

// makeDataVolume makes the volume of a data disk, empty, or, for a clone
// of the VM cloneOf, a full copy of that VM's disk at the same target;
// it returns the disk as the hypervisor takes it.
func (f *Flow) makeDataVolume(ctx context.Context, nodeID string, d model.Disk, cloneOf string) (vmm.Disk, error) {
	var pool storage.Pool
	var vol storage.Volume
	var err error
	if cloneOf == "" {
		if pool, err = f.vmPool(ctx, nodeID, d.Storage); err == nil {
			vol, err = pool.Create(ctx, storage.VolumeSpec{Name: d.Volume, Size: d.SizeGiB << 30})
		}
	} else {
		var ex storage.Executor // copies need the node's commands
		if pool, ex, err = f.poolAndExec(ctx, nodeID, d.Storage); err == nil {
			vol, err = f.copyDataDisk(ctx, ex, nodeID, cloneOf, d, pool)
		}
	}
	if err != nil {
		return vmm.Disk{}, err
	}
	return vmm.Disk{Target: d.Target, Source: vmm.DiskSource(vol.Attachment)}, nil
}

// copyDataDisk copies the disk at d.Target of the stopped VM srcID into
// pool as d's volume.
func (f *Flow) copyDataDisk(ctx context.Context, ex storage.Executor, nodeID, srcID string, d model.Disk, pool storage.Pool) (storage.Volume, error) {
	src, _, err := f.stoppedVM(ctx, srcID)
	if err != nil {
		return storage.Volume{}, err
	}
	sd, ok := src.DataDisk(d.Target)
	if !ok || src.NodeID != nodeID {
		return storage.Volume{}, virtplane.Errorf(virtplane.ErrConflict, "vm %s changed its disks or node meanwhile: clone it again", src.ID)
	}
	from, err := f.vmPool(ctx, nodeID, sd.Storage)
	if err != nil {
		return storage.Volume{}, err
	}
	return storage.CopyVolumeSized(ctx, ex, from, sd.Volume, pool, d.Volume, d.SizeGiB<<30)
}

// sameDisks says whether a clone asks for the data disks its source has.
func sameDisks(src, clone model.VM) bool {
	if len(src.Disks) != len(clone.Disks) {
		return false
	}
	for i, d := range src.Disks {
		if c := clone.Disks[i]; c.Target != d.Target || c.SizeGiB != d.SizeGiB {
			return false
		}
	}
	return true
}

// attachDisk adds a data disk to a VM, stopped or running: an empty volume
// in the storage the request names (or placement chooses by tags, default
// and room), plugged in at the target the API chose. Each step journals
// its undo first: a failure (or a daemon stop) unplugs and deletes what
// was made.
func (f *Flow) attachDisk(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	if in.Disk == nil {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "disk: missing")
	}
	d := *in.Disk
	if _, used := vm.DataDisk(d.Target); used || d.Target == rootTarget {
		return virtplane.Errorf(virtplane.ErrAlreadyExists, "disk %s of vm %s", d.Target, vm.ID)
	}
	att, err := diskAttacher(drv)
	if err != nil {
		return err
	}
	if err := r.Step(ctx, "choose storage", tasks.NoUndo, func(ctx context.Context) error {
		d.Storage, err = f.chooseStorageFor(ctx, vm.NodeID, d.Storage, d.StorageTags, d.SizeGiB<<30)
		return err
	}); err != nil {
		return err
	}
	d.Volume = DataVolumeName(vm.ID, d.Target)
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: d.Storage, Volume: d.Volume}
	var disk vmm.Disk
	if err := r.Step(ctx, fmt.Sprintf("make volume %s (%d GiB) in storage %s", d.Volume, d.SizeGiB, d.Storage), tasks.UndoAction(undoVolume, args), func(ctx context.Context) error {
		disk, err = f.makeDataVolume(ctx, vm.NodeID, d, "")
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 50, "volume "+d.Volume)
	name := DomainName(vm.ID)
	if err := r.Step(ctx, "attach disk "+d.Target, tasks.UndoAction(undoAttach, diskArgs{vmArgs: args, Disk: disk}), func(ctx context.Context) error {
		return att.AttachDisk(ctx, name, disk)
	}); err != nil {
		return err
	}
	// The VM's disk throttles (disk_iops, or limits given for this
	// target) hold for the new disk too.
	grown := vm
	grown.Disks = append(slices.Clone(vm.Disks), d)
	if lim := specLimits(grown).Disks[d.Target]; lim != (vmm.DiskLimits{}) {
		if err := r.Step(ctx, "limit disk "+d.Target, tasks.NoUndo, func(ctx context.Context) error {
			l, err := capability[vmm.Limiter](drv, "set limits")
			if err != nil {
				return err
			}
			return l.SetLimits(ctx, name, vmm.Limits{Disks: map[string]vmm.DiskLimits{d.Target: lim}})
		}); err != nil {
			return err
		}
	}
	f.Invalidate(vm.ClusterID)
	return r.SetResult(vmPatch{Disks: &grown.Disks})
}

// detachDisk unplugs a data disk and deletes its volume (its data goes:
// detach is how a disk is removed, as in VMmanager). The volume is deleted
// last; until then a failure plugs the disk back in.
func (f *Flow) detachDisk(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	d, ok := vm.DataDisk(in.DiskTarget)
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %s of vm %s", in.DiskTarget, vm.ID)
	}
	att, err := diskAttacher(drv)
	if err != nil {
		return err
	}
	pool, err := f.vmPool(ctx, vm.NodeID, d.Storage)
	if err != nil {
		return err
	}
	vol, err := pool.Volume(ctx, d.Volume)
	if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: d.Storage, Volume: d.Volume}
	name := DomainName(vm.ID)
	if err == nil {
		disk := vmm.Disk{Target: d.Target, Source: vmm.DiskSource(vol.Attachment)}
		if err := r.Step(ctx, "detach disk "+d.Target, tasks.UndoAction(undoDetach, diskArgs{vmArgs: args, Disk: disk}), func(ctx context.Context) error {
			if err := att.DetachDisk(ctx, name, d.Target); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
			return nil
		}); err != nil {
			return err
		}
		if err := r.Step(ctx, "delete volume "+d.Volume, tasks.NoUndo, func(ctx context.Context) error {
			return deleteVolume(ctx, pool, d.Volume)
		}); err != nil {
			return err
		}
	} else if err := r.Step(ctx, "detach disk "+d.Target+" (its volume is gone)", tasks.NoUndo, func(ctx context.Context) error {
		if err := att.DetachDisk(ctx, name, d.Target); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		return nil
	}); err != nil {
		return err
	}
	f.Invalidate(vm.ClusterID)
	rest := slices.DeleteFunc(slices.Clone(vm.Disks), func(x model.Disk) bool { return x.Target == d.Target })
	return r.SetResult(vmPatch{Disks: &rest})
}

// resizeDisk grows a data disk, as resize grows the root disk.
func (f *Flow) resizeDisk(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	d, ok := vm.DataDisk(in.DiskTarget)
	if !ok {
		return virtplane.Errorf(virtplane.ErrNotFound, "disk %s of vm %s", in.DiskTarget, vm.ID)
	}
	g, err := f.planDiskGrowth(ctx, vm, dataDisk(d), in.DiskGiB, drv)
	if err != nil {
		return err
	}
	if err := g.run(ctx, r); err != nil {
		return err
	}
	disks := slices.Clone(vm.Disks)
	for i := range disks {
		if disks[i].Target == d.Target {
			disks[i].SizeGiB = in.DiskGiB
		}
	}
	return r.SetResult(vmPatch{Disks: &disks})
}

// deleteDataDisks deletes the volumes of a VM's data disks (the domain is
// gone by then); each step is idempotent.
func (f *Flow) deleteDataDisks(ctx context.Context, r *tasks.Run, vm model.VM) error {
	for _, d := range vm.Disks {
		pool, err := f.vmPool(ctx, vm.NodeID, d.Storage)
		if errors.Is(err, virtplane.ErrNotFound) || errors.Is(err, node.ErrNotOffered) {
			continue
		}
		if err != nil {
			return err
		}
		if err := r.Step(ctx, "delete volume "+d.Volume, tasks.NoUndo, func(ctx context.Context) error {
			return deleteVolume(ctx, pool, d.Volume)
		}); err != nil {
			return err
		}
	}
	return nil
}

// sharedDataDisks refuses to move a VM whose data disks the target node
// does not see: only the root disk is copied between nodes.
func (f *Flow) sharedDataDisks(ctx context.Context, m *move) error {
	for _, d := range m.vm.Disks {
		src, err := f.vmPool(ctx, m.src.ID, d.Storage)
		if err != nil {
			return err
		}
		vol, err := src.Volume(ctx, d.Volume)
		if err != nil {
			return err
		}
		dst, err := f.vmPool(ctx, m.dst.ID, d.Storage)
		if err != nil {
			return err
		}
		shared, err := sharedVolume(ctx, dst, vol, m.dst.Name)
		if err != nil {
			return err
		}
		if !shared || m.cluster != m.vm.ClusterID {
			return virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s: data disk %s is on storage %s, which node %s does not share: moving data disks between nodes is not implemented (detach the disk, or keep data disks on a shared storage)", m.vm.ID, d.Target, d.Storage, m.dst.Name)
		}
	}
	return nil
}
