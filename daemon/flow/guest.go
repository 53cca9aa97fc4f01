package flow

import (
	"context"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// The guest agent calls are answered at once, not through tasks: they
// change nothing the daemon keeps (a crash loses no state of its own; a
// caller whose call failed asks again), and a password must not be kept
// in a durable task input.

func (f *Flow) guestAgent(ctx context.Context, vmID string) (vmm.GuestAgent, string, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil {
		return nil, "", err
	}
	if vm.NodeID == "" {
		return nil, "", virtplane.Errorf(virtplane.ErrConflict, "vm %s is not placed on a node (state %s)", vm.ID, vm.State)
	}
	drv, err := f.nodeDriver(ctx, vm.NodeID)
	if err != nil {
		return nil, "", err
	}
	d, err := drv.Get(ctx, DomainName(vm.ID))
	if err != nil {
		return nil, "", err
	}
	if d.State != vmm.StateRunning {
		return nil, "", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: the guest agent answers in a running VM", vm.ID, d.State)
	}
	g, err := capability[vmm.GuestAgent](drv, "talk to a guest agent")
	return g, DomainName(vm.ID), err
}

// GuestInterfaces returns the addresses the VM's guest agent reports;
// ErrUnavailable when the guest runs none.
func (f *Flow) GuestInterfaces(ctx context.Context, vmID string) ([]vmm.GuestInterface, error) {
	g, name, err := f.guestAgent(ctx, vmID)
	if err != nil {
		return nil, err
	}
	return g.GuestAddresses(ctx, name)
}

// GuestExec runs a command in the VM through its guest agent.
func (f *Flow) GuestExec(ctx context.Context, vmID string, argv []string) (vmm.ExecResult, error) {
	g, name, err := f.guestAgent(ctx, vmID)
	if err != nil {
		return vmm.ExecResult{}, err
	}
	return g.GuestExec(ctx, name, argv)
}

// SetGuestPassword sets a guest user's password through the guest agent.
func (f *Flow) SetGuestPassword(ctx context.Context, vmID, user, password string) error {
	g, name, err := f.guestAgent(ctx, vmID)
	if err != nil {
		return err
	}
	return g.SetGuestPassword(ctx, name, user, password)
}
