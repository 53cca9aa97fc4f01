package flow

import (
	"context"
	"errors"
	"net/netip"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/netport"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/network/ipam"
)

// undoPort tears a VM's network port down.
const undoPort = "netport.teardown"

// DefaultBridge is the bridge a VM's port joins when its cluster names none:
// created on the node on first use and removed with its last port. Its
// prefix lets a sweep find it.
const DefaultBridge = netport.TapPrefix + "br0"

// PortName is the host-side device of a VM's NIC.
func PortName(vmID string) string { return netport.TapName(vmID) }

// portSpec is the port of a VM: on its cluster's bridge, allowed to send
// from its MAC and addresses only, limited to its network limit.
func portSpec(vm model.VM, c model.Cluster, addrs ...ipam.Allocation) netport.Spec {
	bridge := c.Bridge
	if bridge == "" {
		bridge = DefaultBridge
	}
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, a.Addr())
	}
	s := netport.ForVM(vm.ID, bridge, ips)
	if vm.Limits.NetMbit > 0 {
		s.InKbit = uint64(vm.Limits.NetMbit) * 1000
		s.OutKbit = s.InKbit
	}
	return s
}

func (f *Flow) nodePorts(ctx context.Context, nodeID string) (netport.Ports, error) {
	if f.cfg.Ports == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "no network port backend is configured")
	}
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return f.cfg.Ports(ctx, n)
}

// withPort wraps the handler of a task that boots a VM's domain (start,
// rescue):
// the hypervisor makes the VM's tap anew on each boot, so the port is set
// up before (clearing what the old tap left, such as its shaping device)
// and completed after (the new tap shaped). Bridge membership and firewall
// carry over by themselves: the hypervisor attaches the tap to the bridge
// of the domain's definition, the kernel hooks the firewall to it.
func (f *Flow) withPort(run func(context.Context, *tasks.Run) error) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		var in VMInput
		if err := r.Input(&in); err != nil {
			return err
		}
		ports, port, ok, err := f.portOf(ctx, in.VMID)
		if errors.Is(err, virtplane.ErrNotFound) || (err == nil && !ok) {
			return run(ctx, r) // no VM (it reports why), or no port to complete
		}
		if err != nil {
			return err
		}
		if err := r.Step(ctx, "prepare network port", tasks.NoUndo, func(ctx context.Context) error {
			return ports.Setup(ctx, port)
		}); err != nil {
			return err
		}
		if err := run(ctx, r); err != nil {
			return err
		}
		return r.Step(ctx, "complete network port", tasks.NoUndo, func(ctx context.Context) error {
			return ports.Setup(ctx, port)
		})
	}
}

// withPortLimits wraps the handler of a limits change: net_mbit is the
// port's shaping, in both directions, 0 for none.
func (f *Flow) withPortLimits(run func(context.Context, *tasks.Run) error) func(context.Context, *tasks.Run) error {
	return func(ctx context.Context, r *tasks.Run) error {
		if err := run(ctx, r); err != nil {
			return err
		}
		var in VMInput
		if err := r.Input(&in); err != nil {
			return err
		}
		ports, port, ok, err := f.portOf(ctx, in.VMID)
		if err != nil || !ok {
			return err
		}
		var l model.Limits
		if in.Limits != nil {
			l = *in.Limits
		}
		port.InKbit, port.OutKbit = uint64(l.NetMbit)*1000, uint64(l.NetMbit)*1000
		return r.Step(ctx, "shape network port", tasks.NoUndo, func(ctx context.Context) error {
			return ports.Setup(ctx, port)
		})
	}
}

// portOf returns the port the node of VM vmID holds for it; ok is false for
// a VM without one (not placed, on a node without ports, or from before
// ports).
func (f *Flow) portOf(ctx context.Context, vmID string) (netport.Ports, netport.Spec, bool, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil || vm.NodeID == "" {
		return nil, netport.Spec{}, false, err
	}
	ports, port, ok, err := f.recordedPort(ctx, vm)
	if errors.Is(err, virtplane.ErrNotImplemented) {
		return nil, netport.Spec{}, false, nil
	}
	return ports, port, ok, err
}

// recordedPort returns the port a VM's node holds for it, as it was set up.
func (f *Flow) recordedPort(ctx context.Context, vm model.VM) (netport.Ports, netport.Spec, bool, error) {
	ports, err := f.nodePorts(ctx, vm.NodeID)
	if err != nil {
		return nil, netport.Spec{}, false, err
	}
	all, err := ports.List(ctx)
	if err != nil {
		return nil, netport.Spec{}, false, err
	}
	name := PortName(vm.ID)
	for _, s := range all {
		if s.Name == name && s.VMID == vm.ID {
			return ports, s, true, nil
		}
	}
	return ports, netport.Spec{}, false, nil
}
