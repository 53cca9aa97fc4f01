package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// KindVMDiskMove moves a VM's root disk to another storage of its cluster.
const KindVMDiskMove = "vm.disk.move"

// moveDisk moves a VM's root disk to the storage in.Storage on the same
// node. A stopped VM's disk is copied (qemu-img convert, whatever the two
// backends), the domain defined again on the copy, then the old disk
// removed; a running VM's is mirrored into an empty volume there by the
// hypervisor (vmm.DiskCopier, libvirt's block copy) while the guest runs,
// then the old disk removed. Every step before the last has its undo, so a
// failure or a daemon killed half-way leaves the VM on its old disk and
// nothing on the new storage.
func (f *Flow) moveDisk(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	if vm.NodeID == "" {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s is on no node", vm.ID)
	}
	disk := rootDisk(vm)
	if in.DiskTarget != "" && in.DiskTarget != rootTarget {
		d, ok := vm.DataDisk(in.DiskTarget)
		if !ok {
			return virtplane.Errorf(virtplane.ErrNotFound, "disk %s of vm %s", in.DiskTarget, vm.ID)
		}
		disk = dataDisk(d)
	}
	if in.Storage == "" || in.Storage == disk.storage {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %q: disk %s of vm %s is there already", in.Storage, disk.target, vm.ID)
	}
	if len(vm.Snapshots) > 0 {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s has %d snapshots, which stay with the old disk: delete them before the move", vm.ID, len(vm.Snapshots))
	}
	n, err := f.node(ctx, vm.NodeID)
	if err != nil {
		return err
	}
	drv, err := f.nodeDriver(ctx, vm.NodeID)
	if err != nil {
		return err
	}
	name := DomainName(vm.ID)
	d, err := drv.Get(ctx, name)
	if err != nil {
		return err
	}
	var copier vmm.DiskCopier
	if d.State != vmm.StateStopped {
		var ok bool
		if copier, ok = vmm.As[vmm.DiskCopier](drv); !ok || d.State != vmm.StateRunning {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s on a hypervisor that cannot move its disk live: stop it to move the disk", vm.ID, d.State)
		}
	}
	src, err := f.vmPool(ctx, vm.NodeID, disk.storage)
	if err != nil {
		return err
	}
	dst, err := f.vmPool(ctx, vm.NodeID, in.Storage)
	if err != nil {
		return err
	}
	vol, err := src.Volume(ctx, disk.volume)
	if err != nil {
		return err
	}
	if same, err := sharedVolume(ctx, dst, vol, n.Name); err != nil || same {
		if err == nil {
			err = virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s holds disk %s of vm %s already (the same backend as %s)", in.Storage, disk.target, vm.ID, disk.storage)
		}
		return err
	}
	at := func(storageName string) vmArgs {
		a := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: storageName}
		if disk.target != rootTarget {
			a.Volume = disk.volume
		}
		return a
	}
	// What the VM record says once the disk is there.
	moved := vmPatch{Storage: in.Storage}
	if disk.target != rootTarget {
		disks := slices.Clone(vm.Disks)
		for i := range disks {
			if disks[i].Target == disk.target {
				disks[i].Storage = in.Storage
			}
		}
		moved = vmPatch{Disks: &disks}
	}
	if copier != nil {
		return f.moveDiskLive(ctx, r, copier, vol, src, dst, in.Storage, disk.target, at, moved)
	}
	ex, err := f.nodeExec(ctx, n)
	if err != nil {
		return err
	}
	ci, err := f.cloudInitAgain(ctx, vm)
	if err != nil {
		return err
	}
	var dv storage.Volume
	_ = r.Progress(ctx, 10, "copying the disk to storage "+in.Storage)
	if err := r.Step(ctx, "copy disk to storage "+in.Storage, tasks.UndoAction(undoVolume, at(in.Storage)), func(ctx context.Context) error {
		dv, err = storage.CopyVolume(ctx, ex, src, vol.Name, dst, vol.Name)
		return err
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 80, "disk copied")
	srcSpec := d.Spec
	srcSpec.CloudInit = ci
	if err := r.Step(ctx, "undefine with the old disk", tasks.UndoAction(undoRedefine, redefineArgs{vmArgs: at(disk.storage), Spec: srcSpec}), func(ctx context.Context) error {
		return removeDomain(ctx, drv, name)
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "define with the disk on storage "+in.Storage, tasks.UndoAction(undoDomain, at(in.Storage)), func(ctx context.Context) error {
		_, err := drv.Create(ctx, withDisk(srcSpec, disk.target, dv.Attachment))
		return err
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "delete the disk on the old storage", tasks.NoUndo, func(ctx context.Context) error {
		return deleteVolume(ctx, src, vol.Name)
	}); err != nil {
		return err
	}
	moved.State = model.VMStopped
	return r.SetResult(moved)
}

// undoCopy puts a running VM's disk back on its old volume after a live
// move: the copy job abandoned if one runs, and a domain that switched
// already mirrored back (the old volume is only deleted once nothing can
// fail any more).
const undoCopy = "vmm.copy-disk-back"

type copyArgs struct {
	vmArgs
	Target string         `json:"target"`
	Old    vmm.DiskSource `json:"old"`
	New    vmm.DiskSource `json:"new"`
}

// sameSource says whether two disk sources are the same volume.
func sameSource(a, b vmm.DiskSource) bool {
	return a.Kind == b.Kind && a.Path == b.Path && a.URL == b.URL && a.Pool == b.Pool && a.Image == b.Image
}

func (f *Flow) undoCopyDisk(ctx context.Context, drv vmm.Driver, a copyArgs) error {
	c, ok := vmm.As[vmm.DiskCopier](drv)
	if !ok {
		return nil // never copied here
	}
	name := DomainName(a.VMID)
	if err := c.AbortDiskCopy(ctx, name, a.Target); err != nil {
		if errors.Is(err, virtplane.ErrNotFound) {
			return nil // the domain is gone
		}
		return err
	}
	d, err := drv.Get(ctx, name)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, dk := range d.Spec.Disks {
		if dk.Target != a.Target || !sameSource(dk.Source, a.New) {
			continue
		}
		if d.State != vmm.StateRunning && d.State != vmm.StatePaused {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %s stopped on the moved disk before the move was undone: start it to mirror the disk back", a.VMID)
		}
		return c.CopyDisk(ctx, name, a.Target, a.Old, nil)
	}
	return nil
}

// moveDiskLive mirrors a running VM's root disk into an empty volume of
// the same size in dst and switches the VM to it, then deletes the old one.
func (f *Flow) moveDiskLive(ctx context.Context, r *tasks.Run, copier vmm.DiskCopier, vol storage.Volume, src, dst storage.Pool, to, target string, at func(string) vmArgs, moved vmPatch) error {
	a := at(to)
	name := DomainName(a.VMID)
	var dv storage.Volume
	if err := r.Step(ctx, "make an empty volume on storage "+to, tasks.UndoAction(undoVolume, a), func(ctx context.Context) error {
		var err error
		dv, err = createLike(ctx, dst, vol)
		return err
	}); err != nil {
		return err
	}
	undo := copyArgs{vmArgs: a, Target: target, Old: vmm.DiskSource(vol.Attachment), New: vmm.DiskSource(dv.Attachment)}
	_ = r.Progress(ctx, 10, "mirroring the disk to storage "+to)
	last := -1
	if err := r.Step(ctx, "mirror the running disk to storage "+to, tasks.UndoAction(undoCopy, undo), func(ctx context.Context) error {
		return copier.CopyDisk(ctx, name, target, undo.New, func(done, total int64) {
			if total <= 0 {
				return
			}
			// 10..90 %, one report per percent step.
			if p := 10 + int(80*done/total); p != last {
				last = p
				_ = r.Progress(ctx, p, fmt.Sprintf("mirrored %d of %d MiB", done>>20, total>>20))
			}
		})
	}); err != nil {
		return err
	}
	_ = r.Progress(ctx, 90, "running on storage "+to)
	if err := r.Step(ctx, "delete the disk on the old storage", tasks.NoUndo, func(ctx context.Context) error {
		return deleteVolume(ctx, src, vol.Name)
	}); err != nil {
		return err
	}
	moved.State = model.VMRunning
	return r.SetResult(moved)
}
