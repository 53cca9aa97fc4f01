package flow

import (
	"context"
	"errors"
	"time"

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

// Domains lists the hypervisor's machines on a node.
func (f *Flow) Domains(ctx context.Context, nodeID string) ([]vmm.VM, error) {
	drv, err := f.nodeDriver(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return drv.List(ctx)
}
