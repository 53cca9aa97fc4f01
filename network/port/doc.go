// Package port gives each VM NIC a network port on its node: the bridge
// it joins, the anti-spoofing firewall that lets it send only from its own
// MAC and addresses, and its bandwidth limit. The daemon's create flow
// prepares a VM's port before it defines the domain and tears it down when
// the VM goes (or the create rolls back).
//
// Ports is the small interface a node offers for that. Setup is declarative
// and idempotent (a retried step after a crash succeeds and changes nothing
// more); it may run before the hypervisor has made the port's device, and
// completes what needs the device (enslaving, shaping) once a later Setup
// finds it. Teardown removes everything a port had and succeeds for a port
// that is already gone.
//
// Host is the implementation for this machine's kernel: it composes
// network/hostnet (the bridge, created on demand, tagged as the Host's own
// (OwnerTag), deleted once no port uses it; the hypervisor's tap is only
// enslaved), network/firewall
// (one nftables netdev table per port) and network/shaping (tc, only when a
// limit is set), and keeps each port's Spec in a state directory so that
// it knows, across restarts, which bridges are still in use. Fake is the
// in-memory implementation with fault injection and call recording; the
// simulated nodes of the daemon keep a Fake durable in the store.
// porttest.Run is the conformance suite all of them pass.
//
// A port has one of three modes (Spec.Mode), the cluster's network mode;
// firewall and shaping are the same in each:
//   - bridge: the tap joins Spec.Bridge.
//   - routed: no bridge; the host routes each VM address (/32, /128) to
//     the tap and holds the gateway addresses on it (network/routing), so
//     the VM's MAC never leaves the host. The hypervisor makes a plain tap
//     (libvirt <interface type='ethernet'>). A node's routed ports share
//     one pair of gateways.
//   - vxlan: the tap joins the bridge of the cluster's VNI, whose VxLAN
//     device (network/vxlan, with the node's vtep address as local end)
//     floods to the cluster's other nodes (full-mesh FDB, learning on).
//     The Host creates bridge and device with the first port of a VNI and
//     deletes them with the last.
//
// A Host without a router (HostConfig.Routes) or an FDB (HostConfig.FDB)
// refuses ports of that mode with ErrNotImplemented; NewKernelHost has
// both. Routes and flood entries need the port's device and are completed
// by the Setup after the hypervisor made it, like shaping.
//
// Port names and MACs are derived from the VM ID (TapName, MAC), so an undo
// or a delete needs nothing but the VM ID, and `make env-clean` style sweeps
// recognise the devices by their "vpt" prefix.
//
//	h, _ := netport.NewKernelHost("/var/lib/virtplane/ports", handle, nft)
//	spec := netport.ForVM(vmID, "vptbr0", []netip.Addr{addr})
//	spec.InKbit, spec.OutKbit = 100_000, 100_000
//	_ = h.Setup(ctx, spec)      // bridge + firewall now; enslaving and tc once the tap exists
//	nic := vmm.NIC{Bridge: spec.Bridge, Tap: spec.Name, MAC: spec.MAC}
//	// ... define and start the domain, then Setup(ctx, spec) again ...
//	_ = h.Teardown(ctx, spec.Name)
//
//	routed := netport.ForVM(vmID, "", []netip.Addr{addr})
//	routed.Mode, routed.GatewayV4 = netport.ModeRouted, gateway // nic := vmm.NIC{Tap: routed.Name, MAC: routed.MAC}
//	overlay := netport.ForVM(vmID, netport.VXLANBridge(vni), []netip.Addr{addr})
//	overlay.Mode, overlay.VXLAN = netport.ModeVXLAN, &netport.VXLAN{VNI: vni, Local: vtep, Peers: otherVTEPs}
//
// examples/single-host puts a VM's port on a bridge next to the libvirt
// driver, a file pool and IPAM, without the daemon.
package port
