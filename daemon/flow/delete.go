package flow

import (
	"context"
	"errors"

	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/vmm"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/tasks"
)

func deleteVolume(ctx context.Context, pool storage.Pool, name string) error {
	if err := pool.Delete(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	return nil
}

// removeDomain powers off and deletes a domain; a missing one is fine.
func removeDomain(ctx context.Context, drv vmm.Driver, name string) error {
	d, err := drv.Get(ctx, name)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.State != vmm.StateStopped {
		if err := drv.Stop(ctx, name); err != nil && !errors.Is(err, virtplane.ErrConflict) {
			return err
		}
	}
	if err := drv.Delete(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	return nil
}

// deleteVM removes the domain, the network port, the volumes, the addresses
// and the placement; every step is idempotent, so a delete that fails
// half-way can simply be repeated.
func (f *Flow) deleteVM(ctx context.Context, r *tasks.Run) error {
	var in VMInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, err := f.loadVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	if vm.NodeID != "" {
		drv, err := f.nodeDriver(ctx, vm.NodeID)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete domain", tasks.NoUndo, func(ctx context.Context) error {
				return removeDomain(ctx, drv, DomainName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if vm.NodeID != "" {
		ports, err := f.nodePorts(ctx, vm.NodeID)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete network port", tasks.NoUndo, func(ctx context.Context) error {
				return ports.Teardown(ctx, PortName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if vm.NodeID != "" {
		pool, err := f.vmPool(ctx, vm.NodeID, vm.Storage)
		if err != nil && !errors.Is(err, virtplane.ErrNotFound) && !errors.Is(err, node.ErrNotOffered) {
			return err
		}
		if err == nil {
			if err := r.Step(ctx, "delete volume", tasks.NoUndo, func(ctx context.Context) error {
				return deleteVolume(ctx, pool, VolumeName(vm.ID))
			}); err != nil {
				return err
			}
		}
	}
	if vm.NodeID != "" {
		if err := f.deleteDataDisks(ctx, r, vm); err != nil {
			return err
		}
		if err := f.deleteBackupsOf(ctx, r, vm); err != nil {
			return err
		}
	}
	if err := r.Step(ctx, "release addresses", tasks.NoUndo, func(ctx context.Context) error {
		return f.releaseAddresses(ctx, vm.ID)
	}); err != nil {
		return err
	}
	f.mu.Lock()
	if s, ok := f.scheds[vm.ClusterID]; ok {
		if err := s.RemoveVM(vm.ID); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			f.mu.Unlock()
			return err
		}
	}
	f.mu.Unlock()
	return nil
}
