package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/vmm"
)

// snapshot takes or deletes a snapshot. A running (or paused) VM's
// snapshot holds its memory unless the request asks for disks only, which
// a driver may refuse (libvirt: ErrNotImplemented, it keeps internal
// snapshots only); a stopped VM's holds its disks. The record says which.
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
		name := DomainName(vm.ID)
		snaps := append([]model.Snapshot{}, vm.Snapshots...)
		if !create {
			err = r.Step(ctx, "delete snapshot "+in.Snapshot, tasks.NoUndo, func(ctx context.Context) error {
				err := sn.DeleteSnapshot(ctx, name, in.Snapshot)
				if errors.Is(err, virtplane.ErrNotFound) {
					return nil
				}
				return err
			})
			if err != nil {
				return err
			}
			snaps = slices.DeleteFunc(snaps, func(s model.Snapshot) bool { return s.Name == in.Snapshot })
			return r.SetResult(vmPatch{Snapshots: &snaps})
		}
		d, err := drv.Get(ctx, name)
		if err != nil {
			return err
		}
		live := d.State == vmm.StateRunning || d.State == vmm.StatePaused
		memory := live
		if in.Memory != nil {
			memory = *in.Memory
		}
		if memory && !live {
			return virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: a memory snapshot needs a running VM", vm.ID, d.State)
		}
		kind := model.SnapshotDisk
		if memory {
			kind = model.SnapshotMemory
		}
		if err := r.Step(ctx, "create snapshot "+in.Snapshot, tasks.NoUndo, func(ctx context.Context) error {
			err := sn.CreateSnapshot(ctx, name, vmm.SnapshotSpec{Name: in.Snapshot, Memory: memory})
			if memory && in.Memory == nil && errors.Is(err, virtplane.ErrNotImplemented) {
				// The default kind, which this hypervisor cannot take of a
				// running machine (LXD without CRIU): the disks alone.
				_ = r.Log(ctx, fmt.Sprintf("memory snapshot not possible on this node (%v): taking the disks only", err))
				memory, kind = false, model.SnapshotDisk
				err = sn.CreateSnapshot(ctx, name, vmm.SnapshotSpec{Name: in.Snapshot})
			}
			return err
		}); err != nil {
			return err
		}
		_ = r.Log(ctx, "snapshot "+in.Snapshot+": "+kind)
		snaps = append(snaps, model.Snapshot{Name: in.Snapshot, Kind: kind, Created: time.Now().UTC()})
		return r.SetResult(vmPatch{Snapshots: &snaps})
	}
}

// revertSnapshot returns a VM to a snapshot: a memory snapshot resumes
// the VM running where it was, a disk snapshot leaves it stopped with the
// disks of then. The port is set up around it (withPort): a revert to a
// running state boots the domain's process anew, with a new tap.
func (f *Flow) revertSnapshot(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	sn, err := capability[vmm.Snapshotter](drv, "revert to a snapshot")
	if err != nil {
		return err
	}
	i := slices.IndexFunc(vm.Snapshots, func(s model.Snapshot) bool { return s.Name == in.Snapshot })
	if i < 0 {
		return virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q of vm %s", in.Snapshot, vm.ID)
	}
	name := DomainName(vm.ID)
	if err := r.Step(ctx, "revert to snapshot "+in.Snapshot, tasks.NoUndo, func(ctx context.Context) error {
		return sn.RevertSnapshot(ctx, name, in.Snapshot)
	}); err != nil {
		return err
	}
	d, err := drv.Get(ctx, name)
	if err != nil {
		return err
	}
	state := model.VMStopped
	switch d.State {
	case vmm.StateRunning:
		state = model.VMRunning
	case vmm.StatePaused:
		state = model.VMPaused
	}
	return r.SetResult(vmPatch{State: state})
}
