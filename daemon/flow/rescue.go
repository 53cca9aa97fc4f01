package flow

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/vmm"
)

// rescue boots a VM from its cluster's rescue image, its disks attached,
// or back to its own disk.
func (f *Flow) rescue(ctx context.Context, r *tasks.Run) error {
	vm, in, drv, err := f.withDomain(ctx, r)
	if err != nil {
		return err
	}
	rs, err := capability[vmm.Rescuer](drv, "boot into rescue")
	if err != nil {
		return err
	}
	name := DomainName(vm.ID)
	if !in.Rescue {
		if err := r.Step(ctx, "leave rescue", tasks.NoUndo, func(ctx context.Context) error {
			return rs.ExitRescue(ctx, name)
		}); err != nil {
			return err
		}
		return r.SetResult(vmPatch{State: model.VMRunning})
	}
	spec, err := f.rescueSpec(ctx, vm)
	if err != nil {
		return err
	}
	if err := r.Step(ctx, "enter rescue", tasks.NoUndo, func(ctx context.Context) error {
		return rs.EnterRescue(ctx, name, spec)
	}); err != nil {
		return err
	}
	return r.SetResult(vmPatch{State: model.VMRescue})
}

// rescueSpec is the rescue image of a VM's cluster on the VM's node: its
// kernel, or the ISO image's volume in the node's storage.
func (f *Flow) rescueSpec(ctx context.Context, vm model.VM) (vmm.RescueSpec, error) {
	c, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return vmm.RescueSpec{}, err
	}
	ri := c.Rescue
	if ri == nil {
		return vmm.RescueSpec{}, virtplane.Errorf(virtplane.ErrConflict, "cluster %s has no rescue image (PUT /v1/clusters/%s/rescue)", c.Name, c.ID)
	}
	if ri.ISOImageID == "" {
		return vmm.RescueSpec{Kernel: ri.Kernel, Initrd: ri.Initrd, Cmdline: ri.Cmdline}, nil
	}
	pool, err := f.nodePool(ctx, vm.NodeID) // where images are imported
	if err != nil {
		return vmm.RescueSpec{}, err
	}
	v, err := pool.Volume(ctx, ImageVolume(ri.ISOImageID))
	if err != nil {
		return vmm.RescueSpec{}, virtplane.Errorf(virtplane.ErrConflict, "the rescue ISO (image %s) is not imported into the storage of node %s: %v", ri.ISOImageID, vm.NodeID, err)
	}
	if v.Attachment.Kind != "file" {
		return vmm.RescueSpec{}, virtplane.Errorf(virtplane.ErrNotImplemented, "a rescue ISO on %s storage: the hypervisor boots ISO files only", v.Attachment.Kind)
	}
	return vmm.RescueSpec{ISO: v.Attachment.Path}, nil
}
