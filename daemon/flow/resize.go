package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"
)

// rootTarget is the device of a VM's root disk (createVM attaches it there).
const rootTarget = model.RootTarget

// undoResources puts a VM's CPU count and memory back.
const undoResources = "vmm.resize"

type resourcesArgs struct {
	vmArgs
	VCPUs     int   `json:"vcpus"`
	MemoryMiB int64 `json:"memory_mib"`
}

// resize changes a VM's CPUs and memory, then grows its root disk.
//
// Everything that could refuse the request is checked before anything
// changes. The CPU/memory step is undone when the disk step fails; the disk
// step itself has no undo: a grown volume is not shrunk back, because the
// guest may already have been told the new size and written past the old
// end (or grown its partition), and cutting that off destroys data — the
// reason Proxmox, too, only ever grows disks. A disk step that failed
// half-way (the volume grew, the hypervisor was not told) is repaired by
// asking for the same size again: every step accepts the current size.
func (f *Flow) resize(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	name := DomainName(vm.ID)
	args := vmArgs{VMID: vm.ID, ClusterID: vm.ClusterID, NodeID: vm.NodeID}

	var cpu vmm.Resizer
	res := vmm.Resources{VCPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB}
	if in.CPUs != 0 || in.MemoryMiB != 0 {
		if cpu, err = capability[vmm.Resizer](drv, "resize"); err != nil {
			return err
		}
		if in.CPUs != 0 {
			res.VCPUs = in.CPUs
		}
		if in.MemoryMiB != 0 {
			res.MemoryMiB = in.MemoryMiB
		}
	}
	var grow *diskGrowth
	if in.DiskGiB != 0 {
		if grow, err = f.planDiskGrowth(ctx, vm, rootDisk(vm), in.DiskGiB, drv); err != nil {
			return err
		}
	}

	patch := vmPatch{}
	if cpu != nil {
		undo := tasks.UndoAction(undoResources, resourcesArgs{vmArgs: args, VCPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB})
		if err := r.Step(ctx, "resize", undo, func(ctx context.Context) error {
			return cpu.Resize(ctx, name, res)
		}); err != nil {
			return err
		}
		f.Invalidate(vm.ClusterID)
		patch.CPUs, patch.MemoryMiB = res.VCPUs, res.MemoryMiB
	}
	if grow != nil {
		if err := grow.run(ctx, r); err != nil {
			return err
		}
		patch.DiskGiB = in.DiskGiB
	}
	return r.SetResult(patch)
}

// diskGrowth is a planned growth of a VM's root volume.
type diskGrowth struct {
	pool    storage.Resizer
	vols    storage.Pool
	volume  string
	size    int64
	gib     int64
	name    string          // the domain
	target  string          // the disk's device
	running vmm.DiskResizer // set when the domain runs: the hypervisor is told
	first   bool            // grow the volume before telling the hypervisor (block devices)
}

// diskRef is one disk of a VM as a growth sees it.
type diskRef struct {
	target, storage, volume string
	gib                     int64 // its size now
}

// rootDisk is the root disk of vm.
func rootDisk(vm model.VM) diskRef {
	return diskRef{target: rootTarget, storage: vm.Storage, volume: VolumeName(vm.ID), gib: vm.DiskGiB}
}

// dataDisk is the data disk d of vm.
func dataDisk(d model.Disk) diskRef {
	return diskRef{target: d.Target, storage: d.Storage, volume: d.Volume, gib: d.SizeGiB}
}

// planDiskGrowth checks everything a disk growth needs and decides the
// order of its steps. QEMU grows the images it holds open itself (qcow2
// and raw files, RBD images): growing such a file behind its back would
// fight over the image lock, so storage only grows what QEMU does not
// hold (a stopped VM's volume) or cannot grow (a block device), the way
// Proxmox splits the work between its storage plugins and QMP block_resize.
func (f *Flow) planDiskGrowth(ctx context.Context, vm model.VM, disk diskRef, wantGiB int64, drv vmm.Driver) (*diskGrowth, error) {
	if wantGiB < disk.gib {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %s: %d GiB is below the current %d: disks only grow", disk.target, wantGiB, disk.gib)
	}
	domain := DomainName(vm.ID)
	pool, err := f.vmPool(ctx, vm.NodeID, disk.storage)
	if err != nil {
		return nil, err
	}
	rz, ok := storage.As[storage.Resizer](pool)
	if !ok {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "the node's storage cannot grow volumes")
	}
	vol, err := pool.Volume(ctx, disk.volume)
	if err != nil {
		return nil, err
	}
	g := &diskGrowth{pool: rz, vols: pool, volume: vol.Name, size: wantGiB << 30, gib: wantGiB, name: domain, target: disk.target}
	if g.size < vol.Capacity {
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %s: %d GiB is below the volume's current %d bytes: disks only grow", disk.target, wantGiB, vol.Capacity)
	}
	d, err := drv.Get(ctx, domain)
	if err != nil {
		return nil, err
	}
	if d.State == vmm.StateRunning || d.State == vmm.StatePaused {
		dr, ok := vmm.As[vmm.DiskResizer](drv)
		if !ok {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "the node's hypervisor cannot grow the disk of a running VM: stop the VM, then resize")
		}
		g.running = dr
		g.first = vol.Attachment.Kind == storage.KindBlock || vol.Attachment.Kind == storage.KindISCSI
	}
	return g, nil
}

func (g *diskGrowth) run(ctx context.Context, r *tasks.Run) error {
	step := fmt.Sprintf("grow volume %s to %d GiB", g.volume, g.gib)
	growVolume := func(ctx context.Context) error {
		_, err := g.pool.Resize(ctx, g.volume, g.size, storage.ResizeOptions{})
		return err
	}
	if g.running == nil || g.first {
		if err := r.Step(ctx, step, tasks.NoUndo, growVolume); err != nil {
			return err
		}
	}
	if g.running == nil {
		return nil
	}
	if err := r.Step(ctx, fmt.Sprintf("grow disk %s of the running domain", g.target), tasks.NoUndo, func(ctx context.Context) error {
		return g.running.ResizeDisk(ctx, g.name, g.target, g.size)
	}); err != nil {
		return err
	}
	if g.first {
		return nil
	}
	// The hypervisor grew the image; a pool that did not see it happen (a
	// simulated one, whose hypervisor has no files) is brought level.
	v, err := g.vols.Volume(ctx, g.volume)
	if err != nil || v.Capacity >= g.size {
		return err
	}
	return r.Step(ctx, step, tasks.NoUndo, growVolume)
}

func (f *Flow) undoResources(ctx context.Context, raw json.RawMessage) error {
	var a resourcesArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	drv, err := f.nodeDriver(ctx, a.NodeID)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rz, err := capability[vmm.Resizer](drv, "resize")
	if err != nil {
		return err
	}
	err = rz.Resize(ctx, DomainName(a.VMID), vmm.Resources{VCPUs: a.VCPUs, MemoryMiB: a.MemoryMiB})
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil // the domain is gone: nothing to put back
	}
	return err
}
