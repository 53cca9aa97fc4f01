package flow

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/netport"
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
	if f.ports == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "no network port backend is configured")
	}
	n, err := f.node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	return f.ports(ctx, n)
}

func (f *Flow) undoPort(ctx context.Context, raw json.RawMessage) error {
	var a vmArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	ports, err := f.nodePorts(ctx, a.NodeID)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil // the node is gone, and its ports with it
	}
	if err != nil {
		return err
	}
	return ports.Teardown(ctx, PortName(a.VMID))
}
