package flow

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/network/ipam"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/vmm"
)

// undoPort tears a VM's network port down.
const undoPort = "netport.teardown"

// DefaultBridge is the bridge a VM's port joins when its cluster names none:
// created on the node on first use and removed with its last port. Its
// prefix lets a sweep find it.
const DefaultBridge = netport.TapPrefix + "br0"

// PortName is the host-side device of a VM's NIC.
func PortName(vmID string) string { return netport.TapName(vmID) }

// portSpec is the port of a VM on node, in its cluster's network mode:
// on the cluster's bridge (bridge mode), routed through the gateway of the
// address's block (routed), or on the cluster's VxLAN network with the
// node as tunnel endpoint and the cluster's other nodes as its flood list
// (vxlan; nodes lists the cluster's nodes). In every mode the VM may send
// from its MAC and addresses only and is limited to its network limit.
// Missing settings are ErrInvalidArgument naming the field.
func portSpec(vm model.VM, c model.Cluster, node model.Node, nodes []model.Node, addrs ...ipam.Allocation) (netport.Spec, error) {
	if err := c.ValidateNetwork(); err != nil {
		return netport.Spec{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, a.Addr())
	}
	var s netport.Spec
	switch c.NetworkMode {
	case model.NetworkRouted:
		s = netport.ForVM(vm.ID, "", ips)
		s.Mode = netport.ModeRouted
		for _, a := range addrs {
			switch {
			case !a.Addr().Is4():
				return netport.Spec{}, virtplane.Errorf(virtplane.ErrNotImplemented, "routed mode for IPv6 address %v: only IPv4 is routed (network/routing needs an IPv4 gateway)", a.Addr())
			case !a.Gateway.IsValid():
				return netport.Spec{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway: ip block %s of pool %s has none: a routed VM needs the block's gateway", a.Block, a.Pool)
			case !a.Gateway.Is4():
				return netport.Spec{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway %v of ip block %s: want an IPv4 gateway for IPv4 addresses", a.Gateway, a.Block)
			case s.GatewayV4.IsValid() && s.GatewayV4 != a.Gateway:
				return netport.Spec{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway %v of ip block %s differs from %v: a routed VM has one gateway", a.Gateway, a.Block, s.GatewayV4)
			}
			s.GatewayV4 = a.Gateway
		}
		if !s.GatewayV4.IsValid() {
			return netport.Spec{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway: a routed VM needs an address from a block with a gateway")
		}
	case model.NetworkVXLAN:
		local, err := node.VTEP()
		if err != nil {
			return netport.Spec{}, fmt.Errorf("vxlan cluster %s: %w", c.Name, err)
		}
		v := &netport.VXLAN{VNI: c.VNI, Local: local}
		for _, n := range nodes {
			if n.ID == node.ID {
				continue
			}
			peer, err := n.VTEP()
			if err != nil {
				return netport.Spec{}, fmt.Errorf("vxlan cluster %s: %w", c.Name, err)
			}
			if peer.Is4() != local.Is4() {
				return netport.Spec{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "vtep_address %v of node %s: not of the family of node %s's %v", peer, n.Name, node.Name, local)
			}
			v.Peers = append(v.Peers, peer)
		}
		s = netport.ForVM(vm.ID, netport.VXLANBridge(c.VNI), ips)
		s.Mode, s.VXLAN = netport.ModeVXLAN, v
	default:
		bridge := c.Bridge
		if bridge == "" {
			bridge = DefaultBridge
		}
		s = netport.ForVM(vm.ID, bridge, ips)
		s.Mode = netport.ModeBridge
	}
	setPortPolicy(&s, vm.Limits)
	return s.Normalize(), nil
}

// setPortPolicy gives a port the network part of a VM's limits: the
// shaping (net_in_mbit what the VM receives, net_out_mbit what it sends)
// and the port policy (blocked ports, the connection cap).
func setPortPolicy(s *netport.Spec, l model.Limits) {
	s.InKbit, s.OutKbit = uint64(l.NetIn())*1000, uint64(l.NetOut())*1000
	s.BlockIn, s.BlockOut = model.PortRanges(l.BlockInPorts), model.PortRanges(l.BlockOutPorts)
	s.MaxConnections = l.MaxConnections
}

// clusterNodes returns the nodes of a cluster, for a VXLAN port's flood
// list; other modes need none (nil).
func (f *Flow) clusterNodes(ctx context.Context, c model.Cluster) ([]model.Node, error) {
	if c.NetworkMode != model.NetworkVXLAN {
		return nil, nil
	}
	var out []model.Node
	err := forEach(ctx, f.cfg.Store, store.KindNode, store.ListOptions{Parent: c.ID}, func(n model.Node) error {
		out = append(out, n)
		return nil
	})
	return out, err
}

// portOnNode is port moved to node: a VXLAN port takes the node's tunnel
// endpoint and the cluster's other nodes as peers; other ports are the
// same on every node.
func (f *Flow) portOnNode(ctx context.Context, port netport.Spec, vm model.VM, node model.Node) (netport.Spec, error) {
	if port.Mode != netport.ModeVXLAN {
		return port, nil
	}
	c, err := f.cluster(ctx, vm.ClusterID)
	if err != nil {
		return port, err
	}
	nodes, err := f.clusterNodes(ctx, c)
	if err != nil {
		return port, err
	}
	moved, err := portSpec(vm, c, node, nodes)
	if err != nil {
		return port, err
	}
	port.VXLAN, port.Bridge = moved.VXLAN, moved.Bridge
	return port, nil
}

// nic is the hypervisor's view of a port: a member of its bridge, or, on a
// routed port, a plain tap (libvirt <interface type='ethernet'>) of the
// port's name.
func nic(port netport.Spec) vmm.NIC {
	return vmm.NIC{Bridge: port.Bridge, Tap: port.Name, MAC: port.MAC}
}

func (f *Flow) nodePorts(ctx context.Context, nodeID string) (netport.Ports, error) {
	n, b, err := f.backend(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if b.Ports == nil {
		return nil, node.NotOffered(n, "no network ports")
	}
	return b.Ports, nil
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

// withPortLimits wraps the handler of a limits change: the network limits
// are the port's shaping (net_in_mbit what the VM receives, net_out_mbit
// what it sends, net_mbit both), 0 for none.
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
		setPortPolicy(&port, l)
		return r.Step(ctx, "shape network port", tasks.NoUndo, func(ctx context.Context) error {
			return ports.Setup(ctx, port)
		})
	}
}

// portOf returns the port the node of VM vmID holds for it (a VXLAN port
// with the cluster's current peers); ok is false for a VM without one (not
// placed, on a node without ports, or from before ports).
func (f *Flow) portOf(ctx context.Context, vmID string) (netport.Ports, netport.Spec, bool, error) {
	vm, err := f.loadVM(ctx, vmID)
	if err != nil || vm.NodeID == "" {
		return nil, netport.Spec{}, false, err
	}
	ports, port, ok, err := f.recordedPort(ctx, vm)
	if errors.Is(err, virtplane.ErrNotImplemented) {
		return nil, netport.Spec{}, false, nil
	}
	if err != nil || !ok {
		return ports, port, ok, err
	}
	// A VXLAN port floods to the cluster's nodes as they are now: setting
	// up the recorded peers again would undo a flood sync that ran since
	// the port was made.
	port, err = f.vxlanOf(ctx, vm, port)
	return ports, port, err == nil, err
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
