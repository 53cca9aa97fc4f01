package flow

import (
	"context"

	"github.com/virtplane/virtplane/vmm"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/tasks"
)

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
			default:
				state = model.VMStopped
				return drv.Stop(ctx, name)
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

// Domains lists the hypervisor's machines on a node.
func (f *Flow) Domains(ctx context.Context, nodeID string) ([]vmm.VM, error) {
	drv, err := f.nodeDriver(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return drv.List(ctx)
}
