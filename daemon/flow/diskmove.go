package flow

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// KindVMDiskMove moves a VM's root disk to another storage of its cluster.
const KindVMDiskMove = "vm.disk.move"

// moveDisk moves a stopped VM's root disk to the storage in.Storage on the
// same node: a full copy there (qemu-img convert, whatever the two
// backends), the domain defined again on the copy, then the old disk
// removed. Every step before the last has its undo, so a failure or a
// daemon killed half-way leaves the VM on its old disk and nothing on the
// new storage. A running VM is refused: moving it live needs libvirt's
// block copy, which is not done yet.
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
	if in.Storage == "" || in.Storage == vm.Storage {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %q: the disk of vm %s is there already", in.Storage, vm.ID)
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
	if d.State != vmm.StateStopped {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: stop it to move its disk (a live move, libvirt's block copy, is not implemented)", vm.ID, d.State)
	}
	src, err := f.vmPool(ctx, vm.NodeID, vm.Storage)
	if err != nil {
		return err
	}
	dst, err := f.vmPool(ctx, vm.NodeID, in.Storage)
	if err != nil {
		return err
	}
	vol, err := src.Volume(ctx, VolumeName(vm.ID))
	if err != nil {
		return err
	}
	if same, err := sharedVolume(ctx, dst, vol, n.Name); err != nil || same {
		if err == nil {
			err = virtplane.Errorf(virtplane.ErrInvalidArgument, "storage %s holds the disk of vm %s already (the same backend as %s)", in.Storage, vm.ID, vm.Storage)
		}
		return err
	}
	ex, err := f.nodeExec(ctx, n)
	if err != nil {
		return err
	}
	ci, err := f.cloudInitAgain(ctx, vm)
	if err != nil {
		return err
	}
	at := func(storageName string) vmArgs {
		return vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID, Storage: storageName}
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
	if err := r.Step(ctx, "undefine with the old disk", tasks.UndoAction(undoRedefine, redefineArgs{vmArgs: at(vm.Storage), Spec: srcSpec}), func(ctx context.Context) error {
		return removeDomain(ctx, drv, name)
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "define with the disk on storage "+in.Storage, tasks.UndoAction(undoDomain, at(in.Storage)), func(ctx context.Context) error {
		_, err := drv.Create(ctx, withRoot(srcSpec, dv.Attachment))
		return err
	}); err != nil {
		return err
	}
	if err := r.Step(ctx, "delete the disk on the old storage", tasks.NoUndo, func(ctx context.Context) error {
		return deleteVolume(ctx, src, vol.Name)
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{Storage: in.Storage, State: model.VMStopped})
}
