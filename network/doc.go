// Package network is the root of virtplane's host networking for virtual
// machines: everything between a VM's NIC and the provider's fabric. Its
// subpackages are ipam (address pools of IPv4 and IPv6 blocks, allocation
// without double assignment, prefix delegation, DNSBL checks), the host side
// of a port (Linux bridges, VLAN sub-interfaces and bonds through netlink),
// VxLAN overlays (full mesh or route reflector), the BGP fabric that
// announces VM addresses, the firewall (anti-spoofing, port blocking) and
// traffic shaping (bandwidth limits). Pure cores such as ipam do no I/O;
// the packages that change the kernel's state sit behind small interfaces
// with fakes, so that a caller can plan and test without root.
//
// A typical VM create asks ipam for an address and then prepares the port:
//
//	alloc, err := ipamManager.Allocate(ctx, "public-v4", ipam.Request{Owner: ipam.Owner{VM: id, Interface: "eth0"}})
package network
