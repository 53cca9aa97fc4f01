package flow

import (
	"context"
	"crypto/rand"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/vmm"
)

// ConsoleEndpoint is where a VM's graphical console listens: the node and
// the hypervisor's address and password there. It stays inside the
// daemon; clients reach the console through the daemon's proxy.
type ConsoleEndpoint struct {
	Node    model.Node
	Console vmm.Console
}

// ConsoleEndpoint returns the graphical console of a running VM;
// ErrConflict when it does not run, ErrNotFound when it has none.
func (f *Flow) ConsoleEndpoint(ctx context.Context, vmID string) (ConsoleEndpoint, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil {
		return ConsoleEndpoint{}, err
	}
	if vm.NodeID == "" || (vm.State != model.VMRunning && vm.State != model.VMRescue && vm.State != model.VMPaused) {
		return ConsoleEndpoint{}, virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: a console opens on a running VM", vm.ID, vm.State)
	}
	n, err := f.node(ctx, vm.NodeID)
	if err != nil {
		return ConsoleEndpoint{}, err
	}
	drv, err := f.nodeDriver(ctx, n.ID)
	if err != nil {
		return ConsoleEndpoint{}, err
	}
	c, err := capability[vmm.Consoler](drv, "open a console")
	if err != nil {
		return ConsoleEndpoint{}, err
	}
	ci, err := c.Console(ctx, DomainName(vmID))
	if err != nil {
		return ConsoleEndpoint{}, err
	}
	return ConsoleEndpoint{Node: n, Console: ci}, nil
}

// consoleSpec is the graphics device of a new VM: the console it asked
// for, with a password of its own that stays between the hypervisor and
// the daemon's proxy (8 characters: VNC uses no more).
func consoleSpec(vm model.VM) vmm.ConsoleSpec {
	switch vm.Console {
	case "vnc", "spice":
		return vmm.ConsoleSpec{Type: vm.Console, Password: consolePassword()}
	}
	return vmm.ConsoleSpec{}
}

func consolePassword() string {
	const letters = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
